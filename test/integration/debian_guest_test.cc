// Integration (label qemu): the Debian 12 guest from scripts/guest-images (kernel, its
// initrd, a qcow2 overlay on debian.qcow2) boots through the real QemuHypervisor to
// systemd's multi-user target; its qemu-guest-agent answers guest-ping and
// guest-get-osinfo through Hypervisor::guest_agent; an ACPI shutdown stops it cleanly.
// The same boot checks cloud-init (a NoCloud seed built from the spec's cloud_init: host
// name, a user with an SSH key and sudo, checked inside the guest through guest-exec) and
// the guest facts the driver polls from the guest agent (OS, host name, addresses).
// The REST/CLI path of the same is test/e2e/cloud_init_debian.sh.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>

#include "agent_rig.h"
#include "guest_console.h"
#include "guest_images.h"
#include "strata/agent/image_store.h"
#include "strata/agent/qemu_hypervisor.h"
#include "strata/common/process.h"
#include "test_root.h"

namespace strata::integration {
namespace {

namespace fs = std::filesystem;
using model::VmState;

// Upper bounds for a hang, not timing assertions: systemd under TCG on a loaded 2-core
// machine takes from ~15 s (idle) to a few minutes.
constexpr auto kBootLimit = 420s;
constexpr auto kAgentLimit = 120s;

class DebianGuestTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    images_ = load_guest_images(STRATA_REPO_DIR);
    if (auto m =
            images_.missing({"DEBIAN_KERNEL", "DEBIAN_INITRD", "DEBIAN_DISK"}, {"DEBIAN_CMDLINE"});
        !m.empty())
      skip_ = m + " (scripts/guest-images debian)";
    else if (find_executable("qemu-system-x86_64").empty())
      skip_ = "qemu-system-x86_64 not installed";
  }

  void SetUp() override {
    if (!skip_.empty()) GTEST_SKIP() << skip_;
    auto rig = AgentRig::make("strata-it-debian", images_,
                              {{"debian-kernel", "DEBIAN_KERNEL"},
                               {"debian-initrd", "DEBIAN_INITRD"},
                               {"debian-disk", "DEBIAN_DISK"}},
                              /*with_network=*/false, STRATA_SHIM_EXE,
                              /*guest_facts_interval=*/5s);
    ASSERT_TRUE(rig) << rig.error().to_string();
    rig_ = std::move(*rig);
  }

  void TearDown() override { rig_.teardown(); }

  // Runs a guest-agent command, retrying while the agent is not up yet (it starts when
  // systemd sees the virtio-serial port, not necessarily before multi-user).
  Result<nlohmann::json> ga(const std::string& vm, const std::string& command) {
    auto deadline = std::chrono::steady_clock::now() + kAgentLimit;
    Error last{ErrorCode::deadline_exceeded, "not tried", {}};
    while (std::chrono::steady_clock::now() < deadline) {
      auto r = rig_.hv->guest_agent(vm, command, 10s);
      if (r) {
        auto j = nlohmann::json::parse(*r, nullptr, false);
        if (j.is_discarded()) return internal_error("guest agent reply is not JSON: " + *r);
        return j;
      }
      last = r.error();
      if (last.code == ErrorCode::invalid_argument || last.code == ErrorCode::failed_precondition)
        break;
      std::this_thread::sleep_for(2s);
    }
    return tl::unexpected(last);
  }

  // Runs `script` with /bin/sh in the guest (guest-exec) and returns its stdout; retried
  // until it exits 0 or the agent limit passes (cloud-init may still be running).
  Result<std::string> guest_sh(const std::string& vm, const std::string& script) {
    auto deadline = std::chrono::steady_clock::now() + kAgentLimit;
    std::string last = "not run";
    while (std::chrono::steady_clock::now() < deadline) {
      nlohmann::json cmd = {
          {"execute", "guest-exec"},
          {"arguments", {{"path", "/bin/sh"}, {"arg", {"-c", script}}, {"capture-output", true}}}};
      auto started = ga(vm, cmd.dump());
      if (!started) return tl::unexpected(started.error());
      if (!started->contains("return")) return internal_error("guest-exec: " + started->dump());
      int64_t pid = (*started)["return"].value("pid", int64_t{-1});
      for (int i = 0; i < 100; ++i) {
        nlohmann::json q = {{"execute", "guest-exec-status"}, {"arguments", {{"pid", pid}}}};
        auto st = ga(vm, q.dump());
        if (!st) return tl::unexpected(st.error());
        const auto& r = (*st)["return"];
        if (!r.is_object() || !r.value("exited", false)) {
          std::this_thread::sleep_for(200ms);
          continue;
        }
        std::string out;
        if (r.contains("out-data")) {
          RunOptions ro;
          ro.timeout = 10s;
          ro.stdin_data = r["out-data"].get<std::string>();
          auto dec = run_process({"base64", "-d"}, ro);
          if (dec && dec->ok()) out = dec->out;
        }
        if (r.value("exitcode", -1) == 0) return out;
        last = "exit " + std::to_string(r.value("exitcode", -1)) + ": " + out;
        break;
      }
      std::this_thread::sleep_for(2s);
    }
    return internal_error("guest script failed: " + last);
  }

