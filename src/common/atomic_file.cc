// Durable atomic writes and renames (see atomic_file.h).
#include "strata/common/atomic_file.h"

#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>

#include <fmt/format.h>

namespace strata {
namespace {

tl::unexpected<Error> errno_error(int err, std::string_view what, const std::string& path) {
  std::string msg = fmt::format("{} {}: {}", what, path, std::strerror(err));
  if (err == ENOSPC || err == EDQUOT) return make_error(ErrorCode::resource_exhausted, msg);
  return internal_error(msg);
}

std::string parent_of(const std::string& path) {
  auto slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

Status fsync_dir(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return errno_error(errno, "open folder", dir);
  int rc = ::fsync(fd);
  int err = errno;
  ::close(fd);
  // Some filesystems cannot fsync a folder (EINVAL); there is nothing more to do there.
  if (rc != 0 && err != EINVAL) return errno_error(err, "fsync folder", dir);
  return {};
}

Status fsync_both(const std::string& from, const std::string& to) {
  if (auto st = fsync_parent_dir(to); !st) return st;
  if (parent_of(from) != parent_of(to)) return fsync_parent_dir(from);
  return {};
}

}  // namespace

Status fsync_parent_dir(const std::string& path) { return fsync_dir(parent_of(path)); }

Status write_all(int fd, std::string_view data, const std::string& what) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno_error(errno, "write", what);
    if (n == 0) return errno_error(EIO, "write", what);
    data.remove_prefix(static_cast<size_t>(n));
  }
  return {};
}

Status write_file_atomic(const std::string& path, std::string_view data, unsigned mode) {
  // Unique per process and call: two writers of the same file never share a temp file.
  static std::atomic<uint64_t> counter{0};
  std::string tmp = fmt::format("{}.tmp.{}.{}", path, ::getpid(), counter++);
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd < 0) return errno_error(errno, "create", tmp);
  auto fail = [&](tl::unexpected<Error> e) -> Status {
    if (fd >= 0) ::close(fd);
    ::unlink(tmp.c_str());
    return e;
  };
  if (::fchmod(fd, mode) != 0) return fail(errno_error(errno, "chmod", tmp));
  if (auto st = write_all(fd, data, tmp); !st) return fail(tl::unexpected(st.error()));
  if (::fsync(fd) != 0) return fail(errno_error(errno, "fsync", tmp));
  int rc = ::close(fd);
  fd = -1;
  if (rc != 0) return fail(errno_error(errno, "close", tmp));
  if (::rename(tmp.c_str(), path.c_str()) != 0) return fail(errno_error(errno, "rename to", path));
  return fsync_parent_dir(path);
}

Status rename_noreplace(const std::string& from, const std::string& to) {
  if (::renameat2(AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), RENAME_NOREPLACE) != 0) {
    int err = errno;
    ::unlink(from.c_str());
    if (err == EEXIST) return make_error(ErrorCode::already_exists, to + " already exists");
    return errno_error(err, "rename to", to);
  }
  return fsync_both(from, to);
}

Status rename_durable(const std::string& from, const std::string& to) {
  if (::rename(from.c_str(), to.c_str()) != 0) return errno_error(errno, "rename to", to);
  return fsync_both(from, to);
}

}  // namespace strata
