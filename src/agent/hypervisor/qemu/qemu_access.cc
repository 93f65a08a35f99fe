// Ownership and modes of a VM's files for an unprivileged QEMU (see qemu_access.h).
#include "qemu_access.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace strata::agent::qemu {
namespace {

tl::unexpected<Error> sys_error(const std::string& what, const std::string& path) {
  return internal_error(what + " " + path + ": " + std::strerror(errno));
}

// chown + chmod of a path that must be a real folder or file, never a symlink.
Status set_owner(const std::string& path, uid_t uid, gid_t gid, mode_t mode) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) return sys_error("stat", path);
  if (S_ISLNK(st.st_mode)) return internal_error(path + " is a symlink");
  if (::lchown(path.c_str(), uid, gid) != 0) return sys_error("chown", path);
  if (::chmod(path.c_str(), mode) != 0) return sys_error("chmod", path);
  return {};
}

// Creates `path` if absent (never through a symlink) and gives it to uid/gid.
Status own_file(const std::string& path, uid_t uid, gid_t gid, mode_t mode) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_CLOEXEC, mode);
  if (fd < 0) return sys_error("open", path);
  bool ok = ::fchown(fd, uid, gid) == 0 && ::fchmod(fd, mode) == 0;
  int e = errno;
  ::close(fd);
  if (!ok) {
    errno = e;
    return sys_error("chown", path);
  }
  return {};
}

}  // namespace

Status prepare_qemu_access(const std::string& vm_dir, const VmFiles& files,
                           const std::vector<std::string>& disk_paths,
                           const std::optional<QemuUser>& user) {
  if (::mkdir(files.run_dir.c_str(), 0750) != 0 && errno != EEXIST)
    return sys_error("mkdir", files.run_dir);
  if (!user) return {};
  // The VM folder holds the agent's records (spec, state, exit): QEMU may only pass
  // through it, so it can neither rewrite them nor plant a symlink the agent would follow.
  if (auto s = set_owner(vm_dir, 0, user->gid, 0710); !s) return s;
  // Sockets: QEMU binds them; root (the agent) connects whatever the mode.
  if (auto s = set_owner(files.run_dir, user->uid, user->gid, 0750); !s) return s;
  if (auto s = own_file(files.console_log, user->uid, user->gid, 0640); !s) return s;
  if (auto s = own_file(files.pid_file, user->uid, user->gid, 0644); !s) return s;
  for (const auto& d : disk_paths)
    if (auto s = set_owner(d, user->uid, user->gid, 0600); !s) return s;
  return {};
}

}  // namespace strata::agent::qemu