  static inline GuestImages images_;
  static inline std::string skip_;
  AgentRig rig_;
};

TEST_F(DebianGuestTest, BootsToMultiUserAnswersGuestAgentAndShutsDown) {
  auto& hv_ = rig_.hv;
  auto t0 = std::chrono::steady_clock::now();
  model::VmSpec s;
  s.name = "debian1";
  s.vcpus = 1;
  s.memory_mib = 512;
  s.vnc = false;
  s.kernel_boot =
      model::KernelBoot{"debian-kernel", "debian-initrd", images_.get("DEBIAN_CMDLINE")};
  s.disks.push_back({"root", "debian-disk", 0, false, false, "", ""});
  s.nics.push_back({});  // user-mode NIC: DHCP answers, so networkd need not wait it out
  // cloud-init: host name, one user with an SSH key and passwordless sudo, DHCP on the NIC.
  const std::string key =
      "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ2bUq0n3l1S9yQh1m0mC4sQkQ7n0wq strata-it@ci";
  model::CloudInit ci;
  ci.hostname = "ci-guest";
  ci.users.push_back(model::CloudInitUser{"strata-ci", {key}, "", true, {}});
  ci.network.push_back(model::CloudInitNic{0, true, "", "", {}});
  s.cloud_init = ci;
  auto d = hv_->define(s);
  ASSERT_TRUE(d) << d.error().to_string();
  ASSERT_TRUE(hv_->start("debian1"));
  EXPECT_EQ(hv_->status("debian1")->state, VmState::running);

  // systemd's own status line, or the image's ready line (printed after multi-user.target).
  auto seen = wait_console_tail(
      *hv_, "debian1", {"Multi-User System", "STRATA-READY", "strata-debian login:"}, kBootLimit);
  ASSERT_FALSE(seen.empty()) << "no multi-user within the limit; console:\n"
                             << console_text(*hv_, "debian1");
  auto t_boot = std::chrono::steady_clock::now();
  std::printf("multi-user seen as \"%s\"\n", seen.c_str());

  auto ping = ga("debian1", R"({"execute":"guest-ping"})");
  ASSERT_TRUE(ping) << ping.error().to_string();
  EXPECT_TRUE(ping->contains("return")) << ping->dump();
  auto t_ping = std::chrono::steady_clock::now();

  auto os = ga("debian1", R"({"execute":"guest-get-osinfo"})");
  ASSERT_TRUE(os) << os.error().to_string();
  ASSERT_TRUE(os->contains("return") && (*os)["return"].is_object()) << os->dump();
  const auto& info = (*os)["return"];
  std::printf("guest-get-osinfo: %s\n", info.dump().c_str());
  EXPECT_EQ(info.value("id", ""), "debian") << info.dump();
  EXPECT_EQ(info.value("version-id", ""), "12") << info.dump();
  EXPECT_NE(info.value("pretty-name", "").find("bookworm"), std::string::npos) << info.dump();
  EXPECT_EQ(info.value("kernel-release", "").rfind("6.1.", 0), 0u) << info.dump();
  // cloud-init took effect: host name, the user, its key and its sudo rule.
  auto t_ci0 = std::chrono::steady_clock::now();
  auto host = guest_sh("debian1", "test \"$(hostname)\" = ci-guest && hostname");
  EXPECT_TRUE(host) << host.error().to_string() << "\nconsole:\n" << console_text(*hv_, "debian1");
  auto user = guest_sh("debian1",
                       "id strata-ci && cat /home/strata-ci/.ssh/authorized_keys && "
                       "stat -c %U /home/strata-ci/.ssh/authorized_keys && "
                       "cat /etc/sudoers.d/90-cloud-init-users");
  ASSERT_TRUE(user) << user.error().to_string();
  EXPECT_NE(user->find(key), std::string::npos) << *user;
  EXPECT_NE(user->find("strata-ci ALL=(ALL) NOPASSWD:ALL"), std::string::npos) << *user;
  auto iid = guest_sh("debian1", "cat /var/lib/cloud/data/instance-id");
  ASSERT_TRUE(iid) << iid.error().to_string();
  EXPECT_EQ(*iid, d->spec.uuid + "\n");  // instance-id = the VM's uuid (clones differ)
  auto t_ci1 = std::chrono::steady_clock::now();

  // Guest facts: the driver's poller (every 5 s here) read the OS, the host name cloud-init
  // set and the user-mode NIC's address from the guest agent; the agent's VmStatus carries
  // them (and the proto conversion keeps them: test/wire/vm_test.cc).
  std::optional<model::GuestFacts> facts;
  for (auto until = std::chrono::steady_clock::now() + kAgentLimit;
       std::chrono::steady_clock::now() < until; std::this_thread::sleep_for(1s)) {
    auto st = hv_->status("debian1");
    ASSERT_TRUE(st) << st.error().to_string();
    if (st->guest && st->guest->hostname == "ci-guest" && !st->guest->interfaces.empty()) {
      facts = st->guest;
      break;
    }
  }
  ASSERT_TRUE(facts) << "no guest facts within the limit";
  std::printf("guest facts: %s\n", model::to_json(*facts).dump().c_str());
  EXPECT_EQ(facts->os_id, "debian");
  EXPECT_EQ(facts->os_version, "12");
  EXPECT_NE(facts->os_name.find("bookworm"), std::string::npos) << facts->os_name;
  bool user_net = false;
  for (const auto& i : facts->interfaces) {
    EXPECT_NE(i.name, "lo");
    if (i.mac == d->spec.nics[0].mac)
      for (const auto& a : i.addresses) user_net = user_net || a.rfind("10.0.2.", 0) == 0;
  }
  EXPECT_TRUE(user_net) << model::to_json(*facts).dump();
  EXPECT_GT(facts->updated_unix_ms, 0);
  auto t_facts = std::chrono::steady_clock::now();

  // An unknown command is an error reply from the guest, not a transport failure.
  auto bad = hv_->guest_agent("debian1", R"({"execute":"strata-no-such-command"})", 30s);
  ASSERT_TRUE(bad) << bad.error().to_string();
  EXPECT_NE(bad->find("\"error\""), std::string::npos) << *bad;

  // ACPI power button -> systemd-logind -> poweroff. The driver would force the VM off
  // after the timeout; guest-shutdown as the reason proves it did not have to.
  ASSERT_TRUE(hv_->shutdown("debian1", 180s));
  auto t_down = std::chrono::steady_clock::now();
  auto st = hv_->status("debian1");
  ASSERT_TRUE(st);
  EXPECT_EQ(st->state, VmState::stopped);
  EXPECT_FALSE(st->guest) << "a stopped VM has no guest facts";
  ASSERT_TRUE(st->last_exit);
  EXPECT_EQ(st->last_exit->reason, "guest-shutdown");
  EXPECT_FALSE(st->last_exit->signaled);
  EXPECT_EQ(st->last_exit->code, 0);
  EXPECT_NE(console_text(*hv_, "debian1").find("reboot: Power down"), std::string::npos)
      << console_text(*hv_, "debian1");

  ASSERT_TRUE(hv_->undefine("debian1"));
  EXPECT_FALSE(fs::exists(rig_.root->path() + "/state/vms/debian1"));
  EXPECT_FALSE(fs::exists(rig_.store->root() + "/vms/debian1"));
  EXPECT_TRUE(rig_.root->live_processes().empty()) << "a QEMU or shim outlived its VM";

  auto secs = [](auto a, auto b) { return std::chrono::duration<double>(b - a).count(); };
  std::printf(
      "timing: multi-user %.1f s, guest-ping %.1f s later, cloud-init checks %.1f s, "
      "guest facts %.1f s later, shutdown %.1f s\n",
      secs(t0, t_boot), secs(t_boot, t_ping), secs(t_ci0, t_ci1), secs(t_ci1, t_facts),
      secs(t_ping, t_down));
}

}  // namespace
}  // namespace strata::integration
