// Test helper: runs a function in a forked child under strace and returns the system calls
// it made, so a test can check what no crash-free test sees — that a rename is followed by
// an fsync of its folder (a crash could otherwise lose the new name, and with it every
// write made to the file after the rename). Header-only; needs strace (Debian `strace`),
// otherwise the caller skips and says why.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace strata::testing {

inline std::string find_in_path(const std::string& tool) {
  const char* path = std::getenv("PATH");
  std::stringstream dirs(path ? path : "/usr/bin:/bin");
  for (std::string d; std::getline(dirs, d, ':');) {
    std::string p = d + "/" + tool;
    if (::access(p.c_str(), X_OK) == 0) return p;
  }
  return {};
}

// The lines strace wrote for `syscalls` (strace's -e trace= list) while `fn` ran in a child
// process; nullopt (and `why_not`) when strace is missing or could not attach. `fn` runs
// after fork: it must not use gtest assertions; a non-zero return fails the trace.
inline std::optional<std::vector<std::string>> trace_syscalls(const std::string& syscalls,
                                                              const std::function<int()>& fn,
                                                              std::string* why_not) {
  std::string strace = find_in_path("strace");
  if (strace.empty()) {
    *why_not = "strace not found (Debian package strace)";
    return std::nullopt;
  }
  int go[2];
  if (::pipe(go) != 0) {
    *why_not = "pipe failed";
    return std::nullopt;
  }
  pid_t child = ::fork();
  if (child == 0) {
    ::close(go[1]);
    char c;
    if (::read(go[0], &c, 1) != 1) ::_exit(90);  // the parent gave up: never run fn untraced
    ::_exit(fn());
  }
  ::close(go[0]);
  char log_tmpl[] = "/tmp/strata-strace-XXXXXX";
  int log_fd = ::mkstemp(log_tmpl);
  if (log_fd >= 0) ::close(log_fd);
  std::string log = log_tmpl;
  std::string pid = std::to_string(child);
  std::string filter = "trace=" + syscalls;
  std::vector<std::string> args = {strace, "-f", "-qq", "-e", filter, "-o", log, "-p", pid};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t tracer = -1;
  bool spawned =
      ::posix_spawn(&tracer, strace.c_str(), nullptr, nullptr, argv.data(), environ) == 0;
  // Wait (bounded) until strace is attached: the child's TracerPid turns non-zero.
  bool attached = false;
  for (int i = 0; spawned && i < 1000 && !attached; ++i) {
    std::ifstream status("/proc/" + pid + "/status");
    for (std::string line; std::getline(status, line);)
      if (line.rfind("TracerPid:", 0) == 0) attached = std::atoi(line.c_str() + 10) != 0;
    if (!attached) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  if (attached) (void)!::write(go[1], "x", 1);
  ::close(go[1]);
  int child_status = 0;
  ::waitpid(child, &child_status, 0);
  if (spawned) {
    int ts = 0;
    ::waitpid(tracer, &ts, 0);
  }
  std::vector<std::string> lines;
  {
    std::ifstream in(log);
    for (std::string l; std::getline(in, l);) lines.push_back(l);
  }
  ::unlink(log.c_str());
  if (!attached) {
    *why_not = "strace could not attach to the child (ptrace not permitted?)";
    return std::nullopt;
  }
  if (!WIFEXITED(child_status) || WEXITSTATUS(child_status) != 0) {
    *why_not = "the traced function failed (exit " +
               std::to_string(WIFEXITED(child_status) ? WEXITSTATUS(child_status) : -1) + ")";
    lines.push_back("TRACED FUNCTION FAILED");
  }
  return lines;
}

// Whether, in a trace of rename*, openat and fsync, a successful rename onto `target` is
// followed by an fsync of a descriptor opened on `dir` (the folder that holds the name).
inline bool rename_then_dir_fsync(const std::vector<std::string>& lines, const std::string& target,
                                  const std::string& dir) {
  bool renamed = false;
  std::vector<std::string> dir_fds;
  for (const auto& l : lines) {
    if (!renamed) {
      renamed = l.find("rename") != std::string::npos &&
                l.find("\"" + target + "\"") != std::string::npos &&
                l.find(" = 0") != std::string::npos;
      continue;
    }
    if (l.find("openat(") != std::string::npos && l.find("\"" + dir + "\"") != std::string::npos &&
        l.find("O_DIRECTORY") != std::string::npos) {
      auto eq = l.rfind(" = ");
      if (eq != std::string::npos) dir_fds.push_back(l.substr(eq + 3));
      continue;
    }
    for (const auto& fd : dir_fds)
      if (l.find("fsync(" + fd + ")") != std::string::npos && l.find(" = 0") != std::string::npos)
        return true;
  }
  return false;
}

}  // namespace strata::testing
