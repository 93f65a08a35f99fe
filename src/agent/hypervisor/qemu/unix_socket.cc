// POSIX helpers (see unix_socket.h).
#include "unix_socket.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace strata::agent::qemu {

Fd& Fd::operator=(Fd&& o) noexcept {
  if (this != &o) reset(o.release());
  return *this;
}

void Fd::reset(int fd) {
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
}

Result<Fd> connect_unix(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof(addr.sun_path)) return invalid_argument("path", "socket path too long");
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  // Non-blocking for the connect only: a UNIX connect to a listener whose backlog is full
  // (QEMU's chardevs accept one client and stop accepting while it stays) would otherwise
  // block forever. EAGAIN is "busy", retried by the callers like "not there yet".
  Fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd) return internal_error(std::string("socket: ") + std::strerror(errno));
  int rc;
  do {
    rc = ::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  } while (rc < 0 && errno == EINTR);
  if (rc < 0 && errno == EAGAIN)
    return unavailable("connect " + path + ": busy (the listener accepts no more clients now)");
  if (rc < 0) return unavailable("connect " + path + ": " + std::strerror(errno));
  int flags = ::fcntl(fd.get(), F_GETFL);
  if (flags < 0 || ::fcntl(fd.get(), F_SETFL, flags & ~O_NONBLOCK) != 0)
    return internal_error(std::string("fcntl: ") + std::strerror(errno));
  return fd;
}

namespace {

// A non-blocking socket's send would block: waits until it can write or `deadline` passes.
Status wait_writable(int fd, std::chrono::steady_clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
      deadline - std::chrono::steady_clock::now());
  if (left.count() <= 0) return make_error(ErrorCode::deadline_exceeded, "write timed out");
  pollfd p{fd, POLLOUT, 0};
  ::poll(&p, 1, static_cast<int>(left.count()));
  return {};
}

}  // namespace

Status write_all(int fd, std::string_view data, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!data.empty()) {
    ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      data.remove_prefix(static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (auto w = wait_writable(fd, deadline); !w) return w;
      continue;
    }
    return unavailable(std::string("write: ") + std::strerror(errno));
  }
  return {};
}

Status write_all_with_fd(int fd, std::string_view data, int pass_fd,
                         std::chrono::milliseconds timeout) {
  if (data.empty()) return invalid_argument("data", "nothing to carry the descriptor");
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    char byte = data.front();
    iovec iov{&byte, 1};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof(control);
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(c), &pass_fd, sizeof(int));
    ssize_t n = ::sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n == 1) break;
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (auto w = wait_writable(fd, deadline); !w) return w;
      continue;
    }
    return unavailable(std::string("sendmsg: ") + std::strerror(errno));
  }
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
      deadline - std::chrono::steady_clock::now());
  return write_all(fd, data.substr(1), std::max(left, std::chrono::milliseconds(1)));
}

Result<bool> wait_readable(int fd, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    pollfd p{fd, POLLIN, 0};
    int rc = ::poll(&p, 1, static_cast<int>(std::max<int64_t>(0, left.count())));
    if (rc > 0) return true;
    if (rc == 0) return false;
    if (errno != EINTR) return internal_error(std::string("poll: ") + std::strerror(errno));
  }
}

}  // namespace strata::agent::qemu
