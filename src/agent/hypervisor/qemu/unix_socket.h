// Small POSIX helpers for the driver: an owning file descriptor, UNIX stream socket
// connect, and write-all / poll-read with a deadline.
#pragma once

#include <chrono>
#include <string>
#include <string_view>

#include "strata/common/error.h"

namespace strata::agent::qemu {

class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& o) noexcept : fd_(o.release()) {}
  Fd& operator=(Fd&& o) noexcept;
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { reset(); }
  int get() const { return fd_; }
  explicit operator bool() const { return fd_ >= 0; }
  int release() {
    int f = fd_;
    fd_ = -1;
    return f;
  }
  void reset(int fd = -1);

 private:
  int fd_ = -1;
};

// One connect attempt (CLOEXEC; the returned socket is blocking). unavailable when nobody
// listens (yet) or the listener is busy (backlog full): never waits on the peer.
Result<Fd> connect_unix(const std::string& path);

// Writes everything (retrying on EINTR/short writes); fails after `timeout`.
Status write_all(int fd, std::string_view data, std::chrono::milliseconds timeout);
// As write_all, with `pass_fd` attached (SCM_RIGHTS) to the first byte sent: how QMP's
// getfd and add-fd receive a file descriptor. The caller keeps its own copy of pass_fd.
Status write_all_with_fd(int fd, std::string_view data, int pass_fd,
                         std::chrono::milliseconds timeout);

// Waits until `fd` is readable or the timeout passes; returns false on timeout.
Result<bool> wait_readable(int fd, std::chrono::milliseconds timeout);

}  // namespace strata::agent::qemu
