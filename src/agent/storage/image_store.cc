// ImageStore on a local folder: base images in images/, per-VM disks in vms/<vm>/<disk>.qcow2,
// scratch files in tmp/. New files are made under tmp/ and renamed into place, so a crash
// never leaves a half-written file under a registered name. All qemu-img calls use argv.
#include "strata/agent/image_store.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstring>
#include <future>
#include <map>
#include <mutex>

#include "fs_util.h"
#include "strata/common/iso_image.h"
#include "strata/common/log.h"
#include "strata/common/process.h"
#include "strata/model/validation.h"
#include "strata/model/vm_spec.h"

namespace strata::agent {
namespace {

using storage::Kind;

constexpr auto kImageConvertTimeout = std::chrono::seconds(120);

std::vector<std::string> dir_entries(const std::string& dir) {
  std::vector<std::string> out;
  DIR* d = ::opendir(dir.c_str());
  if (!d) return out;
  while (struct dirent* e = ::readdir(d)) {
    std::string n = e->d_name;
    if (n != "." && n != "..") out.push_back(std::move(n));
  }
  ::closedir(d);
  std::sort(out.begin(), out.end());
  return out;
}

Status check_size(uint64_t size_bytes, bool allow_zero) {
  if (size_bytes == 0 && !allow_zero) return invalid_argument("size_bytes", "must be > 0");
  if (size_bytes > model::kMaxDiskBytes)
    return invalid_argument("size_bytes", std::to_string(size_bytes) + " exceeds the maximum of " +
                                              std::to_string(model::kMaxDiskBytes) + " bytes");
  return {};
}

class LocalImageStore final : public ImageStore {
 public:
  LocalImageStore(std::string root, std::string qemu_img)
      : root_(std::move(root)), qemu_img_(std::move(qemu_img)) {}

  const std::string& root() const override { return root_; }

  std::vector<ImageInfo> list_images() const override {
    std::vector<ImageInfo> out;
    for (const std::string& name : dir_entries(images_dir())) {
      auto info = image(name);
      if (info)
        out.push_back(std::move(*info));
      else
        log_->warn("skipping image entry name={} error={}", name, info.error().to_string());
    }
    return out;
  }

  Result<ImageInfo> image(const std::string& name) const override {
    auto path = image_path(name);
    if (!path) return tl::unexpected(path.error());
    if (auto s = storage::check_regular_file(root_, *path); !s) return tl::unexpected(s.error());
    struct stat st {};
    const bool stat_ok = ::lstat(path->c_str(), &st) == 0;
    if (stat_ok) {
      std::lock_guard lock(info_cache_mu_);
      auto it = info_cache_.find(name);
      if (it != info_cache_.end() && it->second.same_file(st)) {
        ImageInfo info = it->second.info;
        info.kind = read_kind(*path);
        return info;
      }
    }
    auto info = info_of(name, *path);
    if (!info) return info;
    info->kind = read_kind(*path);
    if (stat_ok) {
      std::lock_guard lock(info_cache_mu_);
      info_cache_[name] = CachedInfo{st.st_ino, st.st_size, st.st_mtim, st.st_ctim, *info};
    }
    return info;
  }

  Result<ImageInfo> import_image(const std::string& name, const std::string& source_path,
                                 const std::string& kind) override {
    auto path = image_path(name);
    if (!path) return tl::unexpected(path.error());
    if (!kind.empty() && kind != "disk" && kind != "kernel" && kind != "initrd" && kind != "iso")
      return invalid_argument("kind", "kind must be disk, kernel, initrd or iso");
    auto existing = storage::lstat_kind(*path);
    if (!existing) return tl::unexpected(existing.error());
    if (*existing != Kind::absent)
      return make_error(ErrorCode::already_exists, "image " + name + " already exists");
    std::string tmp = temp_path(name);
    if (auto s = storage::copy_file(source_path, tmp); !s) {
      ::unlink(tmp.c_str());
      return tl::unexpected(s.error());
    }
    auto info = info_of(name, tmp);
    auto fail = [&](Error e) {
      ::unlink(tmp.c_str());
      return tl::unexpected(std::move(e));
    };
    if (!info) return fail(info.error());
    if (auto s = check_outside_image(*info, kind); !s) return fail(s.error());
    if (kind == "iso")
      if (auto s = check_iso_image(tmp, "source"); !s) return fail(s.error());
    // The kind travels with the file: set before the rename, so the image never appears
    // under its name without it.
    if (!kind.empty()) {
      if (auto s = write_kind(tmp, kind); !s) return fail(s.error());
      info->kind = kind;
    }
    if (auto s = storage::rename_noreplace(tmp, *path); !s) return fail(s.error());
    log_->info("image imported name={} kind={} format={} size={}", name,
               kind.empty() ? "unknown" : kind, info->format, info->virtual_size);
    info->path = *path;
    return info;
  }

