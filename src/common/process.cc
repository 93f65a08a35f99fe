// posix_spawn-based process runner with captured output and timeout (fork+exec when the
// child needs resource limits).
#include "strata/common/process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

extern char** environ;

namespace strata {
namespace {

struct Pipe {
  int fd[2] = {-1, -1};
  ~Pipe() {
    for (int f : fd)
      if (f >= 0) ::close(f);
  }
  bool open() { return ::pipe2(fd, O_CLOEXEC) == 0; }
  void close_end(int i) {
    if (fd[i] >= 0) ::close(fd[i]);
    fd[i] = -1;
  }
};

// Signals the child gets back at their default action (the parent may ignore or block them).
sigset_t default_signals() {
  sigset_t def;
  sigemptyset(&def);
  sigaddset(&def, SIGPIPE);
  sigaddset(&def, SIGTERM);
  sigaddset(&def, SIGINT);
  sigaddset(&def, SIGCHLD);
  return def;
}

// fork + setrlimit + exec, for runs with resource limits. Between fork and exec the child
// calls only async-signal-safe functions (the parent is multi-threaded); everything it
// needs is prepared before the fork.
Result<pid_t> fork_exec_limited(const std::string& exe, std::vector<char*>& argv,
                                std::vector<char*>& envp, int in_fd, int out_fd, int err_fd,
                                const RunOptions& options) {
  struct rlimit as {}, cpu {};
  if (options.max_address_space_bytes)
    as.rlim_cur = as.rlim_max = static_cast<rlim_t>(*options.max_address_space_bytes);
  if (options.max_cpu_seconds)
    cpu.rlim_cur = cpu.rlim_max = static_cast<rlim_t>(*options.max_cpu_seconds);
  sigset_t def = default_signals();
  sigset_t none;
  sigemptyset(&none);
  pid_t pid = ::fork();
  if (pid < 0) return internal_error("fork " + exe + ": " + std::strerror(errno));
  if (pid == 0) {
    const int from[3] = {in_fd, out_fd, err_fd};
    for (int i = 0; i < 3; ++i) {
      // dup2 onto itself keeps O_CLOEXEC: clear it by hand then.
      int rc = from[i] == i ? ::fcntl(i, F_SETFD, 0) : ::dup2(from[i], i);
      if (rc < 0) ::_exit(127);
    }
    if (options.max_address_space_bytes && ::setrlimit(RLIMIT_AS, &as) != 0) ::_exit(127);
    if (options.max_cpu_seconds && ::setrlimit(RLIMIT_CPU, &cpu) != 0) ::_exit(127);
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    for (int sig = 1; sig < NSIG; ++sig)
      if (sigismember(&def, sig) == 1) ::sigaction(sig, &dfl, nullptr);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::execve(exe.c_str(), argv.data(), envp.data());
    ::_exit(127);
  }
  return pid;
}

}  // namespace

std::string find_executable(const std::string& name) {
  if (name.find('/') != std::string::npos) return ::access(name.c_str(), X_OK) == 0 ? name : "";
  const char* path = ::getenv("PATH");
  std::string p = path ? path : "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
  size_t start = 0;
  while (start <= p.size()) {
    size_t end = p.find(':', start);
    if (end == std::string::npos) end = p.size();
    std::string candidate = p.substr(start, end - start) + "/" + name;
    struct stat st {};
    if (::stat(candidate.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
        ::access(candidate.c_str(), X_OK) == 0)
      return candidate;
    start = end + 1;
  }
  return "";
}

Result<ProcessResult> run_process(const std::vector<std::string>& argv, const RunOptions& options) {
  if (argv.empty()) return invalid_argument("argv", "empty argv");
  std::string exe = find_executable(argv[0]);
  if (exe.empty()) return make_error(ErrorCode::not_found, "executable not found: " + argv[0]);

  Pipe in, out, err;
  if (!in.open() || !out.open() || !err.open())
    return internal_error(std::string("pipe: ") + std::strerror(errno));

  std::vector<char*> cargv;
  for (const auto& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
  cargv.push_back(nullptr);
  std::vector<std::string> env_store;
  for (char** e = environ; e && *e; ++e) env_store.emplace_back(*e);
  for (const auto& e : options.extra_env) env_store.push_back(e);
  std::vector<char*> cenv;
  for (auto& e : env_store) cenv.push_back(e.data());
  cenv.push_back(nullptr);

  pid_t pid = -1;
  if (options.max_address_space_bytes || options.max_cpu_seconds) {
    auto spawned = fork_exec_limited(exe, cargv, cenv, in.fd[0], out.fd[1], err.fd[1], options);
    if (!spawned) return tl::unexpected(spawned.error());
    pid = *spawned;
  } else {
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in.fd[0], 0);
    posix_spawn_file_actions_adddup2(&fa, out.fd[1], 1);
    posix_spawn_file_actions_adddup2(&fa, err.fd[1], 2);
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    sigset_t def = default_signals();
    posix_spawnattr_setsigdefault(&attr, &def);
    sigset_t none;
    sigemptyset(&none);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
    int rc = posix_spawn(&pid, exe.c_str(), &fa, &attr, cargv.data(), cenv.data());
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    if (rc != 0) return internal_error("spawn " + exe + ": " + std::strerror(rc));
  }

  in.close_end(0);
  out.close_end(1);
  err.close_end(1);

  ProcessResult result;
  std::string input = options.stdin_data.value_or("");
  size_t written = 0;
  if (input.empty()) in.close_end(1);
  else ::fcntl(in.fd[1], F_SETFL, O_NONBLOCK);

  auto deadline = options.timeout
                      ? std::optional(std::chrono::steady_clock::now() + *options.timeout)
                      : std::nullopt;
  char buf[65536];
  while (out.fd[0] >= 0 || err.fd[0] >= 0) {
    std::vector<pollfd> fds;
    if (out.fd[0] >= 0) fds.push_back({out.fd[0], POLLIN, 0});
    if (err.fd[0] >= 0) fds.push_back({err.fd[0], POLLIN, 0});
    if (in.fd[1] >= 0) fds.push_back({in.fd[1], POLLOUT, 0});
    int wait_ms = -1;
    if (deadline) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          *deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) {
        ::kill(pid, SIGKILL);
        result.timed_out = true;
        break;
      }
      wait_ms = static_cast<int>(left.count());
    }
    int n = ::poll(fds.data(), fds.size(), wait_ms);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) break;
    for (auto& p : fds) {
      if (!p.revents) continue;
      if (p.fd == in.fd[1]) {
        ssize_t w = ::write(p.fd, input.data() + written, input.size() - written);
        if (w > 0) written += static_cast<size_t>(w);
        if (w < 0 || written >= input.size()) in.close_end(1);
        continue;
      }
      ssize_t r = ::read(p.fd, buf, sizeof buf);
      std::string& dst = (p.fd == out.fd[0]) ? result.out : result.err;
      if (r > 0) {
        if (options.on_stdout && p.fd == out.fd[0])
          options.on_stdout(std::string_view(buf, static_cast<size_t>(r)));
        size_t room = options.max_output_bytes > dst.size() ? options.max_output_bytes - dst.size() : 0;
        dst.append(buf, std::min(room, static_cast<size_t>(r)));
      } else if (r == 0 || (r < 0 && errno != EINTR && errno != EAGAIN)) {
        if (p.fd == out.fd[0]) out.close_end(0);
        else err.close_end(0);
      }
    }
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFSIGNALED(status)) {
    result.signaled = true;
    result.term_signal = WTERMSIG(status);
  } else if (WIFEXITED(status)) {
    result.exit_code = WEXITSTATUS(status);
  }
  return result;
}

Result<std::string> run_checked(const std::vector<std::string>& argv, const RunOptions& options) {
  auto r = run_process(argv, options);
  if (!r) return tl::unexpected(r.error());
  if (r->timed_out) return make_error(ErrorCode::deadline_exceeded, argv[0] + " timed out");
  if (!r->ok()) {
    std::string msg = argv[0] + " failed";
    if (r->signaled) msg += " (signal " + std::to_string(r->term_signal) + ")";
    else msg += " (exit " + std::to_string(r->exit_code) + ")";
    if (!r->err.empty()) msg += ": " + r->err.substr(0, 2000);
    return internal_error(msg);
  }
  return std::move(r->out);
}

}  // namespace strata
