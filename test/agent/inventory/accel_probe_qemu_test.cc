// Runs the probe guest under real QEMU (label qemu). Under TCG it must pass: that proves
// the probe itself is correct. Under KVM the outcome depends on the host; the test
// records what happened and checks that auto-selection agrees with it.
#include "strata/agent/accel_probe.h"
#include "strata/agent/inventory.h"
#include "strata/agent/inventory_qemu.h"

#include <gtest/gtest.h>

#include <filesystem>

#include <nlohmann/json.hpp>

#include <unistd.h>

#include "strata/common/process.h"

namespace strata::agent {
namespace {
namespace fs = std::filesystem;

class AccelProbeQemu : public ::testing::Test {
 protected:
  void SetUp() override {
    if (find_executable("qemu-system-x86_64").empty())
      GTEST_SKIP() << "SKIPPED: qemu-system-x86_64 not installed";
    dir_ = fs::temp_directory_path() / ("strata-accel-probe-" + std::to_string(::getpid()));
    fs::create_directories(dir_);
    opts_.state_dir = dir_.string();
    opts_.timeout = std::chrono::seconds(30);  // generous: shared 2-core machines are slow
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  fs::path dir_;
  AccelProbeOptions opts_;
};

TEST_F(AccelProbeQemu, ProbeGuestPassesUnderTcg) {
  auto r = run_probe_guest("tcg", opts_);
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_TRUE(r->passed) << r->detail;
  EXPECT_EQ(r->exit_status, qemu_exit_status(ProbeGuestCode::pass));
  EXPECT_FALSE(r->timed_out);
}

TEST_F(AccelProbeQemu, AutoAgreesWithTheKvmProbe) {
  auto kvm = run_probe_guest("kvm", opts_);
  ASSERT_TRUE(kvm) << kvm.error().to_string();
  std::cout << "[kvm probe] passed=" << kvm->passed << " exit_status=" << kvm->exit_status
            << " timed_out=" << kvm->timed_out << " detail=" << kvm->detail << "\n";
  auto a = probe_accelerator("auto", opts_);
  ASSERT_TRUE(a) << a.error().to_string();
  std::cout << "[auto] accelerator=" << a->accelerator << " reason=" << a->reason << "\n";
  EXPECT_EQ(a->kvm_usable, kvm->passed);
  EXPECT_EQ(a->accelerator, kvm->passed ? "kvm" : "tcg");
  auto k = probe_accelerator("kvm", opts_);
  EXPECT_EQ(k.has_value(), kvm->passed);
  if (!k) {
    EXPECT_EQ(k.error().code, ErrorCode::failed_precondition);
  }
}

TEST_F(AccelProbeQemu, CapabilitiesFromTheInstalledQemu) {
  auto caps = probe_qemu_capabilities("qemu-system-x86_64", std::chrono::seconds(30));
  ASSERT_TRUE(caps) << caps.error().to_string();
  EXPECT_FALSE(caps->version.empty());
  EXPECT_NE(caps->find_machine("q35"), nullptr);
  EXPECT_NE(std::find(caps->accelerators.begin(), caps->accelerators.end(), "tcg"),
            caps->accelerators.end());
  std::cout << "[qemu] version=" << caps->version << " machines=" << caps->machines.size() << "\n";
}

TEST_F(AccelProbeQemu, MissingBinaryIsAnError) {
  opts_.qemu_binary = "/nonexistent/qemu-system-x86_64";
  auto r = run_probe_guest("tcg", opts_);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::not_found);
}

}  // namespace
}  // namespace strata::agent

namespace strata::agent {
namespace {

// The probe must be able to fail: a 486 has no FXSR, and the guest says so.
TEST_F(AccelProbeQemu, ProbeGuestDetectsMissingFxsr) {
  opts_.tcg_cpu = "486";
  auto r = run_probe_guest("tcg", opts_);
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_FALSE(r->passed);
  EXPECT_EQ(r->exit_status, qemu_exit_status(ProbeGuestCode::no_fxsr));
  EXPECT_NE(r->detail.find("FXSR"), std::string::npos) << r->detail;
}

TEST_F(AccelProbeQemu, FullHostInventoryOnThisMachine) {
  HostProbeOptions probe;
  probe.state_dir = opts_.state_dir;
  probe.timeout = std::chrono::seconds(30);
  auto inv = collect_host_inventory({}, probe);
  ASSERT_TRUE(inv) << inv.error().to_string();
  ASSERT_TRUE(inv->qemu);
  ASSERT_TRUE(inv->accelerator);
  EXPECT_EQ(inv->accelerator->requested, "auto");
  EXPECT_TRUE(inv->accelerator->accelerator == "kvm" || inv->accelerator->accelerator == "tcg");
  nlohmann::json j = to_json(*inv);
  EXPECT_EQ(j["accelerator"]["accelerator"], inv->accelerator->accelerator);
  EXPECT_EQ(j["qemu"]["version"], inv->qemu->version);
  // The named CPU models, probed with the chosen accelerator.
  ASSERT_TRUE(inv->cpu_models) << "the CPU model probe answered";
  EXPECT_EQ(inv->cpu_models->accelerator, inv->accelerator->accelerator);
  EXPECT_GE(inv->qemu->cpu_model_names.size(), 40u) << "QEMU 7.2 defines 74 x86 models";
  EXPECT_EQ(inv->cpu_models->models.size(), inv->qemu->cpu_model_names.size());
  size_t usable = 0;
  for (const auto& m : inv->cpu_models->models) usable += m.usable ? 1 : 0;
  EXPECT_GE(usable, 1u) << "every x86 host offers qemu64 at least";
  EXPECT_EQ(j["cpu_models"]["models"].size(), inv->cpu_models->models.size());
  // Shown for the log, without the long lists.
  j["cpu"]["flags"] = j["cpu"]["flags"].size();
  j["qemu"]["machines"] = j["qemu"]["machines"].size();
  j["qemu"]["cpu_model_names"] = j["qemu"]["cpu_model_names"].size();
  j["cpu_models"] = std::to_string(usable) + " usable";
  std::cout << j.dump() << "\n";

  probe.accelerator = "tcg";
  auto tcg = collect_host_inventory({}, probe);
  ASSERT_TRUE(tcg) << tcg.error().to_string();
  EXPECT_EQ(tcg->accelerator->accelerator, "tcg");
}

}  // namespace
}  // namespace strata::agent
