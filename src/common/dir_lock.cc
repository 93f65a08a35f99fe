// DirLock: flock on a lock file, pid written inside for the messages of whoever is refused.
#include "strata/common/dir_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include <fmt/format.h>

namespace strata {

namespace {

int read_pid(int fd) {
  char buf[32] = {};
  ssize_t n = ::pread(fd, buf, sizeof(buf) - 1, 0);
  if (n <= 0) return 0;
  int pid = 0;
  for (ssize_t i = 0; i < n && buf[i] >= '0' && buf[i] <= '9'; ++i) pid = pid * 10 + (buf[i] - '0');
  return pid;
}

std::string holder_text(int pid) {
  return pid > 0 ? fmt::format("process {}", pid) : std::string("another process");
}

}  // namespace

Result<DirLock> DirLock::acquire(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0)
    return internal_error(fmt::format("open lock file {}: {}", path, std::strerror(errno)));
  int rc;
  do {
    rc = ::flock(fd, LOCK_EX | LOCK_NB);
  } while (rc != 0 && errno == EINTR);
  if (rc != 0) {
    int e = errno;
    int pid = e == EWOULDBLOCK ? read_pid(fd) : 0;
    ::close(fd);
    if (e == EWOULDBLOCK)
      return make_error(ErrorCode::conflict,
                        fmt::format("{} is locked by {}", path, holder_text(pid)));
    return internal_error(fmt::format("flock {}: {}", path, std::strerror(e)));
  }
  // Only the holder writes: the pid is informative (messages, adoption), the lock is the fact.
  std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, pid.data(), pid.size(), 0) != ssize_t(pid.size())) {
    int e = errno;
    ::close(fd);
    return internal_error(fmt::format("write lock file {}: {}", path, std::strerror(e)));
  }
  return DirLock(fd, path);
}

DirLock& DirLock::operator=(DirLock&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = o.fd_;
    path_ = std::move(o.path_);
    o.fd_ = -1;
  }
  return *this;
}

DirLock::~DirLock() {
  if (fd_ >= 0) ::close(fd_);
}

Result<std::optional<int>> lock_holder(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) {
    if (errno == ENOENT) return std::optional<int>();
    return internal_error(fmt::format("open lock file {}: {}", path, std::strerror(errno)));
  }
  int rc;
  do {
    rc = ::flock(fd, LOCK_SH | LOCK_NB);
  } while (rc != 0 && errno == EINTR);
  if (rc == 0) {
    ::close(fd);  // free: our shared lock ends with the descriptor
    return std::optional<int>();
  }
  int e = errno;
  int pid = e == EWOULDBLOCK ? read_pid(fd) : 0;
  ::close(fd);
  if (e != EWOULDBLOCK) return internal_error(fmt::format("flock {}: {}", path, std::strerror(e)));
  return std::optional<int>(pid);
}

}  // namespace strata
