// read_secret_file: a secret in a group/other-accessible file is refused with the fix.
#include "strata/common/secret_file.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>

namespace strata {
namespace {

namespace fs = std::filesystem;

class SecretFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "strata-secret-XXXXXX").string();
    ASSERT_TRUE(::mkdtemp(tmpl.data()));
    dir_ = tmpl;
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string write(const std::string& name, const std::string& text, mode_t mode) {
    std::string p = dir_ + "/" + name;
    std::ofstream(p) << text;
    ::chmod(p.c_str(), mode);
    return p;
  }
  std::string dir_;
};

TEST_F(SecretFileTest, OwnerOnlyFileIsReadAndTrimmed) {
  auto r = read_secret_file(write("tok", "s3cret\n", 0600), "token file");
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_EQ(*r, "s3cret");
  EXPECT_TRUE(read_secret_file(write("ro", "x", 0400), "token file"));
}

TEST_F(SecretFileTest, GroupOrOtherAccessIsRefusedWithTheFix) {
  for (mode_t mode : {0644, 0640, 0604, 0620, 0602}) {
    std::string p = write("tok", "s3cret\n", mode);
    auto r = read_secret_file(p, "token file");
    ASSERT_FALSE(r) << std::oct << mode;
    EXPECT_EQ(r.error().code, ErrorCode::permission_denied);
    EXPECT_NE(r.error().message.find("chmod 600 " + p), std::string::npos) << r.error().message;
    EXPECT_EQ(r.error().message.find("s3cret"), std::string::npos) << "never echo the secret";
  }
}

TEST_F(SecretFileTest, MissingEmptyAndNonRegularFilesAreErrors) {
  EXPECT_EQ(read_secret_file(dir_ + "/absent", "token file").error().code, ErrorCode::not_found);
  EXPECT_EQ(read_secret_file(write("empty", "\n", 0600), "token file").error().code,
            ErrorCode::invalid_argument);
  ::chmod(dir_.c_str(), 0700);
  EXPECT_EQ(read_secret_file(dir_, "token file").error().code, ErrorCode::invalid_argument);
}

}  // namespace
}  // namespace strata
