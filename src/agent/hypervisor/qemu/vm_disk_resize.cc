// QemuHypervisor::resize_disk: grow a VM's disk, live through QMP block_resize while QEMU
// runs, with qemu-img while it does not (docs/internals/qemu-driver.md, "Disk resize").
#include <fmt/format.h>

#include "qemu_hypervisor.h"
#include "strata/agent/image_store.h"
#include "strata/common/atomic_file.h"
#include "strata/common/log.h"
#include "strata/common/process.h"
#include "strata/model/vm_spec_json.h"

namespace strata::agent::qemu {

using model::VmState;

namespace {

constexpr auto kResizeTimeout = std::chrono::seconds(30);

// query-block names a virtio-blk-pci device by its QOM path ("/machine/peripheral/
// virtio-disk0/virtio-backend") or by its id: the entry of the device `id`.
const BlockDeviceInfo* device_of(const std::vector<BlockDeviceInfo>& devices,
                                 const std::string& id) {
  for (const auto& d : devices)
    if (d.qdev == id || d.qdev.find("/" + id + "/") != std::string::npos) return &d;
  return nullptr;
}

}  // namespace

Result<uint64_t> QemuHypervisor::resize_disk(const std::string& name, const std::string& disk,
                                             uint64_t size_bytes) {
  if (size_bytes == 0 || size_bytes > model::kMaxDiskBytes)
    return invalid_argument("size_bytes", fmt::format("must be 1..{} bytes", model::kMaxDiskBytes));
  auto job = begin_device_job(name, VmJob::resize);
  if (!job) return tl::unexpected(job.error());
  JobEnd end{this, name, VmJob::resize};
  std::shared_ptr<QemuMonitor> qmp = job->qmp;
  const std::string& dir = job->dir;
  model::VmSpec& spec = job->spec;
  auto it = std::find_if(spec.disks.begin(), spec.disks.end(),
                         [&](const model::DiskSpec& d) { return d.name == disk; });
  if (it == spec.disks.end())
    return make_error(ErrorCode::not_found, "VM " + name + " has no disk " + disk, "disk");
  if (it->readonly)
    return make_error(ErrorCode::failed_precondition,
                      "disk " + disk + " of VM " + name + " is read-only", "disk");
  const size_t index = static_cast<size_t>(it - spec.disks.begin());
  const model::DiskSpec& d = spec.disks[index];

  uint64_t current = 0;
  std::string node;
  std::string file;  // offline: the active file and its format
  std::string format;
  if (qmp) {
    auto devices = qmp->query_block(kResizeTimeout);
    if (!devices) return tl::unexpected(devices.error().wrap("query-block"));
    const std::string id = disk_names(spec, index).device;
    const BlockDeviceInfo* dev = device_of(*devices, id);
    if (!dev || dev->node_name.empty())
      return internal_error("QEMU shows no medium in " + id + " (disk " + disk + ")");
    node = dev->node_name;
    current = dev->virtual_size;
  } else {
    auto tree = read_snapshot_tree(dir);
    if (!tree && tree.error().code != ErrorCode::not_found) return tl::unexpected(tree.error());
    auto r = resolve_disk(name, spec, d, tree ? &*tree : nullptr);
    if (!r) return tl::unexpected(r.error());
    file = r->path;
    format = r->format;
    // -U: read without QEMU's lock (no QEMU holds it; a stale lock must not block this).
    auto out = run_checked({"qemu-img", "info", "--output=json", "-U", "-f", format, file});
    if (!out) return tl::unexpected(out.error().wrap("qemu-img info"));
    auto info = parse_qemu_img_info(*out);
    if (!info) return tl::unexpected(info.error().wrap(file));
    current = info->virtual_size;
  }
  if (current == 0) return internal_error("the size of disk " + disk + " is unknown");
  if (size_bytes < current)
    return invalid_argument(
        "size_bytes",
        fmt::format("disk {} is {} bytes; disks only grow (shrinking would cut off data the "
                    "guest's file system may hold)",
                    disk, current));
  if (size_bytes > current) {
    if (qmp) {
      if (auto r = qmp->block_resize(node, size_bytes, kResizeTimeout); !r)
        return tl::unexpected(r.error().wrap("block_resize"));
    } else {
      auto r = run_checked({"qemu-img", "resize", "-q", "-f", format, file,
                            std::to_string(size_bytes)});
      if (!r) return tl::unexpected(r.error().wrap("qemu-img resize"));
    }
  }
  // The spec records the size (a migration target or a redefined VM makes the disk that
  // big); a disk on a base image that was 0 ("the base's size") now names its size.
  spec.disks[index].size_bytes = size_bytes;
  if (auto s = record_spec(name, dir, spec); !s) return tl::unexpected(s.error());
  logger("agent.qemu")
      ->info("disk resized vm={} disk={} from={} to={} live={}", name, disk, current, size_bytes,
             qmp != nullptr);
  return size_bytes;
}

}  // namespace strata::agent::qemu
