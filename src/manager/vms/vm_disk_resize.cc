// VmService::resize_disk: grow a VM's disk (see vm_service.h and docs/internals/
// qemu-driver.md, "Disk resize"). One transaction records the intent as a task; a worker has
// the host grow the disk, then records the size in the spec.
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
  VmChange change;
  store::EventRecord audit;
  bool worker = false;
  const std::string what = fmt::format("disk {} to {} MiB", disk, size_bytes >> 20);
  auto st = store_.transaction_retrying([&](store::Store& tx) -> Status {
    change = {};
    worker = false;
    auto vm = tx.get_vm_by_name(name);
    if (!vm) return tl::unexpected(vm.error());
    if (vm->deletion_requested)
      return make_error(ErrorCode::failed_precondition, "the VM is being deleted");
    auto doc = decode_vm_document(vm->spec);
    if (!doc) return tl::unexpected(doc.error());
    if (doc->migration.active())
      return make_error(ErrorCode::failed_precondition,
                        "the VM is migrating; resize its disk once it has moved");
    model::DiskSpec* d = disk_of(doc->spec, disk);
    if (!d) return make_error(ErrorCode::not_found, "VM " + name + " has no disk " + disk, "disk");
    if (d->readonly)
      return make_error(ErrorCode::failed_precondition, "disk " + disk + " is read-only", "disk");
    // Grow only. A disk on a base image records 0 (the base's size) until it is resized: the
    // host, which knows the real size, refuses a shrink then.
    if (size_bytes < d->size_bytes)
      return invalid_argument("size_bytes",
                              fmt::format("disk {} is {} bytes; disks only grow", disk,
                                          d->size_bytes));
    auto task = create_task_in(tx, "vm.disk.resize", "vm", vm->id, "resize " + what);
    if (!task) return tl::unexpected(task.error());
    if (!vm->host_id) {
      // Not on a host yet: the define makes the disk this big.
      d->size_bytes = size_bytes;
      vm->spec = encode(*doc);
      auto updated = tx.update_vm(*vm);
      if (!updated) return tl::unexpected(updated.error());
      if (auto s = succeed_task_in(tx, task->id, "resize " + what + " (recorded)"); !s) return s;
      *vm = *updated;
    } else {
      worker = true;
    }
    auto ev = EventLog::append_in(tx, actor, "vm.disk.resize", "vm/" + vm->name, "ok", what);
    if (!ev) return tl::unexpected(ev.error());
    change = {*vm, *task};
    audit = *ev;
    return {};
  });
  if (!st) return tl::unexpected(st.error());
  events_.published(audit);
  if (worker)
    workers_.start([this, host = *change.vm.host_id, vm = change.vm.id, disk, size_bytes,
                    task = change.task.id] { run_resize(host, vm, disk, size_bytes, task); });
  else if (on_change_)
    on_change_(change.vm.id);
  return change;
}

void VmService::run_resize(std::string host_id, std::string vm_id, std::string disk,
                           uint64_t size_bytes, std::string task_id) {
  TaskTracker tasks(store_);
  (void)tasks.update(task_id, "running", 0,
                     fmt::format("growing disk {} to {} MiB", disk, size_bytes >> 20));
  AgentClientPtr client = agents_ ? agents_(host_id) : nullptr;
  if (!client) {
    (void)tasks.fail(task_id, "the VM's host is not connected");
    return;
  }
  auto vm = store_.get_vm(vm_id);
  if (!vm) {
    (void)tasks.fail(task_id, vm.error().to_string());
    return;
  }
  if (auto r = client->resize_disk(task_id, vm->name, disk, size_bytes); !r) {
    // Placed but not defined on its host yet (the controller's define is still to come):
    // the spec keeps its size, so the define cannot race a size recorded here.
    if (r.error().code == ErrorCode::not_found && r.error().field.empty())
      (void)tasks.fail(task_id, "the VM is not defined on its host yet; resize it once it is");
    else
      (void)tasks.fail(task_id, r.error().to_string());
    return;
  }
  // Recorded only now: the spec never names a size the host refused.
  auto st = store_.transaction_retrying([&](store::Store& tx) -> Status {
    auto cur = tx.get_vm(vm_id);
    if (!cur) return tl::unexpected(cur.error());
    auto d = decode_vm_document(cur->spec);
    if (!d) return tl::unexpected(d.error());
    if (model::DiskSpec* ds = disk_of(d->spec, disk)) ds->size_bytes = size_bytes;
    cur->spec = encode(*d);
    auto updated = tx.update_vm(*cur);
    if (!updated) return tl::unexpected(updated.error());
    return succeed_task_in(tx, task_id,
                           fmt::format("disk {} is {} MiB", disk, size_bytes >> 20));
  });
  if (!st) (void)tasks.fail(task_id, st.error().to_string());
  if (on_change_) on_change_(vm_id);
}

}  // namespace strata::manager
