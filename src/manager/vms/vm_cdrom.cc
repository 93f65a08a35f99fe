// VmService::change_cdrom: the CD-ROM's medium of a VM (see vm_service.h and
// docs/internals/firmware.md). One transaction records the intent as a task; a worker
// copies the iso to the VM's host, has the host change the medium, and records it.
#include <fmt/format.h>

#include "strata/manager/controllers/image_distribution.h"
#include "strata/manager/tasks/task_tracker.h"
#include "strata/manager/vms/vm_service.h"
#include "strata/model/validation.h"

namespace strata::manager {

Result<VmChange> VmService::change_cdrom(const std::string& name, const std::string& image,
                                         const std::string& actor) {
  if (!image.empty())
    if (auto st = model::validate_image_name("image", image); !st)
      return tl::unexpected(st.error());
  VmChange change;
  store::EventRecord audit;
  bool worker = false;
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
                        "the VM is migrating; change the medium once it has moved");
    model::VmSpec spec = doc->spec;
    spec.cdrom = image;
    // The machine must have the slot (q35), and the image must be an iso (catalog kind).
    if (auto v = model::validate(spec); !v) {
      Error e = v.error();
      if (e.field == "cdrom") e.field = "image";
      return tl::unexpected(e);
    }
    if (auto k = check_image_kinds(tx, spec); !k) {
      Error e = k.error();
      if (e.field == "cdrom") e.field = "image";
      return tl::unexpected(e);
    }
    const std::string what = image.empty() ? "eject" : "insert " + image;
    auto task = create_task_in(tx, "vm.cdrom", "vm", vm->id, "cdrom: " + what);
    if (!task) return tl::unexpected(task.error());
    if (!vm->host_id) {
      // Not on a host yet: the define will carry the medium.
      doc->spec = spec;
      vm->spec = encode(*doc);
      auto updated = tx.update_vm(*vm);
      if (!updated) return tl::unexpected(updated.error());
      if (auto s = succeed_task_in(tx, task->id, "cdrom: " + what + " (recorded)"); !s) return s;
      *vm = *updated;
    } else {
      worker = true;
    }
    auto ev = EventLog::append_in(tx, actor, "vm.cdrom", "vm/" + vm->name, "ok", what);
    if (!ev) return tl::unexpected(ev.error());
    change = {*vm, *task};
    audit = *ev;
    return {};
  });
  if (!st) return tl::unexpected(st.error());
  events_.published(audit);
  if (worker)
    workers_.start([this, host = *change.vm.host_id, vm = change.vm.id, image,
                    task = change.task.id] { run_cdrom(host, vm, image, task); });
  else if (on_change_)
    on_change_(change.vm.id);
  return change;
}

void VmService::run_cdrom(std::string host_id, std::string vm_id, std::string image,
                          std::string task_id) {
  TaskTracker tasks(store_);
  (void)tasks.update(task_id, "running", 0, image.empty() ? "ejecting" : "inserting " + image);
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
  auto doc = decode_vm_document(vm->spec);
  if (!doc) {
    (void)tasks.fail(task_id, doc.error().to_string());
    return;
  }
  // The host gets the iso through the catalog, like a disk base (a host-local iso the
  // catalog does not know stays the host's business).
  if (!image.empty() && images_) {
    model::VmSpec only;
    only.cdrom = image;
    auto ensured = images_->ensure(host_id, *client, only, [&](const std::string& msg) {
      (void)tasks.update(task_id, "running", 10, msg);
    });
    if (!ensured) {
      (void)tasks.fail(task_id, ensured.error().to_string());
      return;
    }
  }
  if (auto r = client->change_cdrom(task_id, vm->name, image); !r) {
    (void)tasks.fail(task_id, r.error().to_string());
    return;
  }
  // Recorded only now: the spec names what the host has in the drive.
  auto st = store_.transaction_retrying([&](store::Store& tx) -> Status {
    auto cur = tx.get_vm(vm_id);
    if (!cur) return tl::unexpected(cur.error());
    auto d = decode_vm_document(cur->spec);
    if (!d) return tl::unexpected(d.error());
    d->spec.cdrom = image;
    cur->spec = encode(*d);
    auto updated = tx.update_vm(*cur);
    if (!updated) return tl::unexpected(updated.error());
    return succeed_task_in(tx, task_id, image.empty() ? "ejected" : "inserted " + image);
  });
  if (!st) (void)tasks.fail(task_id, st.error().to_string());
  if (on_change_) on_change_(vm_id);
}

}  // namespace strata::manager
