// VM disk snapshots in the manager (see vm_service.h): one store transaction records the
// operation's task and audit event; a worker then asks the VM's host and ends the task.
#include <fmt/format.h>

#include "strata/manager/tasks/task_tracker.h"
#include "strata/manager/vms/vm_service.h"
#include "strata/model/validation.h"

namespace strata::manager {

namespace {

// Bounds of the agent's work: a create or revert makes small files; a delete copies the
// snapshot's data into what depends on it (as long as the disk needs).
constexpr std::chrono::minutes kCreateTimeout{5};
constexpr std::chrono::minutes kRevertTimeout{5};
constexpr std::chrono::hours kDeleteTimeout{6};

nlohmann::json to_json(const pb::Snapshot& s) {
  return {{"name", s.name()},
          {"parent", s.parent()},
          {"created_unix_ms", s.created_unix_ms()},
          {"consistency", s.consistency()},
          {"vm_state", s.vm_state()},
          {"current", s.current()}};
}

}  // namespace

const char* to_string(SnapshotOp op) {
  switch (op) {
    case SnapshotOp::create:
      return "create";
    case SnapshotOp::revert:
      return "revert";
    case SnapshotOp::remove:
      return "delete";
  }
  return "unknown";
}

VmService::~VmService() = default;

InProcessTaskKind task_kind(SnapshotOp op) {
  switch (op) {
    case SnapshotOp::create:
      return TaskKind::vm_snapshot_create;
    case SnapshotOp::revert:
      return TaskKind::vm_snapshot_revert;
    case SnapshotOp::remove:
      return TaskKind::vm_snapshot_delete;
  }
  return TaskKind::vm_snapshot_delete;  // unreachable: every operation is above
}

Result<VmChange> VmService::snapshot(const std::string& name, SnapshotOp op,
                                     const std::string& snap, const std::string& actor) {
  if (auto st = model::validate_name("name", snap); !st) return tl::unexpected(st.error());
  if (!agents_) return make_error(ErrorCode::unavailable, "no agent connections");
  const std::string kind(task_kind(op).name());
  VmChange change;
  store::EventRecord audit;
  auto st = store_.transaction([&](store::Store& tx) -> Status {
    auto vm = tx.get_vm_by_name(name);
    if (!vm) return tl::unexpected(vm.error());
    if (vm->deletion_requested)
      return make_error(ErrorCode::failed_precondition, "the VM is being deleted");
    if (!vm->host_id)
      return make_error(ErrorCode::failed_precondition, "the VM is not placed on a host yet");
    if (auto doc = decode_vm_document(vm->spec); doc && doc->is_template)
      return make_error(ErrorCode::conflict,
                        fmt::format("VM {} is a template: its disks are read-only (linked "
                                    "clones read them)",
                                    vm->name));
    if (op == SnapshotOp::revert && vm->desired_state == "running")
      return make_error(ErrorCode::failed_precondition,
                        "the VM is meant to run; stop it first: a disk-only snapshot is "
                        "reverted on a stopped VM");
    auto task = create_task_in(tx, task_kind(op), "vm", vm->id, fmt::format("snapshot {}", snap));
    if (!task) return tl::unexpected(task.error());
    auto ev = EventLog::append_in(tx, actor, kind, "vm/" + vm->name, "ok", snap);
    if (!ev) return tl::unexpected(ev.error());
    change = {*vm, *task};
    audit = *ev;
    return {};
  });
  if (!st) return tl::unexpected(st.error());
  events_.published(audit);
  workers_.start([this, host = *change.vm.host_id, vm = change.vm.name, op, snap,
                  task = change.task.id] { run_snapshot(host, vm, op, snap, task); });
  return change;
}

void VmService::run_snapshot(std::string host_id, std::string vm, SnapshotOp op, std::string snap,
                             std::string task_id) {
  auto lease = RunningTasks::enter(running_, task_kind(op), task_id);
  TaskTracker tasks(store_);
  (void)tasks.update(task_id, "running", 0, fmt::format("snapshot {}: {}", snap, to_string(op)));
  AgentClientPtr client = agents_(host_id);
  if (!client) {
    (void)tasks.fail(task_id, "the VM's host is not connected");
    return;
  }
  Status outcome;
  std::optional<nlohmann::json> result;
  switch (op) {
    case SnapshotOp::create: {
      auto s = client->create_snapshot(task_id, vm, snap, kCreateTimeout);
      if (s)
        result = nlohmann::json{{"snapshot", to_json(*s)}};
      else
        outcome = tl::unexpected(s.error());
      break;
    }
    case SnapshotOp::revert:
      outcome = client->revert_snapshot(task_id, vm, snap, kRevertTimeout);
      break;
    case SnapshotOp::remove:
      outcome = client->delete_snapshot(task_id, vm, snap, kDeleteTimeout);
      break;
  }
  if (!outcome) {
    (void)tasks.fail(task_id, outcome.error().to_string());
    return;
  }
  std::string msg = fmt::format("snapshot {}: {} done", snap, to_string(op));
  if (result)
    (void)tasks.update(task_id, "succeeded", 100, msg, result);
  else
    (void)tasks.succeed(task_id, msg);
}

Result<std::vector<SnapshotView>> VmService::list_snapshots(const std::string& name) {
  auto vm = store_.get_vm_by_name(name);
  if (!vm) return tl::unexpected(vm.error());
  if (!vm->host_id) return std::vector<SnapshotView>{};
  AgentClientPtr client = agents_ ? agents_(*vm->host_id) : nullptr;
  if (!client) return make_error(ErrorCode::unavailable, "the VM's host is not connected");
  auto list = client->list_snapshots(name);
  if (!list) return tl::unexpected(list.error());
  std::vector<SnapshotView> out;
  for (auto& s : *list)
    out.push_back(
        {s.name(), s.parent(), s.created_unix_ms(), s.consistency(), s.vm_state(), s.current()});
  return out;
}

}  // namespace strata::manager
