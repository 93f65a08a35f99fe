// Unit tests for the probe guest image and the accelerator decision (no QEMU needed).
#include "strata/agent/accel_probe.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace strata::agent {
namespace {

TEST(ProbeBootSector, IsABootableSector) {
  auto s = make_probe_boot_sector();
  ASSERT_EQ(s.size(), 512u);
  EXPECT_EQ(s[510], 0x55);
  EXPECT_EQ(s[511], 0xAA);
  EXPECT_EQ(s[0], 0xFA);  // cli
  EXPECT_EQ(s, make_probe_boot_sector());  // deterministic
}

// Finds `needle` in the sector: the instructions the probe claims to exercise.
bool contains(const std::vector<uint8_t>& hay, std::vector<uint8_t> needle) {
  return std::search(hay.begin(), hay.end(), needle.begin(), needle.end()) != hay.end();
}

TEST(ProbeBootSector, ExercisesTheInstructionsItReportsOn) {
  auto s = make_probe_boot_sector();
  EXPECT_TRUE(contains(s, {0x0F, 0xA2}));                    // cpuid
  EXPECT_TRUE(contains(s, {0x0F, 0xAE, 0x06, 0x00, 0x80}));  // fxsave [0x8000]
  EXPECT_TRUE(contains(s, {0x0F, 0xC7, 0x0E, 0x00, 0x82}));  // cmpxchg8b [0x8200]
  EXPECT_TRUE(contains(s, {0xB0, static_cast<uint8_t>(ProbeGuestCode::pass), 0xEB}));
  EXPECT_TRUE(contains(s, {0xE6, 0xF4, 0xF4}));              // out 0xf4, al; hlt
  EXPECT_EQ(qemu_exit_status(ProbeGuestCode::pass), 99);
}

ProbeRun run(bool passed, std::string detail) {
  ProbeRun r;
  r.accel = "kvm";
  r.passed = passed;
  r.detail = std::move(detail);
  return r;
}

TEST(DecideAccelerator, AutoPicksKvmOnlyWhenTheProbePassed) {
  auto k = decide_accelerator("auto", run(true, "probe guest passed"));
  ASSERT_TRUE(k);
  EXPECT_EQ(k->accelerator, "kvm");
  EXPECT_TRUE(k->kvm_usable);
  auto t = decide_accelerator("auto", run(false, "QEMU exited with status 1: MSR 0x10a"));
  ASSERT_TRUE(t);
  EXPECT_EQ(t->accelerator, "tcg");
  EXPECT_FALSE(t->kvm_usable);
  EXPECT_NE(t->reason.find("MSR 0x10a"), std::string::npos);
  EXPECT_EQ(to_json(*t)["accelerator"], "tcg");
}

TEST(DecideAccelerator, KvmRequestedButUnusableIsAnError) {
  auto r = decide_accelerator("kvm", run(false, "timed out"));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::failed_precondition);
  EXPECT_NE(r.error().message.find("timed out"), std::string::npos);
  auto ok = decide_accelerator("kvm", run(true, "passed"));
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->accelerator, "kvm");
}

TEST(DecideAccelerator, TcgAndUnknown) {
  auto t = decide_accelerator("tcg", run(true, "ignored"));
  ASSERT_TRUE(t);
  EXPECT_EQ(t->accelerator, "tcg");
  EXPECT_EQ(decide_accelerator("hvf", run(true, "")).error().code, ErrorCode::invalid_argument);
  AccelProbeOptions opts;  // never reaches QEMU
  EXPECT_EQ(probe_accelerator("xen", opts).error().code, ErrorCode::invalid_argument);
  auto tcg = probe_accelerator("tcg", opts);
  ASSERT_TRUE(tcg);
  EXPECT_EQ(tcg->accelerator, "tcg");
}

TEST(RunProbeGuest, RejectsBadArguments) {
  AccelProbeOptions opts;
  opts.state_dir = "/nonexistent/strata-probe";
  EXPECT_EQ(run_probe_guest("tcg", opts).error().field, "state_dir");
  EXPECT_EQ(run_probe_guest("whpx", opts).error().field, "accel");
}

}  // namespace
}  // namespace strata::agent
