// Raw HTTP/1.1 over loopback sockets for tests that need what a well-behaved client never
// does: partial headers, trickled bodies, many connections from chosen source addresses
// (127.0.0.0/8 is all loopback on Linux), connections held open.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>

namespace strata::manager::test_support {

// A connected TCP socket from `source` (port chosen by the kernel) to 127.0.0.1:port;
// -1 on failure. Blocking unless `nonblocking` (then the connect may still be under way).
inline int connect_from(const std::string& source, uint16_t port, bool nonblocking = false) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | (nonblocking ? SOCK_NONBLOCK : 0), 0);
  if (fd < 0) return -1;
  sockaddr_in src{};
  src.sin_family = AF_INET;
  ::inet_pton(AF_INET, source.c_str(), &src.sin_addr);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&src), sizeof src) != 0) {
    ::close(fd);
    return -1;
  }
  sockaddr_in dst{};
  dst.sin_family = AF_INET;
  dst.sin_port = htons(port);
  ::inet_pton(AF_INET, "127.0.0.1", &dst.sin_addr);
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&dst), sizeof dst) != 0 && errno != EINPROGRESS) {
    ::close(fd);
    return -1;
  }
  return fd;
}

inline bool send_all(int fd, const std::string& data) {
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
      pollfd p{fd, POLLOUT, 0};
      ::poll(&p, 1, 1000);
      continue;
    }
    if (n <= 0) return false;
    off += static_cast<size_t>(n);
  }
  return true;
}

struct RawResponse {
  unsigned status = 0;
  std::string head;  // status line and header fields
  std::string body;
};

// Reads one response (Content-Length framed) within `timeout`; nullopt when the peer
// closed or reset first, or on timeout (`*closed` tells which).
inline std::optional<RawResponse> read_response(int fd, std::chrono::milliseconds timeout,
                                                bool* closed = nullptr) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  std::string buf;
  if (closed) *closed = false;
  for (;;) {
    size_t end = buf.find("\r\n\r\n");
    if (end != std::string::npos) {
      RawResponse r;
      r.head = buf.substr(0, end);
      r.status = static_cast<unsigned>(std::atoi(r.head.c_str() + 9));
      size_t len = 0;
      std::string lower = r.head;
      for (auto& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      if (size_t p = lower.find("content-length:"); p != std::string::npos)
        len = static_cast<size_t>(std::atoll(lower.c_str() + p + 15));
      if (buf.size() >= end + 4 + len) {
        r.body = buf.substr(end + 4, len);
        return r;
      }
    }
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return std::nullopt;
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
    char tmp[16384];
    ssize_t n = ::recv(fd, tmp, sizeof tmp, 0);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
    if (n <= 0) {
      if (closed) *closed = true;
      return std::nullopt;
    }
    buf.append(tmp, static_cast<size_t>(n));
  }
}

// Whether the server closed (or reset) the connection within `timeout`; data it sends
// first (an error response) is read and dropped.
inline bool closed_by_peer(int fd, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
    char tmp[4096];
    ssize_t n = ::recv(fd, tmp, sizeof tmp, MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
    if (n <= 0) return true;
  }
}

// Raises the soft RLIMIT_NOFILE to at least `want` (and the hard limit when root);
// false when that is not possible.
inline bool raise_fd_limit(rlim_t want) {
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) != 0) return false;
  if (rl.rlim_cur >= want) return true;
  if (rl.rlim_max < want) rl.rlim_max = want;  // only root may raise it
  rl.rlim_cur = want;
  return ::setrlimit(RLIMIT_NOFILE, &rl) == 0;
}

}  // namespace strata::manager::test_support