  Status delete_image(const std::string& name) override {
    auto path = image_path(name);
    if (!path) return tl::unexpected(path.error());
    auto kind = storage::lstat_kind(*path);
    if (!kind) return tl::unexpected(kind.error());
    if (*kind == Kind::absent) return not_found("image " + name + " not found");
    if (*kind == Kind::file) {
      for (const std::string& vm : dir_entries(vms_dir())) {
        for (const std::string& disk : dir_entries(vms_dir() + "/" + vm)) {
          std::string p = vms_dir() + "/" + vm + "/" + disk;
          if (!storage::check_regular_file(root_, p)) continue;
          auto info = info_of(disk, p);
          if (info && info->backing_file == *path)
            return make_error(ErrorCode::failed_precondition,
                              "image " + name + " is the base of disk " + vm + "/" + disk);
        }
      }
    }
    // A stray symlink or other entry under the name is removed too (unlink never follows).
    if (::unlink(path->c_str()) != 0)
      return internal_error("unlink " + *path + ": " + std::strerror(errno));
    log_->info("image deleted name={}", name);
    return {};
  }

  Result<ImageInfo> create_overlay(const std::string& vm, const std::string& disk,
                                   const std::string& base, uint64_t size_bytes) override {
    auto target = prepare_disk(vm, disk);
    if (!target) return tl::unexpected(target.error());
    if (auto s = check_size(size_bytes, /*allow_zero=*/true); !s) return tl::unexpected(s.error());
    if (auto s = model::validate_image_name("base", base); !s) return tl::unexpected(s.error());
    auto base_info = image(base);
    if (!base_info) {
      if (base_info.error().code == ErrorCode::not_found)
        return not_found("base image " + base + " not found");
      return tl::unexpected(base_info.error());
    }
    if (!base_info->backing_file.empty())
      return make_error(ErrorCode::failed_precondition,
                        "base image " + base + " has a backing file");
    // Images stored before data files were refused at import are caught here.
    if (!base_info->data_file.empty())
      return invalid_argument("base_image", "base image " + base +
                                                " has an external data file; it cannot be used");
    if (!base_info->kind.empty() && base_info->kind != "disk")
      return invalid_argument("base_image", "image " + base + " is a " + base_info->kind +
                                                " image, not a disk");
    // An image of unknown kind (stored before kinds were recorded) is probed here, at each
    // use, as a plain disk: besides the backing and data files above, only the formats an
    // import accepts. Another format may name files of its own that nothing above sees (a
    // VMDK's extents are host paths in its descriptor).
    if (base_info->format != "raw" && base_info->format != "qcow2")
      return invalid_argument("base_image", "base image " + base + " is a " + base_info->format +
                                                " image; a disk base must be raw or qcow2");
    std::string tmp = temp_path(vm + "-" + disk);
    std::vector<std::string> argv = {
        qemu_img_, "create",          "-q", "-f", "qcow2", "-b", base_info->path,
        "-F",      base_info->format, tmp};
    if (size_bytes > base_info->virtual_size) argv.push_back(std::to_string(size_bytes));
    return create_and_publish(argv, tmp, *target, disk);
  }

  Result<ImageInfo> create_blank(const std::string& vm, const std::string& disk,
                                 uint64_t size_bytes) override {
    if (auto s = check_size(size_bytes, /*allow_zero=*/false); !s) return tl::unexpected(s.error());
    auto target = prepare_disk(vm, disk);
    if (!target) return tl::unexpected(target.error());
    std::string tmp = temp_path(vm + "-" + disk);
    return create_and_publish(
        {qemu_img_, "create", "-q", "-f", "qcow2", tmp, std::to_string(size_bytes)}, tmp, *target,
        disk);
  }

