// A tiny tmpfs mounted on a fresh temp folder, for full-disk tests. Needs root (mount);
// mounted() is false otherwise and why_not() says why, so the test can GTEST_SKIP.
#pragma once

#include <fcntl.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

namespace strata::testing {

class TinyTmpfs {
 public:
  explicit TinyTmpfs(size_t size_bytes) {
    std::string tmpl =
        (std::filesystem::temp_directory_path() / "strata-tinyfs-XXXXXX").string();
    if (!::mkdtemp(tmpl.data())) {
      why_not_ = std::string("mkdtemp: ") + std::strerror(errno);
      return;
    }
    dir_ = tmpl;
    if (::geteuid() != 0) {
      why_not_ = "needs root to mount a tmpfs";
      return;
    }
    std::string opts = "size=" + std::to_string(size_bytes) + ",mode=0755";
    if (::mount("tmpfs", dir_.c_str(), "tmpfs", MS_NOSUID | MS_NODEV, opts.c_str()) != 0) {
      why_not_ = std::string("mount tmpfs: ") + std::strerror(errno);
      return;
    }
    mounted_ = true;
  }
  ~TinyTmpfs() {
    if (mounted_) ::umount2(dir_.c_str(), MNT_DETACH);
    if (!dir_.empty()) ::rmdir(dir_.c_str());
  }
  TinyTmpfs(const TinyTmpfs&) = delete;
  TinyTmpfs& operator=(const TinyTmpfs&) = delete;

  bool mounted() const { return mounted_; }
  const std::string& why_not() const { return why_not_; }
  const std::string& path() const { return dir_; }

  // Fills the filesystem: writes `name` until ENOSPC. Returns the bytes written.
  size_t fill(const std::string& name = "filler") {
    int fd = ::open((dir_ + "/" + name).c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) return 0;
    std::vector<char> block(4096, 'f');
    size_t total = 0;
    for (;;) {
      ssize_t n = ::write(fd, block.data(), block.size());
      if (n <= 0) break;
      total += static_cast<size_t>(n);
    }
    ::close(fd);
    return total;
  }

 private:
  std::string dir_;
  std::string why_not_;
  bool mounted_ = false;
};

}  // namespace strata::testing
