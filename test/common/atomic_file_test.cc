// write_file_atomic / rename_noreplace / rename_durable: modes, replacement, no leftovers,
// and a full disk (tiny tmpfs, root) that fails cleanly and keeps the old content.
#include "strata/common/atomic_file.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/tiny_tmpfs.h"

namespace strata {
namespace {

namespace fs = std::filesystem;

class AtomicFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "strata-atomic-XXXXXX").string();
    ASSERT_TRUE(::mkdtemp(tmpl.data()));
    dir_ = tmpl;
  }
  void TearDown() override { fs::remove_all(dir_); }

  static std::string read(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
  static unsigned mode_of(const std::string& path) {
    struct stat st {};
    ::stat(path.c_str(), &st);
    return st.st_mode & 0777;
  }
  size_t entries() const {
    size_t n = 0;
    for (auto it = fs::directory_iterator(dir_); it != fs::directory_iterator(); ++it) ++n;
    return n;
  }

  std::string dir_;
};

TEST_F(AtomicFileTest, SetsTheModeWhateverTheUmaskAndReplacesWithoutLeftovers) {
  mode_t old = ::umask(0);
  auto st = write_file_atomic(dir_ + "/k", "secret", 0600);
  ::umask(old);
  ASSERT_TRUE(st) << st.error().to_string();
  EXPECT_EQ(mode_of(dir_ + "/k"), 0600u);
  EXPECT_EQ(read(dir_ + "/k"), "secret");

  old = ::umask(077);  // the umask must not narrow 0644 either
  st = write_file_atomic(dir_ + "/k", "new", 0644);
  ::umask(old);
  ASSERT_TRUE(st) << st.error().to_string();
  EXPECT_EQ(read(dir_ + "/k"), "new");
  EXPECT_EQ(mode_of(dir_ + "/k"), 0644u);
  EXPECT_EQ(entries(), 1u) << "no temp file left behind";
}

TEST_F(AtomicFileTest, MissingFolderIsAnErrorNamingThePath) {
  auto st = write_file_atomic(dir_ + "/absent/k", "x");
  ASSERT_FALSE(st);
  EXPECT_NE(st.error().message.find(dir_ + "/absent/k"), std::string::npos) << st.error().message;
}

TEST_F(AtomicFileTest, RenameNoreplaceRefusesAnExistingTargetAndRemovesTheSource) {
  ASSERT_TRUE(write_file_atomic(dir_ + "/a", "a"));
  ASSERT_TRUE(write_file_atomic(dir_ + "/b", "b"));
  auto st = rename_noreplace(dir_ + "/a", dir_ + "/b");
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code, ErrorCode::already_exists);
  EXPECT_EQ(read(dir_ + "/b"), "b");
  EXPECT_FALSE(fs::exists(dir_ + "/a"));

  ASSERT_TRUE(write_file_atomic(dir_ + "/c", "c"));
  ASSERT_TRUE(rename_noreplace(dir_ + "/c", dir_ + "/d"));
  EXPECT_EQ(read(dir_ + "/d"), "c");
  ASSERT_TRUE(rename_durable(dir_ + "/d", dir_ + "/b"));
  EXPECT_EQ(read(dir_ + "/b"), "c");
}

TEST(AtomicFileFullDisk, AShortWriteNeverReplacesTheFile) {
  testing::TinyTmpfs tiny(256 * 1024);
  if (!tiny.mounted()) GTEST_SKIP() << "SKIPPED: " << tiny.why_not();
  const std::string path = tiny.path() + "/state.json";
  ASSERT_TRUE(write_file_atomic(path, "old state\n", 0640));
  tiny.fill();
  auto st = write_file_atomic(path, std::string(64 * 1024, 'n'), 0640);
  ASSERT_FALSE(st) << "a 64 KiB write cannot fit on a full disk";
  EXPECT_EQ(st.error().code, ErrorCode::resource_exhausted);
  EXPECT_NE(st.error().message.find("No space left"), std::string::npos) << st.error().message;
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  EXPECT_EQ(line, "old state");
  size_t n = 0;
  for (auto it = fs::directory_iterator(tiny.path()); it != fs::directory_iterator(); ++it) ++n;
  EXPECT_EQ(n, 2u) << "only state.json and the filler: the temp file is gone";
}

}  // namespace
}  // namespace strata
