// Shim tests with real processes standing in for QEMU (sh, sleep): exit codes, signals,
// exec failures, and that the shim is detached from the test process.
#include "shim.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "ha_lease.h"
#include "strata/common/atomic_file.h"
#include "vm_dir.h"

namespace strata::agent::qemu {
namespace {

namespace fs = std::filesystem;

class ShimTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("strata-shim-test-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override {
    // The shim removes shim.pid right after writing exit.json: let it finish first.
    for (int i = 0; i < 500 && fs::exists(dir_ / "shim.pid"); ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  Result<ExitRecord> wait_exit(std::chrono::seconds limit = std::chrono::seconds(30)) {
    auto deadline = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < deadline) {
      auto r = read_exit_record(dir_);
      if (r) return r;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return read_exit_record(dir_);
  }
  int read_int(const std::string& name) {
    for (int i = 0; i < 1500; ++i) {
      std::ifstream in(dir_ / name);
      int v = 0;
      if (in >> v && v > 0) return v;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return 0;
  }
  fs::path dir_;
};

TEST_F(ShimTest, RecordsExitCode) {
  ASSERT_TRUE(spawn_shim(STRATA_TEST_SHIM, dir_, {"/bin/sh", "-c", "echo to-stderr >&2; exit 3"}));
  auto r = wait_exit();
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_FALSE(r->signaled);
  EXPECT_EQ(r->code, 3);
  EXPECT_GT(r->qemu_pid, 0);
  EXPECT_GT(r->at_unix_ms, 0);
  std::ifstream log(dir_ / "qemu.log");
  std::string line;
  std::getline(log, line);
  EXPECT_EQ(line, "to-stderr");
}

TEST_F(ShimTest, RecordsKillSignalAndIsDetached) {
  std::string pidf = (dir_ / "child.pid").string();
  ASSERT_TRUE(spawn_shim(STRATA_TEST_SHIM, dir_,
                         {"/bin/sh", "-c", "echo $$ > " + pidf + "; exec sleep 60"}));
  int child = read_int("child.pid");
  int shim = read_int("shim.pid");
  ASSERT_GT(child, 0);
  ASSERT_GT(shim, 0);
  EXPECT_TRUE(process_matches(shim, dir_.string()));
  // The shim runs in its own session and is not our child.
  EXPECT_EQ(::getsid(shim), shim);
  EXPECT_NE(::getpgid(shim), ::getpgid(0));
  ASSERT_EQ(::kill(child, SIGKILL), 0);
  auto r = wait_exit();
  ASSERT_TRUE(r);
  EXPECT_TRUE(r->signaled);
  EXPECT_EQ(r->code, 9);
  EXPECT_EQ(r->qemu_pid, child);
}

// HA leases (ha_lease.h): a shim started with --lease kills its child once the VM's
// lease file has run out, records that, and leaves a child with a running lease (or no
// lease file) alone; a shim without --lease ignores the file (an older agent's shim).
TEST_F(ShimTest, LeaseThatRunsOutKillsTheChild) {
  ShimOptions o;
  o.lease = true;
  ASSERT_TRUE(write_file_atomic((dir_ / kLeaseFile).string(),
                                format_lease(lease_clock_ms() + 1500), kVmFileMode));
  std::string pidf = (dir_ / "child.pid").string();
  ASSERT_TRUE(spawn_shim(STRATA_TEST_SHIM, dir_,
                         {"/bin/sh", "-c", "echo $$ > " + pidf + "; exec sleep 60"}, o));
  int child = read_int("child.pid");
  ASSERT_GT(child, 0);
  EXPECT_TRUE(shim_enforces_lease(dir_.string()));
  auto r = wait_exit();
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_TRUE(r->signaled);
  EXPECT_EQ(r->code, SIGKILL);
  EXPECT_EQ(r->qemu_pid, child);
  EXPECT_TRUE(fs::exists(dir_ / kLeaseExpiredFile));
}

TEST_F(ShimTest, RenewedOrAbsentLeaseKeepsTheChild) {
  ShimOptions o;
  o.lease = true;
  std::string pidf = (dir_ / "child.pid").string();
  ASSERT_TRUE(spawn_shim(STRATA_TEST_SHIM, dir_,
                         {"/bin/sh", "-c", "echo $$ > " + pidf + "; exec sleep 60"}, o));
  int child = read_int("child.pid");
  ASSERT_GT(child, 0);
  // No lease file for a while, then leases renewed before they run out (as heartbeats do).
  std::this_thread::sleep_for(std::chrono::milliseconds(1200));
  for (int i = 0; i < 6; ++i) {
    ASSERT_TRUE(write_file_atomic((dir_ / kLeaseFile).string(),
                                  format_lease(lease_clock_ms() + 1000), kVmFileMode));
    std::this_thread::sleep_for(std::chrono::milliseconds(400));
  }
  EXPECT_EQ(::kill(child, 0), 0) << "killed although the lease never ran out";
  EXPECT_FALSE(read_exit_record(dir_));
  ASSERT_EQ(::kill(child, SIGKILL), 0);
  ASSERT_TRUE(wait_exit());
  EXPECT_FALSE(fs::exists(dir_ / kLeaseExpiredFile));
}

TEST_F(ShimTest, WithoutTheLeaseFlagTheFileIsIgnored) {
  ASSERT_TRUE(write_file_atomic((dir_ / kLeaseFile).string(), format_lease(0), kVmFileMode));
  std::string pidf = (dir_ / "child.pid").string();
  ASSERT_TRUE(spawn_shim(STRATA_TEST_SHIM, dir_,
                         {"/bin/sh", "-c", "echo $$ > " + pidf + "; exec sleep 60"}));
  int child = read_int("child.pid");
  ASSERT_GT(child, 0);
  EXPECT_FALSE(shim_enforces_lease(dir_.string()));
  std::this_thread::sleep_for(std::chrono::milliseconds(1200));
  EXPECT_EQ(::kill(child, 0), 0);
  ASSERT_EQ(::kill(child, SIGKILL), 0);
  ASSERT_TRUE(wait_exit());
}

// The shim drops QEMU's privileges between fork and exec: all four uids and gids, exactly
// the given supplementary groups, no_new_privs; the shim itself stays root (it writes
// exit.json into the root-owned folder).
TEST_F(ShimTest, DropsPrivilegesBeforeExec) {
  if (::geteuid() != 0) GTEST_SKIP() << "SKIPPED: dropping privileges needs root";
  ShimOptions o;
  o.run_as = QemuUser{"nobody", 65534, 65533, {65533, 65532}};
  ASSERT_TRUE(spawn_shim(STRATA_TEST_SHIM, dir_,
                         {"/bin/sh", "-c", "grep -E '^(Uid|Gid|Groups|NoNewPrivs):' /proc/self/status"},
                         o));
  auto r = wait_exit();
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_EQ(r->code, 0);
  std::ifstream log(dir_ / "qemu.log");
  std::stringstream ss;
  ss << log.rdbuf();
  EXPECT_NE(ss.str().find("Uid:\t65534\t65534\t65534\t65534"), std::string::npos) << ss.str();
  EXPECT_NE(ss.str().find("Gid:\t65533\t65533\t65533\t65533"), std::string::npos) << ss.str();
  EXPECT_NE(ss.str().find("Groups:\t65532 65533"), std::string::npos) << ss.str();
  EXPECT_NE(ss.str().find("NoNewPrivs:\t1"), std::string::npos) << ss.str();
}

TEST_F(ShimTest, ExecFailureIsRecorded) {
  ASSERT_TRUE(spawn_shim(STRATA_TEST_SHIM, dir_, {"/nonexistent/qemu", "-x"}));
  auto r = wait_exit();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->code, 127);
}

TEST_F(ShimTest, MissingShimBinaryIsAnError) {
  auto s = spawn_shim("/nonexistent/strata-agent", dir_, {"/bin/true"});
  EXPECT_FALSE(s);
}

TEST(ProcessMatches, RejectsOtherProcesses) {
  EXPECT_FALSE(process_matches(::getpid(), "no-such-argument-xyz"));
  EXPECT_FALSE(process_matches(0, ""));
  EXPECT_FALSE(process_matches(999999999, "x"));
}

}  // namespace
}  // namespace strata::agent::qemu
