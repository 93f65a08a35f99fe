#include "socket_claim.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <string>

#include <gtest/gtest.h>

namespace strata::agent::cli {
namespace {

namespace fs = std::filesystem;

// A listening UNIX socket at `path`; -1 on failure.
int listen_at(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 || ::listen(fd, 4) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

ino_t inode(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0 ? st.st_ino : 0;
}

class SocketClaimTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/strata-sock-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    path_ = dir_ + "/agent.sock";
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string dir_, path_;
};

TEST_F(SocketClaimTest, PublishesOverAStaleSocketAndRemovesOnlyItsOwn) {
  int stale = listen_at(path_);
  ASSERT_GE(stale, 0);
  ::close(stale);  // a killed agent's leftover: the file stays, nobody answers
  SocketClaim claim(path_);
  ASSERT_TRUE(claim.check_free());
  ASSERT_NE(claim.bind_path(), path_);
  int fd = listen_at(claim.bind_path());
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(claim.publish());
  EXPECT_FALSE(fs::exists(claim.bind_path()));
  EXPECT_FALSE(claim.check_free());  // we answer there now
  claim.release();
  EXPECT_FALSE(fs::exists(path_));
  ::close(fd);
}

TEST_F(SocketClaimTest, NeverTakesALiveServersPath) {
  int live = listen_at(path_);
  ASSERT_GE(live, 0);
  ino_t before = inode(path_);
  SocketClaim claim(path_);
  auto free = claim.check_free();
  ASSERT_FALSE(free);
  EXPECT_EQ(free.error().code, ErrorCode::conflict);
  int fd = listen_at(claim.bind_path());
  ASSERT_GE(fd, 0);
  EXPECT_FALSE(claim.publish());
  EXPECT_EQ(inode(path_), before);
  ::close(fd);
  ::close(live);
}

// The bug of issue 9: the old agent exited after a new one had taken the path, and
// removed the new agent's socket.
TEST_F(SocketClaimTest, ReleaseLeavesASocketThatReplacedOurs) {
  auto claim = std::make_unique<SocketClaim>(path_);
  int ours = listen_at(claim->bind_path());
  ASSERT_GE(ours, 0);
  ASSERT_TRUE(claim->publish());
  ::close(ours);  // our server stops answering; a newer server takes the path
  SocketClaim newer(path_);
  ASSERT_TRUE(newer.check_free());
  int theirs = listen_at(newer.bind_path());
  ASSERT_GE(theirs, 0);
  ASSERT_TRUE(newer.publish());
  ino_t their_inode = inode(path_);
  claim.reset();  // the old one exits
  EXPECT_EQ(inode(path_), their_inode);
  EXPECT_FALSE(newer.check_free());
  ::close(theirs);
}

}  // namespace
}  // namespace strata::agent::cli
