// An exclusive, advisory lock on a state folder: flock(LOCK_EX) on a lock file in it,
// held for as long as the DirLock object lives. One daemon per folder (see
// docs/internals/agents.md, "One agent per state folder").
#pragma once

#include <optional>
#include <string>

#include "strata/common/error.h"

namespace strata {

class DirLock {
 public:
  // Takes the lock on `path` (created 0600 if absent) without waiting and writes this
  // process's pid into it. The descriptor is O_CLOEXEC: children that exec (QEMU, the
  // shim, probes) never inherit the lock, so it ends exactly when this process does.
  // Fails with `conflict`, naming the holder's pid when it can, if someone else holds it.
  static Result<DirLock> acquire(const std::string& path);

  DirLock(DirLock&& o) noexcept : fd_(o.fd_), path_(std::move(o.path_)) { o.fd_ = -1; }
  DirLock& operator=(DirLock&& o) noexcept;
  DirLock(const DirLock&) = delete;
  DirLock& operator=(const DirLock&) = delete;
  ~DirLock();  // releases the lock (the file stays: unlinking it would race a new holder)

  int fd() const { return fd_; }
  const std::string& path() const { return path_; }

 private:
  DirLock(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  int fd_ = -1;
  std::string path_;
};

// Who holds the lock on `path`, without taking it for more than an instant:
// nullopt when it is free (or the file does not exist), else the pid the holder wrote
// (0 when it could not be read, e.g. the holder is still writing it).
Result<std::optional<int>> lock_holder(const std::string& path);

}  // namespace strata