  Result<ImageInfo> disk_info(const std::string& vm, const std::string& disk) const override {
    auto path = disk_path(vm, disk);
    if (!path) return tl::unexpected(path.error());
    if (auto s = storage::check_regular_file(root_, *path); !s) return tl::unexpected(s.error());
    return info_of(disk, *path);
  }

  Status resize_disk(const std::string& vm, const std::string& disk, uint64_t size_bytes) override {
    if (auto s = check_size(size_bytes, /*allow_zero=*/false); !s) return s;
    auto info = disk_info(vm, disk);
    if (!info) return tl::unexpected(info.error());
    if (size_bytes < info->virtual_size)
      return invalid_argument("size_bytes", "shrinking a disk (" +
                                                std::to_string(info->virtual_size) + " -> " +
                                                std::to_string(size_bytes) + ") would lose data");
    if (size_bytes == info->virtual_size) return {};
    auto r = run_checked(
        {qemu_img_, "resize", "-q", "-f", "qcow2", info->path, std::to_string(size_bytes)},
        qemu_img_options());
    if (!r) {
      if (r.error().message.find("lock") != std::string::npos)
        return make_error(ErrorCode::failed_precondition,
                          "disk " + vm + "/" + disk + " is in use: " + r.error().message);
      return tl::unexpected(r.error());
    }
    log_->info("disk resized vm={} disk={} size={}", vm, disk, size_bytes);
    return {};
  }

  Result<ImageInfo> create_layer(const std::string& vm, const std::string& disk,
                                 const std::string& layer,
                                 const std::string& backing_path) override {
    if (auto s = model::validate_name("layer", layer); !s) return tl::unexpected(s.error());
    auto base = disk_path(vm, disk);
    if (!base) return tl::unexpected(base.error());
    auto backing = vm_file_info(vm, backing_path);
    if (!backing) return tl::unexpected(backing.error());
    if (backing->format != "qcow2")
      return invalid_argument("backing", "a layer's backing must be qcow2: " + backing_path);
    std::string target = base->substr(0, base->size() - 6) + "." + layer + ".qcow2";
    std::string tmp = temp_path(vm + "-" + disk + "-" + layer);
    return create_and_publish({qemu_img_, "create", "-q", "-f", "qcow2", "-u", "-b",
                               backing->path, "-F", "qcow2", tmp,
                               std::to_string(backing->virtual_size)},
                              tmp, target, disk + "." + layer);
  }

  Status rebase_vm_file(const std::string& vm, const std::string& path,
                        const std::string& backing_path) override {
    auto file = vm_file_info(vm, path);
    if (!file) return tl::unexpected(file.error());
    std::vector<std::string> argv = {qemu_img_, "rebase", "-q", "-f", "qcow2"};
    if (backing_path.empty()) {
      argv.insert(argv.end(), {"-b", ""});
    } else {
      if (auto s = storage::check_regular_file(root_, backing_path); !s) return s;
      auto b = info_of(backing_path, backing_path);
      if (!b) return tl::unexpected(b.error());
      argv.insert(argv.end(), {"-b", b->path, "-F", b->format});
    }
    argv.push_back(file->path);
    RunOptions o = qemu_img_options();
    o.timeout = std::chrono::hours(2);  // copies data: as long as the disk needs
    if (auto r = run_checked(argv, o); !r) return tl::unexpected(r.error().wrap("rebase " + path));
    log_->info("disk file rebased path={} backing={}", path, backing_path);
    return {};
  }

  Result<ImageInfo> vm_file_info(const std::string& vm, const std::string& path) const override {
    if (auto s = model::validate_name("vm", vm); !s) return tl::unexpected(s.error());
    std::string dir = vms_dir() + "/" + vm + "/";
    if (path.compare(0, dir.size(), dir) != 0 || path.find('/', dir.size()) != std::string::npos)
      return invalid_argument("path", path + " is not a disk file of VM " + vm);
    if (auto s = storage::check_regular_file(root_, path); !s) return tl::unexpected(s.error());
    return info_of(path.substr(dir.size()), path);
  }

