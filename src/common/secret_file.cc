// Secret files with a permission check (see secret_file.h).
#include "strata/common/secret_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

namespace strata {

Result<std::string> read_secret_file(const std::string& path, std::string_view what) {
  return read_secret_file(path, what, 64 * 1024);
}

Result<std::string> read_secret_file(const std::string& path, std::string_view what,
                                     size_t max_bytes) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    if (err == ENOENT) return not_found(fmt::format("{} {} does not exist", what, path));
    if (err == EACCES)
      return make_error(ErrorCode::permission_denied,
                        fmt::format("{} {} cannot be read: {}", what, path, std::strerror(err)));
    return internal_error(fmt::format("{} {}: {}", what, path, std::strerror(err)));
  }
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  struct stat st {};
  if (::fstat(fd, &st) != 0)
    return internal_error(fmt::format("{} {}: {}", what, path, std::strerror(errno)));
  if (!S_ISREG(st.st_mode))
    return invalid_argument(std::string(what), fmt::format("{} {} is not a regular file", what, path));
  // Checked on the opened file, so a swap between check and read cannot pass a loose one.
  if ((st.st_mode & 077) != 0)
    return make_error(ErrorCode::permission_denied,
                      fmt::format("{} {} is accessible by group or others (mode {:04o}); it "
                                  "holds a secret: run chmod 600 {}",
                                  what, path, st.st_mode & 07777, path));
  const size_t kMax = max_bytes;
  if (static_cast<size_t>(st.st_size) > kMax)
    return invalid_argument(std::string(what), fmt::format("{} {} is larger than {} KiB", what, path, kMax / 1024));
  std::string out;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return internal_error(fmt::format("{} {}: {}", what, path, std::strerror(errno)));
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
    if (out.size() > kMax)
      return invalid_argument(std::string(what), fmt::format("{} {} is larger than {} KiB", what, path, kMax / 1024));
  }
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r' || out.back() == ' ' ||
                          out.back() == '\t'))
    out.pop_back();
  if (out.empty()) return invalid_argument(std::string(what), fmt::format("{} {} is empty", what, path));
  return out;
}

}  // namespace strata
