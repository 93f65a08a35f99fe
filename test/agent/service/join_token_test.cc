// strata-agent serve's join token: from an owner-only file (--join-token-file), or from the
// command line with a warning that ps shows it.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include "enroll.h"

namespace strata::agent::cli {
namespace {

TEST(JoinToken, FileIsReadWhenOwnerOnlyAndRefusedOtherwise) {
  std::string dir = (std::filesystem::temp_directory_path() / "strata-jt-XXXXXX").string();
  ASSERT_TRUE(::mkdtemp(dir.data()));
  std::string path = dir + "/join-token";
  std::ofstream(path) << "sjt_secret\n";
  ::chmod(path.c_str(), 0600);
  std::string warning;
  auto ok = resolve_join_token("", path, &warning);
  ASSERT_TRUE(ok) << ok.error().to_string();
  EXPECT_EQ(*ok, "sjt_secret");
  EXPECT_TRUE(warning.empty());

  ::chmod(path.c_str(), 0644);
  auto loose = resolve_join_token("", path, &warning);
  ASSERT_FALSE(loose);
  EXPECT_EQ(loose.error().code, ErrorCode::permission_denied);
  EXPECT_NE(loose.error().message.find("chmod 600"), std::string::npos) << loose.error().message;

  EXPECT_FALSE(resolve_join_token("sjt_x", path, &warning)) << "both given";
  std::filesystem::remove_all(dir);
}

TEST(JoinToken, CommandLineTokenStillWorksButWarns) {
  std::string warning;
  auto r = resolve_join_token("sjt_x", "", &warning);
  ASSERT_TRUE(r);
  EXPECT_EQ(*r, "sjt_x");
  EXPECT_NE(warning.find("ps"), std::string::npos) << warning;
  warning.clear();
  EXPECT_EQ(*resolve_join_token("", "", &warning), "");
  EXPECT_TRUE(warning.empty());
}

}  // namespace
}  // namespace strata::agent::cli