  Status delete_vm_file(const std::string& vm, const std::string& path) override {
    if (auto i = vm_file_info(vm, path); !i) return tl::unexpected(i.error());
    if (::unlink(path.c_str()) != 0)
      return internal_error("unlink " + path + ": " + std::strerror(errno));
    log_->info("disk file deleted path={}", path);
    return {};
  }

  Result<ImageInfo> clone_disk(const std::string& vm, const std::string& disk,
                               const std::string& source_path, bool linked,
                               const CloneProgress& progress) override {
    // The source: a file directly inside another VM's folder (never a path of the caller's
    // choosing elsewhere on the host).
    const std::string prefix = vms_dir() + "/";
    if (source_path.compare(0, prefix.size(), prefix) != 0)
      return invalid_argument("source", source_path + " is not a VM disk file");
    const std::string rest = source_path.substr(prefix.size());
    const auto slash = rest.find('/');
    if (slash == std::string::npos || rest.find('/', slash + 1) != std::string::npos)
      return invalid_argument("source", source_path + " is not a VM disk file");
    const std::string source_vm = rest.substr(0, slash);
    if (auto s = model::validate_name("source", source_vm); !s) return tl::unexpected(s.error());
    if (source_vm == vm) return invalid_argument("source", "a VM cannot clone its own disk");
    auto source = vm_file_info(source_vm, source_path);
    if (!source) return tl::unexpected(source.error());
    if (!source->data_file.empty())
      return invalid_argument("source", source_path + " has an external data file");
    auto target = prepare_disk(vm, disk);
    if (!target) return tl::unexpected(target.error());
    std::string tmp = temp_path(vm + "-" + disk);
    if (linked)
      return create_and_publish({qemu_img_, "create", "-q", "-f", "qcow2", "-b", source->path,
                                 "-F", source->format, tmp},
                                tmp, *target, disk);
    // Full copy. What it copies is at most what the chain has allocated.
    uint64_t total = 0;
    ImageInfo link = *source;
    for (int depth = 0; depth < 64; ++depth) {
      total += link.actual_size;
      if (link.backing_file.empty()) break;
      if (auto s = storage::check_regular_file(root_, link.backing_file); !s)
        return tl::unexpected(s.error());
      auto next = info_of(link.backing_file, link.backing_file);
      if (!next) return tl::unexpected(next.error());
      link = *next;
    }
    RunOptions o = qemu_img_options();
    o.timeout = std::chrono::hours(6);  // copies the data: as long as the disk needs
    std::vector<std::string> argv = {qemu_img_, "convert", "-f", source->format, "-O",
                                     "qcow2",   source->path, tmp};
    auto copy = std::async(std::launch::async, [argv, o] { return run_checked(argv, o); });
    while (copy.wait_for(std::chrono::milliseconds(200)) != std::future_status::ready) {
      struct stat st {};
      if (progress && ::stat(tmp.c_str(), &st) == 0)
        progress(std::min<uint64_t>(static_cast<uint64_t>(st.st_blocks) * 512, total), total);
    }
    if (auto r = copy.get(); !r) {
      ::unlink(tmp.c_str());
      return tl::unexpected(r.error().wrap("copying disk"));
    }
    if (progress) progress(total, total);
    if (auto s = storage::rename_noreplace(tmp, *target); !s) {
      ::unlink(tmp.c_str());
      return tl::unexpected(s.error());
    }
    auto info = info_of(disk, *target);
    if (info) log_->info("disk copied path={} from={} size={}", *target, source_path, total);
    return info;
  }

  Status delete_vm_disks(const std::string& vm) override {
    if (auto s = model::validate_name("vm", vm); !s) return s;
    if (auto s = storage::remove_dir_flat(vms_dir(), vm); !s) return s;
    log_->info("vm disks deleted vm={}", vm);
    return {};
  }

