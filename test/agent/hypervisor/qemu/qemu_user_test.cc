// The privilege-drop decision (decide_qemu_user) with a fake user table, and the folder
// search check QEMU's user needs. No root needed.
#include "strata/agent/qemu_user.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <map>

namespace strata::agent {
namespace {

UserLookup table(std::map<std::string, QemuUser> users) {
  return [users](const std::string& name) -> std::optional<QemuUser> {
    auto it = users.find(name);
    if (it == users.end()) return std::nullopt;
    return it->second;
  };
}

const QemuUser kQemu{"strata-qemu", 998, 997, {997, 106}};
const QemuUser kRoot{"root", 0, 0, {0}};
const QemuUser kAlice{"alice", 1000, 1000, {1000}};

TEST(QemuUserDecision, RootAgentDropsToStrataQemuByDefault) {
  auto d = decide_qemu_user(std::nullopt, 0, table({{"strata-qemu", kQemu}, {"root", kRoot}}));
  ASSERT_TRUE(d) << d.error().to_string();
  ASSERT_TRUE(d->user);
  EXPECT_EQ(d->user->uid, 998u);
  EXPECT_EQ(d->user->gid, 997u);
  EXPECT_EQ(d->user->groups, (std::vector<gid_t>{997, 106}));
}

TEST(QemuUserDecision, RootAgentWithoutTheUserKeepsRootAndSaysWhy) {
  auto d = decide_qemu_user(std::nullopt, 0, table({{"root", kRoot}}));
  ASSERT_TRUE(d) << d.error().to_string();
  EXPECT_FALSE(d->user);
  EXPECT_NE(d->reason.find("strata-qemu"), std::string::npos) << d->reason;
}

TEST(QemuUserDecision, ExplicitUserMustExist) {
  auto users = table({{"strata-qemu", kQemu}, {"root", kRoot}, {"alice", kAlice}});
  auto alice = decide_qemu_user(std::string("alice"), 0, users);
  ASSERT_TRUE(alice && alice->user);
  EXPECT_EQ(alice->user->uid, 1000u);
  auto missing = decide_qemu_user(std::string("nobody-here"), 0, users);
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, ErrorCode::invalid_argument);
  EXPECT_FALSE(decide_qemu_user(std::string(""), 0, users));
}

TEST(QemuUserDecision, Uid0IsTheExplicitOptOut) {
  auto d = decide_qemu_user(std::string("root"), 0, table({{"strata-qemu", kQemu}, {"root", kRoot}}));
  ASSERT_TRUE(d) << d.error().to_string();
  EXPECT_FALSE(d->user);
}

TEST(QemuUserDecision, NonRootAgentNeverDrops) {
  auto users = table({{"strata-qemu", kQemu}, {"alice", kAlice}});
  auto d = decide_qemu_user(std::nullopt, 1000, users);
  ASSERT_TRUE(d) << d.error().to_string();
  EXPECT_FALSE(d->user);  // the default user exists, but a non-root agent cannot setuid
  auto own = decide_qemu_user(std::string("alice"), 1000, users);
  ASSERT_TRUE(own) << own.error().to_string();
  EXPECT_FALSE(own->user);
  auto other = decide_qemu_user(std::string("strata-qemu"), 1000, users);
  ASSERT_FALSE(other);
  EXPECT_EQ(other.error().code, ErrorCode::failed_precondition);
}

TEST(QemuUserDecision, SystemLookupFindsRootAndNotNonsense) {
  auto root = lookup_system_user("root");
  ASSERT_TRUE(root);
  EXPECT_EQ(root->uid, 0u);
  EXPECT_FALSE(lookup_system_user("no-such-user-strata-test"));
}

TEST(QemuUserSearch, NamesTheFolderQemuCannotSearch) {
  namespace fs = std::filesystem;
  fs::path base = fs::temp_directory_path() / ("strata-qemu-user-" + std::to_string(::getpid()));
  fs::remove_all(base);
  fs::create_directories(base / "a" / "b");
  // A user that owns nothing here and is in no group of these folders.
  QemuUser stranger{"stranger", 64000, 64000, {64000}};
  ::chmod(base.c_str(), 0755);
  ::chmod((base / "a").c_str(), 0700);
  ::chmod((base / "a" / "b").c_str(), 0755);
  auto s = check_searchable_by((base / "a" / "b").string(), stranger);
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code, ErrorCode::failed_precondition);
  EXPECT_NE(s.error().message.find((base / "a").string() + " (mode 0700)"), std::string::npos)
      << s.error().message;
  ::chmod((base / "a").c_str(), 0711);
  EXPECT_TRUE(check_searchable_by((base / "a" / "b").string(), stranger));
  // Group search is enough for a member of the folder's group.
  ::chmod((base / "a").c_str(), 0710);
  QemuUser member{"member", 64000, 64000, {64000, ::getegid()}};
  EXPECT_TRUE(check_searchable_by((base / "a" / "b").string(), member));
  EXPECT_FALSE(check_searchable_by((base / "a" / "b").string(), stranger));
  fs::remove_all(base);
}

}  // namespace
}  // namespace strata::agent
