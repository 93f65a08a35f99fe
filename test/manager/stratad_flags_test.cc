// stratad's --db-password-file, black box (the flag is parsed in main()): a missing value
// is a usage error; a file that does not exist, is not a regular file or is open to group
// or others is refused, naming the flag, before anything starts; a 0600 file is accepted and
// parsing goes on (the next flag's error is the one reported). The password never shows
// in what stratad prints.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

extern char** environ;

namespace {

namespace fs = std::filesystem;

struct Run {
  int exit_code = -1;
  std::string err;
};

// Runs stratad with `args`, stdin and stdout from/to /dev/null, stderr captured.
Run stratad(std::vector<std::string> args) {
  Run r;
  int pipefd[2];
  if (::pipe2(pipefd, O_CLOEXEC) != 0) return r;
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_adddup2(&fa, pipefd[1], 2);
  std::string bin = STRATAD_BINARY;
  args.insert(args.begin(), bin);
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = -1;
  int rc = posix_spawn(&pid, bin.c_str(), &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  ::close(pipefd[1]);
  if (rc == 0) {
    char buf[4096];
    ssize_t n;
    while ((n = ::read(pipefd[0], buf, sizeof(buf))) > 0) r.err.append(buf, static_cast<size_t>(n));
    int status = 0;
    ::waitpid(pid, &status, 0);
    if (WIFEXITED(status)) r.exit_code = WEXITSTATUS(status);
  }
  ::close(pipefd[0]);
  return r;
}

class StratadDbPasswordFile : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/strata-flags-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string secret_file(const std::string& name, mode_t mode) {
    std::string path = (dir_ / name).string();
    std::ofstream(path) << kSecret << "\n";
    ::chmod(path.c_str(), mode);
    return path;
  }
  static constexpr const char* kSecret = "s3cret-pg-password";
  fs::path dir_;
};

TEST_F(StratadDbPasswordFile, MissingValueIsAUsageError) {
  auto r = stratad({"--db-password-file"});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("--db-password-file needs a file"), std::string::npos) << r.err;
}

TEST_F(StratadDbPasswordFile, AbsentFileIsRefusedNamingTheFlag) {
  auto r = stratad({"--db-password-file", (dir_ / "absent").string()});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("--db-password-file"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("does not exist"), std::string::npos) << r.err;
}

TEST_F(StratadDbPasswordFile, FileOpenToGroupOrOthersIsRefusedWithoutShowingIt) {
  for (mode_t mode : {0640, 0604, 0644}) {
    auto r = stratad({"--db-password-file", secret_file("loose", mode)});
    EXPECT_EQ(r.exit_code, 2) << r.err;
    EXPECT_NE(r.err.find("accessible by group or others"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("chmod 600"), std::string::npos) << r.err;
    EXPECT_EQ(r.err.find(kSecret), std::string::npos) << r.err;
  }
}

TEST_F(StratadDbPasswordFile, FolderIsRefused) {
  auto r = stratad({"--db-password-file", dir_.string()});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("not a regular file"), std::string::npos) << r.err;
}

// A private file is accepted and parsing goes on: the error reported is the next flag's.
TEST_F(StratadDbPasswordFile, PrivateFileIsAcceptedAndParsingGoesOn) {
  auto r = stratad({"--db", "sqlite:" + (dir_ / "s.db").string(), "--data-dir", dir_.string(),
                    "--db-password-file", secret_file("ok", 0600), "--log-level", "loud"});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("unknown --log-level loud"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("stratad: --db-password-file"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find(kSecret), std::string::npos) << r.err;
}

// The task lease flags: bounds, and a lease shorter than two renewals is refused before
// anything starts (a late renewal would fail a live task).
TEST(StratadTaskLeaseFlags, BoundsAndALeaseOfAtLeastTwoRenewals) {
  auto r = stratad({"--task-lease", "5", "--data-dir", "/nonexistent-strata"});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("--task-lease must be 10..86400"), std::string::npos) << r.err;
  r = stratad({"--task-renew-interval", "0", "--data-dir", "/nonexistent-strata"});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("--task-renew-interval must be 1..3600"), std::string::npos) << r.err;
  r = stratad(
      {"--task-lease", "100", "--task-renew-interval", "60", "--data-dir", "/nonexistent-strata"});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("--task-lease must be at least twice --task-renew-interval"),
            std::string::npos)
      << r.err;
}

// --controller-workers: 1..256, refused before anything starts.
TEST(StratadControllerWorkersFlag, Bounds) {
  for (const char* bad : {"0", "257", "x", "-3"}) {
    auto r = stratad({"--controller-workers", bad, "--data-dir", "/nonexistent-strata"});
    EXPECT_EQ(r.exit_code, 2) << bad << ": " << r.err;
    EXPECT_NE(r.err.find("--controller-workers must be 1..256"), std::string::npos) << r.err;
  }
  // A good value is accepted and parsing goes on: the next flag's error is the one reported.
  auto r = stratad({"--controller-workers", "32", "--ha-lease", "-1"});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("--ha-lease"), std::string::npos) << r.err;
}

}  // namespace
