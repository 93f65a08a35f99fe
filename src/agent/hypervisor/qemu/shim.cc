// The per-VM shim (run_shim) and its detached spawn (spawn_shim). The shim is QEMU's
// parent: it waits for QEMU and records how it ended in exit.json, so a crash while the
// agent is down is still known after the agent restarts.
#include "shim.h"

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "argv.h"
#include "ha_lease.h"
#include "strata/agent/network.h"
#include "strata/agent/qemu_hypervisor.h"
#include "vm_dir.h"

namespace strata::agent::qemu {
namespace {

// Marks every fd >= `first` close-on-exec (async-signal-safe; used between fork and exec).
void cloexec_from(int first) {
  if (::syscall(SYS_close_range, static_cast<unsigned>(first), ~0u, 4u /* CLOSE_RANGE_CLOEXEC */) ==
      0)
    return;
  long max = ::sysconf(_SC_OPEN_MAX);
  if (max < 0 || max > 65536) max = 65536;
  for (int fd = first; fd < max; ++fd) ::fcntl(fd, F_SETFD, FD_CLOEXEC);
}
void cloexec_from_3() { cloexec_from(3); }

// Moves `fds` to kFirstTapFd, kFirstTapFd + 1, ... (inheritable) in a forked child.
// Each goes up out of the target range first, so no move overwrites a later source.
bool place_fds(const std::vector<int>& fds) {
  std::vector<int> high;
  for (int fd : fds) {
    int h = ::fcntl(fd, F_DUPFD_CLOEXEC, 256);
    if (h < 0) return false;
    high.push_back(h);
  }
  for (size_t k = 0; k < high.size(); ++k)
    if (::dup2(high[k], kFirstTapFd + static_cast<int>(k)) < 0) return false;
  return true;
}

// Drops to uid/gid with exactly `groups` as supplementary groups, then checks that root
// cannot be regained. Returns 0 or the errno of the failed step (EPERM if root came back).
int drop_privileges(uid_t uid, gid_t gid, const std::vector<gid_t>& groups) {
  if (::setgroups(groups.size(), groups.data()) != 0) return errno;
  if (::setresgid(gid, gid, gid) != 0) return errno;
  if (::setresuid(uid, uid, uid) != 0) return errno;
  if (uid != 0 && (::setuid(0) == 0 || ::geteuid() == 0)) return EPERM;
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return errno;
  return 0;
}

bool parse_id(const char* s, unsigned& out) {
  char* end = nullptr;
  errno = 0;
  unsigned long v = std::strtoul(s, &end, 10);
  if (errno != 0 || end == s || *end != '\0' || v > 0xfffffffeul) return false;
  out = static_cast<unsigned>(v);
  return true;
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

// Waits for QEMU (`child`) like waitpid, and meanwhile checks the VM's HA lease every
// kLeaseCheck: once it has run out (or the file is not a lease), QEMU is killed at once
// (SIGKILL: a self-fenced host must stop writing to shared disks now, not after a guest
// shutdown) and ha-lease-expired records when, for the agent's exit reason.
void wait_enforcing_lease(const std::string& vm_dir, pid_t child, int& st) {
  constexpr int kLeaseCheckMs = 500;
  int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, child, 0));
  bool killed = false;
  while (true) {
    pid_t w = ::waitpid(child, &st, WNOHANG);
    if (w == child) break;
    if (w < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (!killed && read_lease_verdict(vm_dir) == LeaseVerdict::expired) {
      ::dprintf(2, "shim: the VM's HA lease has run out (no renewal from the manager): "
                   "stopping QEMU\n");
      (void)write_file_atomic(vm_dir + "/" + kLeaseExpiredFile,
                              std::to_string(now_unix_ms()) + "\n", kVmFileMode);
      ::kill(child, SIGKILL);
      killed = true;
    }
    if (pidfd >= 0) {
      struct pollfd p {pidfd, POLLIN, 0};
      (void)::poll(&p, 1, kLeaseCheckMs);
    } else {
      ::usleep(kLeaseCheckMs * 1000);
    }
  }
  if (pidfd >= 0) ::close(pidfd);
}

}  // namespace

std::vector<std::string> shim_args(const std::string& vm_dir, const ShimOptions& options) {
  std::vector<std::string> args = {"shim", "--vm-dir", vm_dir};
  if (options.run_as) {
    const QemuUser& u = *options.run_as;
    std::string groups;
    for (gid_t g : u.groups) groups += (groups.empty() ? "" : ",") + std::to_string(g);
    args.insert(args.end(), {"--uid", std::to_string(u.uid), "--gid", std::to_string(u.gid),
                             "--groups", groups.empty() ? std::to_string(u.gid) : groups});
  }
  for (const auto& t : options.taps) args.insert(args.end(), {"--tap", t});
  if (options.lease) args.push_back(kShimLeaseFlag);
  return args;
}

Status spawn_shim(const std::string& shim_exe, const std::string& vm_dir,
                  const std::vector<std::string>& qemu_argv, const ShimOptions& options) {
  std::vector<std::string> args = {shim_exe};
  for (auto& a : shim_args(vm_dir, options)) args.push_back(std::move(a));
  args.push_back("--");
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

bool shim_enforces_lease(const std::string& vm_dir) {
  std::ifstream in(vm_dir + "/" + kShimPidFile);
  int shim = 0;
  in >> shim;
  return shim > 0 && process_matches(shim, vm_dir) && process_matches(shim, kShimLeaseFlag);
}

}  // namespace strata::agent::qemu

namespace strata::agent {

int run_shim(int argc, char** argv) {
  using namespace strata::agent::qemu;
  int i = 1;
  if (i < argc && std::strcmp(argv[i], "shim") == 0) ++i;
  std::string vm_dir;
  bool drop = false;
  bool lease = false;
  unsigned uid = 0, gid = 0;
  bool have_uid = false, have_gid = false;
  std::vector<gid_t> groups;
  std::vector<std::string> taps;
  for (; i < argc; ++i) {
    if (std::strcmp(argv[i], "--vm-dir") == 0 && i + 1 < argc) {
      vm_dir = argv[++i];
    } else if (std::strcmp(argv[i], "--uid") == 0 && i + 1 < argc) {
      if (!parse_id(argv[++i], uid)) return ::dprintf(2, "shim: bad --uid\n"), 2;
      have_uid = drop = true;
    } else if (std::strcmp(argv[i], "--gid") == 0 && i + 1 < argc) {
      if (!parse_id(argv[++i], gid)) return ::dprintf(2, "shim: bad --gid\n"), 2;
      have_gid = true;
    } else if (std::strcmp(argv[i], "--groups") == 0 && i + 1 < argc) {
      std::string list = argv[++i];
      size_t start = 0;
      while (start <= list.size()) {
        size_t end = list.find(',', start);
        if (end == std::string::npos) end = list.size();
        unsigned g = 0;
        if (!parse_id(list.substr(start, end - start).c_str(), g))
          return ::dprintf(2, "shim: bad --groups\n"), 2;
        groups.push_back(g);
        start = end + 1;
      }
    } else if (std::strcmp(argv[i], "--tap") == 0 && i + 1 < argc) {
      taps.push_back(argv[++i]);
    } else if (std::strcmp(argv[i], kShimLeaseFlag) == 0) {
      lease = true;
    } else if (std::strcmp(argv[i], "--") == 0) {
      ++i;
      break;
    } else {
      ::dprintf(2, "shim: unknown argument %s\n", argv[i]);
      return 2;
    }
  }
  if (vm_dir.empty() || i >= argc || have_uid != have_gid) {
    ::dprintf(2,
              "usage: shim --vm-dir DIR [--uid U --gid G [--groups G1,G2...]] [--tap NAME]... "
              "[--lease] -- QEMU_ARGV...\n");
    return 2;
  }
  if (drop && uid == 0) {
    ::dprintf(2, "shim: --uid 0 is not a privilege drop\n");
    return 2;
  }
  if (drop && groups.empty()) groups.push_back(gid);
  ::setsid();  // EPERM when already a session leader: fine
  struct sigaction ign {};
  ign.sa_handler = SIG_IGN;
  for (int s : {SIGHUP, SIGINT, SIGPIPE}) ::sigaction(s, &ign, nullptr);
  struct sigaction fwd {};
  fwd.sa_handler = forward_signal;
  ::sigaction(SIGTERM, &fwd, nullptr);

  std::string pid_text = std::to_string(::getpid()) + "\n";
  if (auto s = write_file_atomic(vm_dir + "/" + kShimPidFile, pid_text, kVmFileMode); !s)
    ::dprintf(2, "shim: %s\n", s.error().message.c_str());

  auto fail_before_qemu = [&](const std::string& why) {
    ::dprintf(2, "shim: %s\n", why.c_str());
    ExitRecord r{0, false, 127, now_unix_ms()};
    (void)write_exit_record(vm_dir, r);
    ::unlink((vm_dir + "/" + kShimPidFile).c_str());
    return 1;
  };
  // Taps are opened here, as root, so QEMU needs neither /dev/net/tun nor CAP_NET_ADMIN.
  std::vector<int> tap_fds;
  for (const auto& t : taps) {
    auto fd = open_tap(t);
    if (!fd) return fail_before_qemu("tap " + t + ": " + fd.error().message);
    tap_fds.push_back(*fd);
  }

  pid_t child = ::fork();
  if (child == 0) {
    reset_signals();
    if (!place_fds(tap_fds)) {
      ::dprintf(2, "shim: passing tap fds: %s\n", std::strerror(errno));
      ::_exit(127);
    }
    cloexec_from(kFirstTapFd + static_cast<int>(tap_fds.size()));
    if (drop) {
      if (int e = drop_privileges(uid, gid, groups); e != 0) {
        ::dprintf(2, "shim: dropping privileges to uid %u gid %u: %s\n", uid, gid,
                  std::strerror(e));
        ::_exit(127);
      }
    }
    ::execvp(argv[i], argv + i);
    ::dprintf(2, "shim: exec %s: %s\n", argv[i], std::strerror(errno));
    ::_exit(127);
  }
  for (int fd : tap_fds) ::close(fd);
  if (child < 0) {
    ::dprintf(2, "shim: fork: %s\n", std::strerror(errno));
    ExitRecord r{0, false, 127, now_unix_ms()};
    (void)write_exit_record(vm_dir, r);
    return 1;
  }
  g_child = child;
  int st = 0;
  if (lease) {
    wait_enforcing_lease(vm_dir, child, st);
  } else {
    while (::waitpid(child, &st, 0) < 0) {
      if (errno != EINTR) break;
    }
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
