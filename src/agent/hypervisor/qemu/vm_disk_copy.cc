// Cold migration of a stopped VM's local disks in the QEMU driver: the disk's qcow2 file
// read on the source and written on the target (the image store does the file work:
// read_disk_file, receive_disk_file). The VM holds a disk-copy job meanwhile, so it cannot
// start (and write, or read half a file) under the copy. The manager relays the bytes
// between the two agents (docs/internals/migration.md, "Cold migration").
#include "qemu_hypervisor.h"
#include "strata/common/log.h"

namespace strata::agent::qemu {

using model::VmState;

namespace {

// The disk `disk` of `spec`, local to this host (not on a datastore).
Result<const model::DiskSpec*> local_disk(const std::string& vm, const model::VmSpec& spec,
                                          const std::string& disk) {
  for (const auto& d : spec.disks) {
    if (d.name != disk) continue;
    if (!d.datastore.empty())
      return make_error(ErrorCode::failed_precondition,
                        "disk " + vm + "/" + disk + " is on datastore " + d.datastore +
                            ": shared, nothing to copy");
    return &d;
  }
  return not_found("VM " + vm + " has no disk " + disk);
}

}  // namespace

// Both directions: checks the VM and its disk, takes the disk-copy job, returns the spec's
// disk. The caller ends the job.
Result<model::DiskSpec> QemuHypervisor::begin_disk_copy(const std::string& name,
                                                        const std::string& disk) {
  if (!opts_.images) return make_error(ErrorCode::failed_precondition, "no image store configured");
  std::lock_guard lk(mu_);
  auto v = find_locked(name);
  if (!v) return tl::unexpected(v.error());
  Vm& vm = **v;
  const VmState s = vm.rec.state;
  if (s != VmState::defined && s != VmState::stopped && s != VmState::crashed)
    return make_error(ErrorCode::failed_precondition,
                      "VM " + name + " is " + model::to_string(s) +
                          "; a disk is copied only while its VM is off");
  auto d = local_disk(name, vm.spec, disk);
  if (!d) return tl::unexpected(d.error());
  // Snapshot layers are more files, backed by each other: the disk's one file is not all.
  if (has_snapshots(vm.dir))
    return make_error(ErrorCode::failed_precondition,
                      "VM " + name + " has snapshots; copying its disks to another host is not "
                      "supported yet (delete them first)");
  if (auto st = begin_job_locked(name, vm, VmJob::disk_copy); !st) return tl::unexpected(st.error());
  return **d;
}

Status QemuHypervisor::export_disk(const std::string& name, const std::string& disk,
                                   size_t max_extent,
                                   const std::function<Status(const DiskFileHeader&)>& on_header,
                                   const ImageStore::DiskExtentSink& on_extent) {
  auto d = begin_disk_copy(name, disk);
  if (!d) return tl::unexpected(d.error());
  JobEnd end_job_guard{this, name, VmJob::disk_copy};
  auto info = opts_.images->disk_info(name, disk);
  if (!info) return tl::unexpected(info.error());
  return opts_.images->read_disk_file(
      name, disk, max_extent,
      [&](uint64_t size) {
        return on_header(DiskFileHeader{info->format, size, d->base_image});
      },
      on_extent);
}

Result<uint64_t> QemuHypervisor::import_disk(const std::string& name, const std::string& disk,
                                             const DiskFileHeader& header,
                                             const ImageStore::DiskExtentSource& next) {
  if (header.format != "qcow2")
    return invalid_argument("format", "a VM disk is qcow2, not \"" + header.format + "\"");
  auto d = begin_disk_copy(name, disk);
  if (!d) return tl::unexpected(d.error());
  JobEnd end_job_guard{this, name, VmJob::disk_copy};
  // The file's backing is named by the VM's spec on this host, never by the sender.
  if (header.base_image != d->base_image)
    return invalid_argument("base_image", "disk " + name + "/" + disk + " is " +
                                              (d->base_image.empty()
                                                   ? std::string("a blank disk")
                                                   : "an overlay on " + d->base_image) +
                                              " here; the file sent is " +
                                              (header.base_image.empty()
                                                   ? std::string("a blank disk")
                                                   : "an overlay on " + header.base_image));
  uint64_t written = 0;
  auto counted = [&]() -> Result<std::optional<ImageStore::DiskExtent>> {
    auto e = next();
    if (e && *e) written += (*e)->data.size();
    return e;
  };
  auto placed = opts_.images->receive_disk_file(name, disk, header.file_size, d->base_image, counted);
  if (!placed) return tl::unexpected(placed.error());
  logger("agent.qemu")->info("disk copied in vm={} disk={} bytes={}", name, disk, written);
  return written;
}

}  // namespace strata::agent::qemu
