// The agent's image store: one folder holding base images (kernels, initrds, qcow2/raw
// disks) and per-VM disk files. Callers name images; they never pass host paths. Every
// path the store returns is inside its root (names are validated, symlinks refused).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "strata/common/error.h"

namespace strata::agent {

struct ImageInfo {
  std::string name;
  std::string path;           // absolute, inside the store
  std::string format;         // "qcow2", "raw" (as reported by `qemu-img info`)
  uint64_t virtual_size = 0;  // bytes
  uint64_t actual_size = 0;   // bytes on disk
  std::string backing_file;   // for overlays
  std::string data_file;      // a qcow2's external data file (refused in base images)
  // Base images: "disk", "kernel" or "initrd" as recorded when the image came in (an
  // extended attribute of the file, set before it is renamed into place); empty when
  // unknown (imported without a kind, or a file system without user xattrs).
  std::string kind;
  // A qcow2's persistent dirty bitmaps (format-specific data; empty for other formats).
  struct Bitmap {
    std::string name;
    uint64_t granularity = 0;
    bool recording = false;     // flag "auto": enabled, QEMU records writes into it
    bool inconsistent = false;  // flag "in-use": the image was not closed cleanly
  };
  std::vector<Bitmap> bitmaps;
};

class ImageStore {
 public:
  virtual ~ImageStore() = default;
  virtual const std::string& root() const = 0;

  // Base images ("images/<name>").
  virtual std::vector<ImageInfo> list_images() const = 0;
  virtual Result<ImageInfo> image(const std::string& name) const = 0;
  // Copies a file into the store under `name` (already_exists if present), as an image of
  // `kind` ("disk", "kernel", "initrd"; empty: unknown). The source is a host path given
  // by an operator on the agent's own command line, or a temp file of PutImage. Images
  // come from outside, so any backing file or external data file is refused, a disk must
  // be qcow2 or raw, and a kernel or initrd a plain (raw) file.
  virtual Result<ImageInfo> import_image(const std::string& name, const std::string& source_path,
                                         const std::string& kind) = 0;
  Result<ImageInfo> import_image(const std::string& name, const std::string& source_path) {
    return import_image(name, source_path, "");
  }
  virtual Status delete_image(const std::string& name) = 0;

  // Per-VM disks ("vms/<vm>/<disk>.qcow2").
  // qcow2 overlay backed by image `base` (qemu-img create -b ... -F <fmt>); grows to
  // `size_bytes` if that is larger than the base. The base must have no backing or data
  // file and, when its kind is known, be a disk (invalid_argument otherwise).
  virtual Result<ImageInfo> create_overlay(const std::string& vm, const std::string& disk,
                                           const std::string& base, uint64_t size_bytes) = 0;
  virtual Result<ImageInfo> create_blank(const std::string& vm, const std::string& disk,
                                         uint64_t size_bytes) = 0;
  virtual Result<ImageInfo> disk_info(const std::string& vm, const std::string& disk) const = 0;
  virtual Status resize_disk(const std::string& vm, const std::string& disk, uint64_t size_bytes) = 0;
  // Snapshot layers (external qcow2 snapshots, docs/internals/qemu-driver.md "Snapshots"):
  // more files of a VM's disk in the VM's folder, "vms/<vm>/<disk>.<layer>.qcow2", removed
  // with the VM by delete_vm_disks. Paths passed in must be files of this VM's folder (or,
  // for a backing, any image of the store); anything else is refused.
  // A new qcow2 layer backed by `backing_path` (qcow2), with the backing's virtual size.
  // The backing is not opened (-u): a running QEMU may hold it.
  virtual Result<ImageInfo> create_layer(const std::string& vm, const std::string& disk,
                                         const std::string& layer,
                                         const std::string& backing_path);
  // Safe rebase (qemu-img rebase): `path` is backed by `backing_path` afterwards (empty:
  // no backing), after the data it read through its old chain and does not read through
  // the new one was copied into it, so what the file reads is unchanged.
  virtual Status rebase_vm_file(const std::string& vm, const std::string& path,
                                const std::string& backing_path);
  virtual Result<ImageInfo> vm_file_info(const std::string& vm, const std::string& path) const;
  virtual Status delete_vm_file(const std::string& vm, const std::string& path);
  // Clones (docs/internals/qemu-driver.md, "Templates and clones"): the disk
  // "vms/<vm>/<disk>.qcow2" made from `source_path`, a disk file in ANOTHER VM's folder.
  // linked: a qcow2 overlay backed by it (instant; the source must never be written again,
  // which is what a template promises); full: a self-contained copy of everything the
  // source reads through its chain (qemu-img convert), with `progress(done, total)` (bytes
  // written of the source chain's allocated bytes) called about every 200 ms while it copies.
  using CloneProgress = std::function<void(uint64_t done, uint64_t total)>;
  virtual Result<ImageInfo> clone_disk(const std::string& vm, const std::string& disk,
                                       const std::string& source_path, bool linked,
                                       const CloneProgress& progress = {});
  // Removes every disk file of the VM and its folder.
  virtual Status delete_vm_disks(const std::string& vm) = 0;

