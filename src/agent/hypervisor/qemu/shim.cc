// The per-VM shim (run_shim) and its detached spawn (spawn_shim). The shim is QEMU's
// parent: it waits for QEMU and records how it ended in exit.json, so a crash while the
// agent is down is still known after the agent restarts.
#include "shim.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "strata/agent/qemu_hypervisor.h"
#include "vm_dir.h"

namespace strata::agent::qemu {
namespace {

// Marks every fd >= 3 close-on-exec (async-signal-safe; used between fork and exec).
void cloexec_from_3() {
  if (::syscall(SYS_close_range, 3u, ~0u, 4u /* CLOSE_RANGE_CLOEXEC */) == 0) return;
  long max = ::sysconf(_SC_OPEN_MAX);
  if (max < 0 || max > 65536) max = 65536;
  for (int fd = 3; fd < max; ++fd) ::fcntl(fd, F_SETFD, FD_CLOEXEC);
}

void reset_signals() {
  struct sigaction sa {};
  sa.sa_handler = SIG_DFL;
  for (int s : {SIGPIPE, SIGTERM, SIGINT, SIGHUP, SIGCHLD, SIGQUIT}) ::sigaction(s, &sa, nullptr);
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
}

std::vector<char*> c_argv(std::vector<std::string>& v) {
  std::vector<char*> out;
  for (auto& s : v) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

volatile sig_atomic_t g_child = 0;
void forward_signal(int sig) {
  if (g_child > 0) ::kill(g_child, sig);
}

}  // namespace

Status spawn_shim(const std::string& shim_exe, const std::string& vm_dir,
                  const std::vector<std::string>& qemu_argv) {
  std::vector<std::string> args = {shim_exe, "shim", "--vm-dir", vm_dir, "--"};
  args.insert(args.end(), qemu_argv.begin(), qemu_argv.end());
  std::vector<char*> argv = c_argv(args);
  std::string log_path = vm_dir + "/" + kQemuLog;
  int log_fd = ::open(log_path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
  if (log_fd < 0) return internal_error("open " + log_path + ": " + std::strerror(errno));
  int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  int err_pipe[2];
  if (null_fd < 0 || ::pipe2(err_pipe, O_CLOEXEC) != 0) {
    ::close(log_fd);
    if (null_fd >= 0) ::close(null_fd);
    return internal_error(std::string("pipe: ") + std::strerror(errno));
  }
  pid_t child = ::fork();
  if (child == 0) {
    // Middle child: new session, fork the shim, exit so the shim is adopted by init.
    ::setsid();
    pid_t gc = ::fork();
    if (gc != 0) ::_exit(gc < 0 ? 1 : 0);
    reset_signals();
    ::dup2(null_fd, 0);
    ::dup2(log_fd, 1);
    ::dup2(log_fd, 2);
    cloexec_from_3();
    ::execv(argv[0], argv.data());
    int e = errno;
    [[maybe_unused]] auto n = ::write(err_pipe[1], &e, sizeof(e));
    ::_exit(127);
  }
  ::close(err_pipe[1]);
  ::close(log_fd);
  ::close(null_fd);
  if (child < 0) {
    ::close(err_pipe[0]);
    return internal_error(std::string("fork: ") + std::strerror(errno));
  }
  int st = 0;
  while (::waitpid(child, &st, 0) < 0 && errno == EINTR) {
  }
  int e = 0;
  ssize_t n;
  do {
    n = ::read(err_pipe[0], &e, sizeof(e));
  } while (n < 0 && errno == EINTR);
  ::close(err_pipe[0]);
  if (n == sizeof(e)) return internal_error("exec " + shim_exe + ": " + std::strerror(e));
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) return internal_error("fork of the shim failed");
  return {};
}

bool process_matches(int pid, const std::string& needle) {
  if (pid <= 0) return false;
  std::ifstream in("/proc/" + std::to_string(pid) + "/cmdline", std::ios::binary);
  if (!in) return false;
  std::stringstream ss;
  ss << in.rdbuf();
  std::string cmd = ss.str();  // NUL-separated; empty for a zombie
  size_t start = 0;
  while (start < cmd.size()) {
    size_t end = cmd.find('\0', start);
    if (end == std::string::npos) end = cmd.size();
    if (cmd.compare(start, end - start, needle) == 0) return true;
    start = end + 1;
  }
  return false;
}

}  // namespace strata::agent::qemu

namespace strata::agent {

int run_shim(int argc, char** argv) {
  using namespace strata::agent::qemu;
  int i = 1;
  if (i < argc && std::strcmp(argv[i], "shim") == 0) ++i;
  std::string vm_dir;
  for (; i < argc; ++i) {
    if (std::strcmp(argv[i], "--vm-dir") == 0 && i + 1 < argc) {
      vm_dir = argv[++i];
    } else if (std::strcmp(argv[i], "--") == 0) {
      ++i;
      break;
    } else {
      ::dprintf(2, "shim: unknown argument %s\n", argv[i]);
      return 2;
    }
  }
  if (vm_dir.empty() || i >= argc) {
    ::dprintf(2, "usage: shim --vm-dir DIR -- QEMU_ARGV...\n");
    return 2;
  }
  ::setsid();  // EPERM when already a session leader: fine
  struct sigaction ign {};
  ign.sa_handler = SIG_IGN;
  for (int s : {SIGHUP, SIGINT, SIGPIPE}) ::sigaction(s, &ign, nullptr);
  struct sigaction fwd {};
  fwd.sa_handler = forward_signal;
  ::sigaction(SIGTERM, &fwd, nullptr);

  std::string pid_text = std::to_string(::getpid()) + "\n";
  if (auto s = write_file_atomic(vm_dir + "/" + kShimPidFile, pid_text); !s)
    ::dprintf(2, "shim: %s\n", s.error().message.c_str());

  pid_t child = ::fork();
  if (child == 0) {
    reset_signals();
    cloexec_from_3();
    ::execvp(argv[i], argv + i);
    ::dprintf(2, "shim: exec %s: %s\n", argv[i], std::strerror(errno));
    ::_exit(127);
  }
  if (child < 0) {
    ::dprintf(2, "shim: fork: %s\n", std::strerror(errno));
    ExitRecord r{0, false, 127, now_unix_ms()};
    (void)write_exit_record(vm_dir, r);
    return 1;
  }
  g_child = child;
  int st = 0;
  while (::waitpid(child, &st, 0) < 0) {
    if (errno != EINTR) break;
  }
  ExitRecord r;
  r.qemu_pid = child;
  r.signaled = WIFSIGNALED(st);
  r.code = r.signaled ? WTERMSIG(st) : WEXITSTATUS(st);
  r.at_unix_ms = now_unix_ms();
  if (auto s = write_exit_record(vm_dir, r); !s) {
    ::dprintf(2, "shim: %s\n", s.error().message.c_str());
    return 1;
  }
  ::unlink((vm_dir + "/" + kShimPidFile).c_str());
  return 0;
}

}  // namespace strata::agent
