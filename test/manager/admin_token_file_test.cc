// stratad's first admin token file: created 0600 through an O_EXCL temp file, so it is never
// readable by others and a file or symlink planted at the old predictable temp name
// (admin.token.tmp) is neither followed nor used.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "../common/test_util.h"
#include "strata/manager/manager.h"

namespace strata::manager {
namespace {

namespace fs = std::filesystem;

using test::slurp;

TEST(AdminTokenFile, CreatedOwnerOnlyWithoutFollowingAPlantedTempFile) {
  std::string dir = (fs::temp_directory_path() / "strata-admin-token-XXXXXX").string();
  ASSERT_TRUE(::mkdtemp(dir.data()));
  // Another user's trap: admin.token.tmp pointing at a file they can read.
  std::string leak = dir + "/leak";
  std::ofstream(leak) << "";
  ::chmod(leak.c_str(), 0644);
  ASSERT_EQ(::symlink(leak.c_str(), (dir + "/admin.token.tmp").c_str()), 0);

  mode_t old_umask = ::umask(0);  // the file's mode must not depend on the umask
  ManagerConfig cfg;
  cfg.data_dir = dir;
  cfg.listen = "127.0.0.1:0";
  cfg.http_threads = 1;
  auto m = start_manager(cfg);
  ::umask(old_umask);
  ASSERT_TRUE(m) << m.error().to_string();
  std::string path = (*m)->admin_token_path();
  (*m)->stop();

  struct stat st {};
  ASSERT_EQ(::lstat(path.c_str(), &st), 0);
  EXPECT_TRUE(S_ISREG(st.st_mode)) << "admin.token must be a regular file, not a symlink";
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  EXPECT_FALSE(slurp(path).empty());
  EXPECT_EQ(slurp(leak), "") << "the token was written through the planted symlink";
  fs::remove_all(dir);
}

}  // namespace
}  // namespace strata::manager