  // Cold migration of a stopped VM's disk (docs/internals/migration.md, "Cold migration").
  // read_disk_file: the disk's file "vms/<vm>/<disk>.qcow2" as it is, as its data extents
  // in increasing offsets (holes, found with SEEK_DATA/SEEK_HOLE, are not read), each at
  // most `max_extent` bytes; `on_size` first gets the file's size. A sink error stops it.
  using DiskExtentSink = std::function<Status(uint64_t offset, std::string_view data)>;
  virtual Status read_disk_file(const std::string& vm, const std::string& disk,
                                size_t max_extent, const std::function<Status(uint64_t)>& on_size,
                                const DiskExtentSink& sink) const;
  // receive_disk_file: a file of `file_size` bytes made of the extents `next` returns (in
  // increasing offsets, inside the size; nullopt ends) replaces the disk "vms/<vm>/<disk>
  // .qcow2", which must exist (the VM's define made it). The file is written under tmp/
  // and checked before it replaces the disk: qcow2, no external data file, and backed by
  // nothing when `base` is empty, else pointed (qemu-img rebase -u: the same content by
  // promise of the catalog, nothing copied) at this store's image `base`, whatever its
  // header named (a path on the sending host).
  struct DiskExtent {
    uint64_t offset = 0;
    std::string data;
  };
  using DiskExtentSource = std::function<Result<std::optional<DiskExtent>>()>;
  virtual Result<ImageInfo> receive_disk_file(const std::string& vm, const std::string& disk,
                                              uint64_t file_size, const std::string& base,
                                              const DiskExtentSource& next);
};
using ImageStorePtr = std::unique_ptr<ImageStore>;

// Stores without snapshot support (test doubles) answer failed_precondition.
inline Result<ImageInfo> ImageStore::create_layer(const std::string&, const std::string&,
                                                  const std::string&, const std::string&) {
  return make_error(ErrorCode::failed_precondition, "this image store has no snapshot layers");
}
inline Status ImageStore::rebase_vm_file(const std::string&, const std::string&,
                                         const std::string&) {
  return make_error(ErrorCode::failed_precondition, "this image store has no snapshot layers");
}
inline Result<ImageInfo> ImageStore::vm_file_info(const std::string&, const std::string&) const {
  return make_error(ErrorCode::failed_precondition, "this image store has no snapshot layers");
}
inline Status ImageStore::delete_vm_file(const std::string&, const std::string&) {
  return make_error(ErrorCode::failed_precondition, "this image store has no snapshot layers");
}
inline Status ImageStore::read_disk_file(const std::string&, const std::string&, size_t,
                                         const std::function<Status(uint64_t)>&,
                                         const DiskExtentSink&) const {
  return make_error(ErrorCode::failed_precondition, "this image store cannot copy disks");
}
inline Result<ImageInfo> ImageStore::receive_disk_file(const std::string&, const std::string&,
                                                       uint64_t, const std::string&,
                                                       const DiskExtentSource&) {
  return make_error(ErrorCode::failed_precondition, "this image store cannot copy disks");
}
inline Result<ImageInfo> ImageStore::clone_disk(const std::string&, const std::string&,
                                                const std::string&, bool, const CloneProgress&) {
  return make_error(ErrorCode::failed_precondition, "this image store cannot clone disks");
}

// Parses the output of `qemu-img info --output=json` (format, sizes, backing file, data
// file, qcow2 bitmaps; `name`, `path` and `kind` are left empty). Malformed or incomplete output is
// an internal error.
Result<ImageInfo> parse_qemu_img_info(const std::string& json_text);

// Creates the store rooted at `root` (made if missing). `qemu_img` is the binary to run.
Result<ImageStorePtr> make_image_store(const std::string& root,
                                       const std::string& qemu_img = "qemu-img");

}  // namespace strata::agent