  Status read_disk_file(const std::string& vm, const std::string& disk, size_t max_extent,
                        const std::function<Status(uint64_t)>& on_size,
                        const DiskExtentSink& sink) const override {
    if (max_extent == 0) return invalid_argument("max_extent", "must be > 0");
    auto path = disk_path(vm, disk);
    if (!path) return tl::unexpected(path.error());
    if (auto s = storage::check_regular_file(root_, *path); !s) return s;
    int fd = ::open(path->c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) return internal_error("open " + *path + ": " + std::strerror(errno));
    struct Closer {
      int fd;
      ~Closer() { ::close(fd); }
    } closer{fd};
    struct stat st{};
    if (::fstat(fd, &st) != 0) return internal_error("fstat " + *path + ": " + std::strerror(errno));
    const auto size = static_cast<uint64_t>(st.st_size);
    if (auto s = on_size(size); !s) return s;
    std::string buf;
    off_t pos = 0;
    while (static_cast<uint64_t>(pos) < size) {
      // The next data extent [data, hole). A file system without SEEK_DATA reports the
      // whole file as data, which is only slower.
      off_t data = ::lseek(fd, pos, SEEK_DATA);
      if (data < 0) {
        if (errno == ENXIO) break;  // only a hole is left
        return internal_error("lseek " + *path + ": " + std::strerror(errno));
      }
      off_t hole = ::lseek(fd, data, SEEK_HOLE);
      if (hole < 0) return internal_error("lseek " + *path + ": " + std::strerror(errno));
      for (off_t at = data; at < hole;) {
        const size_t want = static_cast<size_t>(std::min<uint64_t>(max_extent, uint64_t(hole - at)));
        buf.resize(want);
        ssize_t n = ::pread(fd, buf.data(), want, at);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return internal_error("read " + *path + ": " + std::strerror(errno));
        if (n == 0) return internal_error("read " + *path + ": the file shrank while read");
        if (auto s = sink(static_cast<uint64_t>(at), std::string_view(buf.data(), size_t(n))); !s)
          return s;
        at += n;
      }
      pos = hole;
    }
    return {};
  }

  Result<ImageInfo> receive_disk_file(const std::string& vm, const std::string& disk,
                                      uint64_t file_size, const std::string& base,
                                      const DiskExtentSource& next) override {
    auto target = disk_path(vm, disk);
    if (!target) return tl::unexpected(target.error());
    if (auto s = storage::check_regular_file(root_, *target); !s) return tl::unexpected(s.error());
    // A qcow2 file is at most a little larger than its virtual size, which is bounded.
    if (file_size > model::kMaxDiskBytes + (model::kMaxDiskBytes >> 4))
      return invalid_argument("file_size", std::to_string(file_size) + " bytes is too large");
    std::optional<ImageInfo> base_info;
    if (!base.empty()) {
      auto b = image(base);
      if (!b) return tl::unexpected(b.error().wrap("base image " + base));
      base_info = *b;
    }
    const std::string tmp = temp_path(vm + "-" + disk + "-incoming");
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) return internal_error("open " + tmp + ": " + std::strerror(errno));
    bool keep = false;
    struct Cleanup {
      int fd;
      const std::string& tmp;
      bool& keep;
      ~Cleanup() {
        if (fd >= 0) ::close(fd);
        if (!keep) ::unlink(tmp.c_str());
      }
    } cleanup{fd, tmp, keep};
    if (::ftruncate(fd, static_cast<off_t>(file_size)) != 0)
      return internal_error("truncate " + tmp + ": " + std::strerror(errno));
    uint64_t end_of_last = 0;
    for (;;) {
      auto extent = next();
      if (!extent) return tl::unexpected(extent.error());
      if (!*extent) break;
      const DiskExtent& e = **extent;
      if (e.offset < end_of_last || e.offset > file_size || e.data.size() > file_size - e.offset)
        return invalid_argument("offset", "extent at " + std::to_string(e.offset) + " (+" +
                                              std::to_string(e.data.size()) +
                                              ") is out of order or past the file's size");
      for (size_t done = 0; done < e.data.size();) {
        ssize_t n = ::pwrite(fd, e.data.data() + done, e.data.size() - done,
                             static_cast<off_t>(e.offset + done));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return internal_error("write " + tmp + ": " + std::strerror(errno));
        done += static_cast<size_t>(n);
      }
      end_of_last = e.offset + e.data.size();
    }
    if (::fsync(fd) != 0) return internal_error("fsync " + tmp + ": " + std::strerror(errno));
    ::close(fd);
    cleanup.fd = -1;
    // What arrived is checked before QEMU ever opens it as this VM's disk.
    auto info = info_of(disk, tmp);
    if (!info) return tl::unexpected(info.error().wrap("the received disk"));
    if (info->format != "qcow2")
      return invalid_argument("format", "the received disk is " + info->format + ", not qcow2");
    if (!info->data_file.empty())
      return invalid_argument("format", "the received disk names an external data file");
    if (!base_info && !info->backing_file.empty())
      return invalid_argument("base_image", "the received disk has a backing file, and the VM's "
                                            "disk has no base image");
    if (base_info) {
      if (info->backing_file.empty())
        return invalid_argument("base_image", "the received disk has no backing file; the VM's "
                                              "disk is an overlay on " + base);
      auto r = run_checked({qemu_img_, "rebase", "-q", "-u", "-f", "qcow2", "-b", base_info->path,
                            "-F", base_info->format, tmp},
                           qemu_img_options());
      if (!r) return tl::unexpected(r.error().wrap("pointing the received disk at " + base));
    }
    if (::rename(tmp.c_str(), target->c_str()) != 0)
      return internal_error("rename " + tmp + " -> " + *target + ": " + std::strerror(errno));
    keep = true;
    auto placed = info_of(disk, *target);
    if (placed)
      log_->info("disk received vm={} disk={} file_size={} backing={}", vm, disk, file_size,
                 placed->backing_file);
    return placed;
  }

