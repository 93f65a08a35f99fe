// SocketClaim (see socket_claim.h).
#include "socket_claim.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

namespace strata::agent::cli {

namespace {

constexpr size_t kSunPathMax = sizeof(sockaddr_un{}.sun_path) - 1;

// True when something accepts connections on `path` now. A stale socket file (its server
// gone) refuses with ECONNREFUSED; a live server that is slow to accept() still completes
// the connect through the listen backlog.
bool answers(const std::string& path) {
  if (path.size() > kSunPathMax) return false;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  int rc;
  do {
    rc = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  } while (rc < 0 && errno == EINTR);
  bool ok = rc == 0 || errno == EAGAIN;  // EAGAIN: backlog full, still a live server
  ::close(fd);
  return ok;
}

}  // namespace

SocketClaim::SocketClaim(std::string public_path) : public_path_(std::move(public_path)) {
  bind_path_ = fmt::format("{}.{}", public_path_, ::getpid());
  if (bind_path_.size() > kSunPathMax) {
    bind_path_ = public_path_;
    return;
  }
  // A leftover of a killed process that had our pid (no live process has it): free it.
  struct stat st {};
  if (::lstat(bind_path_.c_str(), &st) == 0 && S_ISSOCK(st.st_mode)) ::unlink(bind_path_.c_str());
}

Status SocketClaim::check_free() const {
  if (answers(public_path_))
    return make_error(ErrorCode::conflict,
                      fmt::format("another server is listening on {}", public_path_));
  return {};
}

Status SocketClaim::publish() {
  if (bind_path_ != public_path_) {
    if (auto s = check_free(); !s) {
      ::unlink(bind_path_.c_str());
      return s;
    }
    if (::rename(bind_path_.c_str(), public_path_.c_str()) != 0)
      return internal_error(fmt::format("rename {} to {}: {}", bind_path_, public_path_,
                                        std::strerror(errno)));
  }
  struct stat st {};
  if (::lstat(public_path_.c_str(), &st) != 0)
    return internal_error(fmt::format("stat {}: {}", public_path_, std::strerror(errno)));
  dev_ = st.st_dev;
  ino_ = st.st_ino;
  published_ = true;
  return {};
}

void SocketClaim::release() {
  if (!published_) return;
  published_ = false;
  struct stat st {};
  if (::lstat(public_path_.c_str(), &st) != 0) return;
  if (st.st_dev != dev_ || st.st_ino != ino_) return;  // someone else's socket now
  ::unlink(public_path_.c_str());
}

}  // namespace strata::agent::cli
