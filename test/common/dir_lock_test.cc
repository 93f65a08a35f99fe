#include "strata/common/dir_lock.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include <gtest/gtest.h>

#include "strata/common/process.h"

extern char** environ;

namespace strata {
namespace {

namespace fs = std::filesystem;

class DirLockTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/strata-dirlock-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    path_ = dir_ + "/agent.lock";
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string dir_, path_;
};

TEST_F(DirLockTest, SecondLockerIsRefusedAndToldWhoHoldsIt) {
  auto first = DirLock::acquire(path_);
  ASSERT_TRUE(first) << first.error().to_string();
  // flock belongs to the open file description: a second open in this process conflicts
  // exactly as another process would.
  auto second = DirLock::acquire(path_);
  ASSERT_FALSE(second);
  EXPECT_EQ(second.error().code, ErrorCode::conflict);
  EXPECT_NE(second.error().message.find("process " + std::to_string(::getpid())),
            std::string::npos)
      << second.error().message;
  auto holder = lock_holder(path_);
  ASSERT_TRUE(holder);
  ASSERT_TRUE(holder->has_value());
  EXPECT_EQ(**holder, ::getpid());
}

TEST_F(DirLockTest, AnotherProcessIsRefusedToo) {
  auto lock = DirLock::acquire(path_);
  ASSERT_TRUE(lock);
  if (find_executable("flock").empty()) GTEST_SKIP() << "SKIPPED: util-linux flock not found";
  auto r = run_process({"flock", "--nonblock", "--conflict-exit-code", "9", path_, "true"});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->exit_code, 9);
}

TEST_F(DirLockTest, ReleasedWhenDestroyedAndFreeWhenAbsent) {
  auto none = lock_holder(path_);
  ASSERT_TRUE(none);
  EXPECT_FALSE(none->has_value());
  {
    auto lock = DirLock::acquire(path_);
    ASSERT_TRUE(lock);
  }
  auto free_now = lock_holder(path_);
  ASSERT_TRUE(free_now);
  EXPECT_FALSE(free_now->has_value());
  auto again = DirLock::acquire(path_);
  EXPECT_TRUE(again);
  // Moving keeps one holder.
  DirLock moved = std::move(*again);
  EXPECT_GE(moved.fd(), 0);
  EXPECT_FALSE(DirLock::acquire(path_));
}

// A child that outlives the holder (QEMU under its shim does) must not keep the lock.
TEST_F(DirLockTest, ChildrenDoNotInheritTheLock) {
  pid_t child = -1;
  {
    auto lock = DirLock::acquire(path_);
    ASSERT_TRUE(lock);
    int flags = ::fcntl(lock->fd(), F_GETFD);
    EXPECT_TRUE(flags & FD_CLOEXEC);
    std::string sleep_bin = find_executable("sleep");
    ASSERT_FALSE(sleep_bin.empty());
    std::vector<std::string> args = {sleep_bin, "30"};
    std::vector<char*> argv = {args[0].data(), args[1].data(), nullptr};
    ASSERT_EQ(::posix_spawn(&child, sleep_bin.c_str(), nullptr, nullptr, argv.data(), environ),
              0);
  }
  auto after = DirLock::acquire(path_);
  EXPECT_TRUE(after) << (after ? "" : after.error().to_string());
  ::kill(child, SIGKILL);
  ::waitpid(child, nullptr, 0);
}

}  // namespace
}  // namespace strata