  // Removes leftovers of interrupted operations; they were never registered under a name.
  void clean_tmp() const {
    for (const std::string& n : dir_entries(tmp_dir())) {
      std::string p = tmp_dir() + "/" + n;
      log_->info("removing stale temp file path={}", p);
      ::unlink(p.c_str());
    }
  }

 private:
  // What an image from outside may be: no file named inside it, a disk in qcow2 or raw,
  // a kernel or initrd a plain file (QEMU reads those raw; a qcow2 there is a disk
  // smuggled under another kind).
  static Status check_outside_image(const ImageInfo& info, const std::string& kind) {
    if (!info.backing_file.empty())
      return invalid_argument("source", "image has a backing file (" + info.backing_file +
                                            "); flatten it first");
    if (!info.data_file.empty())
      return invalid_argument("source", "image has an external data file (" + info.data_file +
                                            "); images must be self-contained");
    if (kind == "kernel" || kind == "initrd" || kind == "iso") {
      if (info.format != "raw")
        return invalid_argument("source", "a " + kind + " must be a plain file, not a " +
                                              info.format + " image");
    } else if (info.format != "raw" && info.format != "qcow2") {
      return invalid_argument("source",
                              "unsupported image format " + info.format + " (raw or qcow2)");
    }
    return {};
  }

  static constexpr const char* kKindXattr = "user.strata.kind";

  Status write_kind(const std::string& path, const std::string& kind) const {
    if (::setxattr(path.c_str(), kKindXattr, kind.data(), kind.size(), 0) == 0) return {};
    if (errno == ENOTSUP) {
      // The manager still checks kinds; this host just cannot remember them.
      log_->warn("file system has no user xattrs; image kind not recorded path={}", path);
      return {};
    }
    return internal_error("setxattr " + path + ": " + std::strerror(errno));
  }

  static std::string read_kind(const std::string& path) {
    char buf[16];
    ssize_t n = ::lgetxattr(path.c_str(), kKindXattr, buf, sizeof buf);
    if (n <= 0) return "";
    std::string k(buf, static_cast<size_t>(n));
    return (k == "disk" || k == "kernel" || k == "initrd" || k == "iso") ? k : "";
  }

  std::string images_dir() const { return root_ + "/images"; }
  std::string vms_dir() const { return root_ + "/vms"; }
  std::string tmp_dir() const { return root_ + "/tmp"; }

  RunOptions qemu_img_options() const {
    RunOptions o;
    o.timeout = kImageConvertTimeout;
    return o;
  }

  Result<std::string> image_path(const std::string& name) const {
    if (auto s = model::validate_image_name("name", name); !s) return tl::unexpected(s.error());
    return images_dir() + "/" + name;
  }

  Result<std::string> disk_path(const std::string& vm, const std::string& disk) const {
    if (auto s = model::validate_name("vm", vm); !s) return tl::unexpected(s.error());
    if (auto s = model::validate_name("disk", disk); !s) return tl::unexpected(s.error());
    std::string dir = vms_dir() + "/" + vm;
    auto kind = storage::lstat_kind(dir);
    if (!kind) return tl::unexpected(kind.error());
    if (*kind == Kind::symlink)
      return make_error(ErrorCode::permission_denied, "refusing symlinked VM folder " + dir);
    return dir + "/" + disk + ".qcow2";
  }

