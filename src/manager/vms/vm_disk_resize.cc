// VmService::resize_disk: grow a VM's disk (see vm_service.h and docs/internals/
// qemu-driver.md, "Disk resize"), a change its host carries out (vm_host_change.cc): the
// host grows the disk, then the spec records the size.
#include <fmt/format.h>

#include <algorithm>

#include "strata/manager/tasks/task_tracker.h"
#include "strata/manager/vms/vm_service.h"
#include "strata/model/validation.h"

namespace strata::manager {

namespace {

model::DiskSpec* disk_of(model::VmSpec& spec, const std::string& disk) {
  auto it = std::find_if(spec.disks.begin(), spec.disks.end(),
                         [&](const model::DiskSpec& d) { return d.name == disk; });
  return it == spec.disks.end() ? nullptr : &*it;
}

}  // namespace

Result<VmChange> VmService::resize_disk(const std::string& name, const std::string& disk,
                                        uint64_t size_bytes, const std::string& actor) {
  if (auto st = model::validate_name("disk", disk); !st) return tl::unexpected(st.error());
  if (size_bytes == 0 || size_bytes > model::kMaxDiskBytes)
    return invalid_argument("size_bytes", fmt::format("must be 1..{} bytes", model::kMaxDiskBytes));
  const std::string what = fmt::format("disk {} to {} MiB", disk, size_bytes >> 20);
  HostChange c(TaskKind::vm_disk_resize);
  c.what = "resize " + what;
  c.moving = "resize its disk";
  c.running = fmt::format("growing disk {} to {} MiB", disk, size_bytes >> 20);
  c.plan = [disk, size_bytes](store::Store&, const store::VmRecord&, VmDocument& doc) -> Status {
    model::DiskSpec* d = disk_of(doc.spec, disk);
    if (!d) return make_error(ErrorCode::not_found, "the VM has no disk " + disk, "disk");
    if (d->readonly)
      return make_error(ErrorCode::failed_precondition, "disk " + disk + " is read-only", "disk");
    // Grow only. A disk on a base image records 0 (the base's size) until it is resized: the
    // host, which knows the real size, refuses a shrink then.
    if (size_bytes < d->size_bytes)
      return invalid_argument(
          "size_bytes", fmt::format("disk {} is {} bytes; disks only grow", disk, d->size_bytes));
    d->size_bytes = size_bytes;
    return {};
  };
  c.on_host = [disk, size_bytes](AgentClient& agent, const store::VmRecord& vm, TaskTracker&,
                                 const std::string& task_id) -> Result<HostOutcome> {
    if (auto r = agent.resize_disk(task_id, vm.name, disk, size_bytes); !r)
      return tl::unexpected(r.error());
    return HostOutcome{[disk, size_bytes](model::VmSpec& spec) {
                         if (model::DiskSpec* d = disk_of(spec, disk)) d->size_bytes = size_bytes;
                       },
                       fmt::format("disk {} is {} MiB", disk, size_bytes >> 20)};
  };
  return change_on_host(name, std::move(c), actor);
}

}  // namespace strata::manager
