// Symlink-refusing filesystem helpers used by the image store (see fs_util.h).
#include "fs_util.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <vector>

#include "strata/common/atomic_file.h"
#include "strata/common/unique_fd.h"

namespace strata::agent::storage {
namespace {

std::string errno_text(const std::string& what, const std::string& path) {
  return what + " " + path + ": " + std::strerror(errno);
}

struct DirCloser {
  void operator()(DIR* d) const { ::closedir(d); }
};

}  // namespace

Result<Kind> lstat_kind(const std::string& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return Kind::absent;
    return internal_error(errno_text("lstat", path));
  }
  if (S_ISLNK(st.st_mode)) return Kind::symlink;
  if (S_ISREG(st.st_mode)) return Kind::file;
  if (S_ISDIR(st.st_mode)) return Kind::dir;
  return Kind::other;
}

Status ensure_dir(const std::string& path) {
  if (::mkdir(path.c_str(), 0755) != 0 && errno != EEXIST)
    return internal_error(errno_text("mkdir", path));
  auto kind = lstat_kind(path);
  if (!kind) return tl::unexpected(kind.error());
  if (*kind == Kind::symlink)
    return make_error(ErrorCode::permission_denied, "refusing symlinked directory " + path);
  if (*kind != Kind::dir)
    return make_error(ErrorCode::failed_precondition, path + " is not a directory");
  return {};
}

Status check_inside(const std::string& root, const std::string& path) {
  char resolved[PATH_MAX];
  if (!::realpath(path.c_str(), resolved)) return internal_error(errno_text("realpath", path));
  std::string r(resolved);
  if (r.size() <= root.size() + 1 || r.compare(0, root.size(), root) != 0 || r[root.size()] != '/')
    return make_error(ErrorCode::permission_denied, path + " resolves outside the store");
  return {};
}

Status check_regular_file(const std::string& root, const std::string& path) {
  auto kind = lstat_kind(path);
  if (!kind) return tl::unexpected(kind.error());
  switch (*kind) {
    case Kind::absent:
      return not_found(path + " does not exist");
    case Kind::symlink:
      return make_error(ErrorCode::permission_denied, "refusing symlink " + path);
    case Kind::file:
      return check_inside(root, path);
    default:
      return make_error(ErrorCode::failed_precondition, path + " is not a regular file");
  }
}

Status copy_file(const std::string& source, const std::string& dest) {
  UniqueFd in(::open(source.c_str(), O_RDONLY | O_CLOEXEC));
  if (in.fd < 0) {
    if (errno == ENOENT) return not_found(source + " does not exist");
    return internal_error(errno_text("open", source));
  }
  struct stat st {};
  if (::fstat(in.fd, &st) != 0) return internal_error(errno_text("fstat", source));
  if (!S_ISREG(st.st_mode))
    return make_error(ErrorCode::invalid_argument, source + " is not a regular file", "source");
  UniqueFd out(::open(dest.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
  if (out.fd < 0) return internal_error(errno_text("create", dest));
  std::vector<char> buf(1 << 20);
  for (;;) {
    ssize_t n = ::read(in.fd, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return internal_error(errno_text("read", source));
    if (n == 0) break;
    for (ssize_t off = 0; off < n;) {
      ssize_t w = ::write(out.fd, buf.data() + off, static_cast<size_t>(n - off));
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) return internal_error(errno_text("write", dest));
      off += w;
    }
  }
  if (::fsync(out.fd) != 0) return internal_error(errno_text("fsync", dest));
  return {};
}

Status remove_dir_flat(const std::string& parent, const std::string& name) {
  UniqueFd pfd(::open(parent.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (pfd.fd < 0) return internal_error(errno_text("open", parent));
  int dfd = ::openat(pfd.fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (dfd < 0) {
    if (errno == ENOENT) return {};
    if (errno == ELOOP || errno == ENOTDIR)
      return make_error(ErrorCode::permission_denied,
                        "refusing to remove " + parent + "/" + name + ": not a plain directory");
    return internal_error(errno_text("open", parent + "/" + name));
  }
  std::unique_ptr<DIR, DirCloser> dir(::fdopendir(dfd));  // owns dfd from here
  if (!dir) {
    ::close(dfd);
    return internal_error(errno_text("fdopendir", parent + "/" + name));
  }
  while (struct dirent* e = ::readdir(dir.get())) {
    std::string entry = e->d_name;
    if (entry == "." || entry == "..") continue;
    // unlinkat without AT_REMOVEDIR removes a symlink itself, never its target.
    if (::unlinkat(::dirfd(dir.get()), entry.c_str(), 0) != 0)
      return internal_error(errno_text("unlink", parent + "/" + name + "/" + entry));
  }
  if (::unlinkat(pfd.fd, name.c_str(), AT_REMOVEDIR) != 0)
    return internal_error(errno_text("rmdir", parent + "/" + name));
  return {};
}

Status rename_noreplace(const std::string& from, const std::string& to) {
  // The one home (strata/common/atomic_file.h): also fsyncs the folder after the rename.
  return strata::rename_noreplace(from, to);
}

}  // namespace strata::agent::storage
