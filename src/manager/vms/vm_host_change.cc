// VmService::change_on_host: the one shape of a VM change its host carries out (CD-ROM,
// disk resize, hot-plug; see vm_service.h). One transaction checks the change and writes
// its task and audit event; a worker then has the host act (request id: the task id) and
// only then records the result in the spec, so the spec never names what the host refused.
#include "strata/manager/tasks/task_tracker.h"
#include "strata/manager/vms/vm_service.h"

namespace strata::manager {

Result<VmChange> VmService::change_on_host(const std::string& name, HostChange c,
                                           const std::string& actor) {
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
                        "the VM is migrating; " + c.moving + " once it has moved");
    if (auto s = c.plan(tx, *vm, *doc); !s) return s;
    auto task = create_task_in(tx, c.kind, "vm", vm->id, c.what);
    if (!task) return tl::unexpected(task.error());
    if (!vm->host_id) {
      // On no host yet: the plan's spec is recorded now, and the define carries it.
      vm->spec = encode(*doc);
      auto updated = tx.update_vm(*vm);
      if (!updated) return tl::unexpected(updated.error());
      if (auto s = succeed_task_in(tx, task->id, c.what + " (recorded)"); !s) return s;
      auto done = tx.get_task(task->id);  // answered as it ended
      if (!done) return tl::unexpected(done.error());
      *task = *done;
      *vm = *updated;
    } else {
      worker = true;
    }
    auto ev =
        EventLog::append_in(tx, actor, std::string(c.kind.name()), "vm/" + vm->name, "ok", c.what);
    if (!ev) return tl::unexpected(ev.error());
    change = {*vm, *task};
    audit = *ev;
    return {};
  });
  if (!st) return tl::unexpected(st.error());
  events_.published(audit);
  if (worker) {
    auto shared = std::make_shared<const HostChange>(std::move(c));
    workers_.start([this, host = *change.vm.host_id, vm = change.vm.id, task = change.task.id,
                    shared] { run_host_change(host, vm, task, shared); });
  } else if (on_change_) {
    on_change_(change.vm.id);
  }
  return change;
}

void VmService::run_host_change(std::string host_id, std::string vm_id, std::string task_id,
                                std::shared_ptr<const HostChange> c) {
  auto lease = RunningTasks::enter(running_, c->kind, task_id);
  TaskTracker tasks(store_);
  (void)tasks.update(task_id, "running", 0, c->running);
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
  auto outcome = c->on_host(*client, *vm, tasks, task_id);
  if (!outcome) {
    // Placed but not defined on its host yet (the controller's define is still to come):
    // the spec keeps what it says, so the define cannot race a change recorded here.
    if (outcome.error().code == ErrorCode::not_found && outcome.error().field.empty())
      (void)tasks.fail(task_id, "the VM is not defined on its host yet; try again once it is");
    else
      (void)tasks.fail(task_id, outcome.error().to_string());
    return;
  }
  auto st = store_.transaction_retrying([&](store::Store& tx) -> Status {
    auto cur = tx.get_vm(vm_id);
    if (!cur) return tl::unexpected(cur.error());
    auto d = decode_vm_document(cur->spec);
    if (!d) return tl::unexpected(d.error());
    if (outcome->record) outcome->record(d->spec);
    cur->spec = encode(*d);
    auto updated = tx.update_vm(*cur);
    if (!updated) return tl::unexpected(updated.error());
    return succeed_task_in(tx, task_id, outcome->message);
  });
  if (!st) (void)tasks.fail(task_id, st.error().to_string());
  if (on_change_) on_change_(vm_id);
}

}  // namespace strata::manager
