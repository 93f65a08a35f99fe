// The agent's listening UNIX socket path, owned safely. gRPC unlinks a UNIX socket path
// both before it binds and when the server shuts down, whoever that path belongs to by
// then. So gRPC binds a private name (<path>.<pid>), and publish() renames it over the
// public path: atomic, it replaces a stale socket left by a killed agent but refuses one
// that a live server still answers on. release() unlinks the public path only while it
// is still our socket (same device and inode), so an exiting agent never removes the
// socket of the agent that replaced it.
#pragma once

#include <sys/types.h>

#include <string>

#include "strata/common/error.h"

namespace strata::agent::cli {

class SocketClaim {
 public:
  // `public_path` is the path clients dial (no "unix:" prefix).
  explicit SocketClaim(std::string public_path);
  ~SocketClaim() { release(); }
  SocketClaim(const SocketClaim&) = delete;
  SocketClaim& operator=(const SocketClaim&) = delete;

  // Fails with `conflict` when a server answers on the public path right now.
  Status check_free() const;
  // Where the server must bind (the private name; the public one when that would be too
  // long for a sockaddr_un).
  const std::string& bind_path() const { return bind_path_; }
  // After the server listens on bind_path(): make it answer on the public path.
  Status publish();
  // Unlinks the public path if it is still the socket publish() put there; idempotent.
  void release();

 private:
  std::string public_path_;
  std::string bind_path_;
  bool published_ = false;
  dev_t dev_ = 0;
  ino_t ino_ = 0;
};

}  // namespace strata::agent::cli
