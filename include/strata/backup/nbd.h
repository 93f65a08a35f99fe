// NBD clients (libnbd) for backups: reading a QEMU export with block status (allocation
// and a dirty bitmap) and writing a restored image through qemu-nbd. See
// docs/internals/backup.md.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "strata/backup/disk_backup.h"
#include "strata/common/error.h"

struct nbd_handle;  // libnbd

namespace strata::backup {

// A read-only NBD export as a DiskSource. data_extents: base:allocation minus extents
// that read as zeros; dirty_extents: the `qemu:dirty-bitmap:<bitmap>` context (empty
// bitmap name: none, dirty_extents fails).
class NbdSource final : public DiskSource {
 public:
  static Result<std::unique_ptr<NbdSource>> connect_unix(const std::string& socket,
                                                         const std::string& export_name,
                                                         const std::string& bitmap);
  // A disk image nothing else has open (a stopped VM's), served read-only by a private
  // qemu-nbd (socket activation: no socket path is shared), with its persistent dirty
  // bitmap `bitmap` exported (empty: none). `format`: qcow2 or raw.
  static Result<std::unique_ptr<NbdSource>> serve_image(const std::string& qemu_nbd,
                                                        const std::string& path,
                                                        const std::string& format,
                                                        const std::string& bitmap);
  ~NbdSource() override;
  uint64_t size() const override { return size_; }
  Result<std::vector<Extent>> data_extents() override;
  Result<std::vector<Extent>> dirty_extents() override;
  Status read(uint64_t offset, size_t length, void* buf) override;

 private:
  NbdSource() = default;
  // A handle asking for base:allocation (and `bitmap`'s context); then, connected, checks
  // the server offers them and reads the size.
  static Result<std::unique_ptr<NbdSource>> prepare(const std::string& bitmap);
  Status connected();
  // Extents of `context` whose flags satisfy (flags & mask) == value.
  Result<std::vector<Extent>> extents(const std::string& context, uint32_t mask, uint32_t value);
  ::nbd_handle* h_ = nullptr;
  uint64_t size_ = 0;
  std::string bitmap_context_;
};

// A qcow2 (or raw) image opened read-write by a private qemu-nbd (socket activation, so
// no socket path is shared), as a DiskSink. qemu-nbd writes through the page cache; every
// 64 MiB written the sink starts the image's writeback (sync_file_range on its own
// read-only descriptor), so the disk writes while the restore goes on and flush() finds
// little left to write.
class NbdImageSink final : public DiskSink {
 public:
  // `qemu_nbd`: the qemu-nbd binary; `format`: qcow2 or raw; `path` an existing image.
  static Result<std::unique_ptr<NbdImageSink>> open(const std::string& qemu_nbd,
                                                    const std::string& path,
                                                    const std::string& format);
  ~NbdImageSink() override;
  Status write(uint64_t offset, size_t length, const void* buf) override;
  Status flush() override;
  uint64_t size() const { return size_; }

 private:
  NbdImageSink() = default;
  ::nbd_handle* h_ = nullptr;
  uint64_t size_ = 0;
  int image_fd_ = -1;  // the image, read-only: only to start its writeback
  uint64_t unkicked_ = 0;
};

}  // namespace strata::backup