  // Validates names, makes the VM folder and checks the disk does not exist yet.
  Result<std::string> prepare_disk(const std::string& vm, const std::string& disk) {
    auto path = disk_path(vm, disk);
    if (!path) return path;
    if (auto s = storage::ensure_dir(vms_dir() + "/" + vm); !s) return tl::unexpected(s.error());
    if (auto s = storage::check_inside(root_, vms_dir() + "/" + vm); !s)
      return tl::unexpected(s.error());
    auto kind = storage::lstat_kind(*path);
    if (!kind) return tl::unexpected(kind.error());
    if (*kind != Kind::absent)
      return make_error(ErrorCode::already_exists, "disk " + vm + "/" + disk + " already exists");
    return path;
  }

  Result<ImageInfo> create_and_publish(const std::vector<std::string>& argv, const std::string& tmp,
                                       const std::string& target, const std::string& name) {
    auto r = run_checked(argv, qemu_img_options());
    if (!r) {
      ::unlink(tmp.c_str());
      return tl::unexpected(r.error().wrap("creating disk"));
    }
    if (auto s = storage::rename_noreplace(tmp, target); !s) return tl::unexpected(s.error());
    auto info = info_of(name, target);
    if (info) log_->info("disk created path={} size={}", target, info->virtual_size);
    return info;
  }

  std::string temp_path(const std::string& hint) const {
    static std::atomic<uint64_t> counter{0};
    return tmp_dir() + "/" + hint + "." + std::to_string(::getpid()) + "." +
           std::to_string(counter.fetch_add(1));
  }

  Result<ImageInfo> info_of(const std::string& name, const std::string& path) const {
    // -U: a disk held by a running QEMU can still be inspected (read-only, no lock).
    auto out = run_checked({qemu_img_, "info", "--output=json", "-U", path}, qemu_img_options());
    if (!out) return tl::unexpected(out.error());
    auto info = parse_qemu_img_info(*out);
    if (!info) return tl::unexpected(info.error().wrap(path));
    info->name = name;
    info->path = path;
    return info;
  }

  std::string root_;
  std::string qemu_img_;
  std::shared_ptr<spdlog::logger> log_ = logger("agent.storage");

  // What `qemu-img info` said of each image, kept while its file is the same one (inode,
  // size, mtime, ctime: a new import, a write or a kind change all differ). Listing the
  // images (before every define and every migration) then costs a stat per image instead
  // of a qemu-img process per image. Guards info_cache_; nothing else runs under it.
  struct CachedInfo {
    ino_t ino;
    off_t size;
    struct timespec mtime, ctime;
    ImageInfo info;
    bool same_file(const struct stat& st) const {
      return st.st_ino == ino && st.st_size == size && st.st_mtim.tv_sec == mtime.tv_sec &&
             st.st_mtim.tv_nsec == mtime.tv_nsec && st.st_ctim.tv_sec == ctime.tv_sec &&
             st.st_ctim.tv_nsec == ctime.tv_nsec;
    }
  };
  mutable std::mutex info_cache_mu_;
  mutable std::map<std::string, CachedInfo> info_cache_;
};

}  // namespace

Result<ImageStorePtr> make_image_store(const std::string& root, const std::string& qemu_img) {
  if (root.empty()) return invalid_argument("root", "store root must not be empty");
  if (find_executable(qemu_img).empty()) return unavailable(qemu_img + " not found in PATH");
  if (auto s = storage::ensure_dir(root); !s) return tl::unexpected(s.error());
  char resolved[PATH_MAX];
  if (!::realpath(root.c_str(), resolved))
    return internal_error("realpath " + root + ": " + std::strerror(errno));
  std::string canonical(resolved);
  for (const char* sub : {"/images", "/vms", "/tmp"})
    if (auto s = storage::ensure_dir(canonical + sub); !s) return tl::unexpected(s.error());
  auto store = std::make_unique<LocalImageStore>(canonical, qemu_img);
  store->clean_tmp();
  return ImageStorePtr(std::move(store));
}

}  // namespace strata::agent
