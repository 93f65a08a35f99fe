// Every task kind the manager creates, with who advances it: the one home of task kinds.
// Code creating a task names a `TaskKind` (create_task_in, TaskTracker::create), so a kind
// that is not in this table does not compile; the in-process kinds the stale-task sweep may
// fail (kInProcessTaskKinds) are derived from the table's owners, and a worker holds its
// task's lease (RunningTasks::enter) only with an `InProcessTaskKind`, which does not
// compile for a controller-driven kind. So a kind run on a worker is always swept.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace strata::manager {

// Who ends a task of a kind.
enum class TaskOwner {
  // A controller reconciling desired state stored in the store: a restarted manager picks
  // it up again. Never swept.
  controller,
  // A manager's own thread (a service worker, the request that made it, or an in-memory
  // HA outage): if that process dies, nothing else ends it, so it holds a lease
  // (running_tasks.h, task_leases.h) and the sweep fails it when the lease runs out.
  in_process,
};

enum class TaskKind : uint8_t {
  vm_create,
  vm_start,
  vm_stop,
  vm_reboot,
  vm_pause,
  vm_resume,
  vm_delete,
  vm_migrate,
  host_evacuate,
  vm_import,
  vm_snapshot_create,
  vm_snapshot_revert,
  vm_snapshot_delete,
  vm_clone,
  vm_disk_resize,
  vm_disk_attach,
  vm_disk_detach,
  vm_nic_attach,
  vm_nic_detach,
  vm_cdrom,
  backup_create,
  backup_verify,
  backup_restore,
  backup_sync,
  host_fence,
  count_,  // not a kind: the number of kinds
};

struct TaskKindInfo {
  TaskKind kind;
  std::string_view name;  // TaskRecord::kind, as the API shows it
  TaskOwner owner;
  std::string_view runner;  // what advances it (for people reading the table)
};

// Indexed by TaskKind (checked below).
inline constexpr std::array<TaskKindInfo, static_cast<size_t>(TaskKind::count_)> kTaskKinds = {{
    {TaskKind::vm_create, "vm.create", TaskOwner::controller, "VmController"},
    {TaskKind::vm_start, "vm.start", TaskOwner::controller, "VmController"},
    {TaskKind::vm_stop, "vm.stop", TaskOwner::controller, "VmController"},
    {TaskKind::vm_reboot, "vm.reboot", TaskOwner::controller, "VmController"},
    {TaskKind::vm_pause, "vm.pause", TaskOwner::controller, "VmController"},
    {TaskKind::vm_resume, "vm.resume", TaskOwner::controller, "VmController"},
    {TaskKind::vm_delete, "vm.delete", TaskOwner::controller, "VmController"},
    {TaskKind::vm_migrate, "vm.migrate", TaskOwner::controller, "VmController (vm_migration.cc)"},
    {TaskKind::host_evacuate, "host.evacuate", TaskOwner::controller, "host_evacuation.cc"},
    {TaskKind::vm_import, "vm.import", TaskOwner::in_process, "VmImporter"},
    {TaskKind::vm_snapshot_create, "vm.snapshot.create", TaskOwner::in_process,
     "VmService workers (vm_snapshots.cc)"},
    {TaskKind::vm_snapshot_revert, "vm.snapshot.revert", TaskOwner::in_process,
     "VmService workers (vm_snapshots.cc)"},
    {TaskKind::vm_snapshot_delete, "vm.snapshot.delete", TaskOwner::in_process,
     "VmService workers (vm_snapshots.cc)"},
    {TaskKind::vm_clone, "vm.clone", TaskOwner::in_process, "VmService workers (vm_clones.cc)"},
    {TaskKind::vm_disk_resize, "vm.disk.resize", TaskOwner::in_process,
     "VmService workers (vm_host_change.cc)"},
    {TaskKind::vm_disk_attach, "vm.disk.attach", TaskOwner::in_process,
     "VmService workers (vm_host_change.cc)"},
    {TaskKind::vm_disk_detach, "vm.disk.detach", TaskOwner::in_process,
     "VmService workers (vm_host_change.cc)"},
    {TaskKind::vm_nic_attach, "vm.nic.attach", TaskOwner::in_process,
     "VmService workers (vm_host_change.cc)"},
    {TaskKind::vm_nic_detach, "vm.nic.detach", TaskOwner::in_process,
     "VmService workers (vm_host_change.cc)"},
    {TaskKind::vm_cdrom, "vm.cdrom", TaskOwner::in_process,
     "VmService workers (vm_host_change.cc)"},
    {TaskKind::backup_create, "backup.create", TaskOwner::in_process, "BackupService workers"},
    {TaskKind::backup_verify, "backup.verify", TaskOwner::in_process, "BackupService workers"},
    {TaskKind::backup_restore, "backup.restore", TaskOwner::in_process, "BackupService workers"},
    {TaskKind::backup_sync, "backup.sync", TaskOwner::in_process, "BackupService workers"},
    {TaskKind::host_fence, "host.fence", TaskOwner::in_process,
     "HaController: held by the host's in-memory outage while it lasts"},
}};

constexpr const TaskKindInfo& task_kind_info(TaskKind kind) {
  return kTaskKinds[static_cast<size_t>(kind)];
}
constexpr std::string_view task_kind_name(TaskKind kind) { return task_kind_info(kind).name; }
constexpr bool is_in_process(TaskKind kind) {
  return task_kind_info(kind).owner == TaskOwner::in_process;
}

namespace task_kinds_detail {
consteval bool table_is_consistent() {
  for (size_t i = 0; i < kTaskKinds.size(); ++i) {
    if (static_cast<size_t>(kTaskKinds[i].kind) != i) return false;  // out of order
    if (kTaskKinds[i].name.empty()) return false;
    for (size_t j = 0; j < i; ++j)
      if (kTaskKinds[j].name == kTaskKinds[i].name) return false;  // a name used twice
  }
  return true;
}
consteval size_t count_in_process() {
  size_t n = 0;
  for (const auto& k : kTaskKinds) n += k.owner == TaskOwner::in_process;
  return n;
}
}  // namespace task_kinds_detail
static_assert(task_kinds_detail::table_is_consistent(),
              "kTaskKinds: one entry per TaskKind, in the enum's order, with distinct names");

// The one list of in-process task kinds: only these are ever swept (task_leases.h).
inline constexpr auto kInProcessTaskKinds = [] {
  std::array<std::string_view, task_kinds_detail::count_in_process()> out{};
  size_t n = 0;
  for (const auto& k : kTaskKinds)
    if (k.owner == TaskOwner::in_process) out[n++] = k.name;
  return out;
}();

// A task kind proven in-process at compile time: the only thing a worker can hold a lease
// with (RunningTasks::enter). Converting a controller-driven kind does not compile (a
// consteval constructor that is not a constant expression for it).
class InProcessTaskKind {
 public:
  consteval InProcessTaskKind(TaskKind kind)  // NOLINT(google-explicit-constructor)
      : kind_(kind) {
    if (!is_in_process(kind)) not_an_in_process_task_kind();
  }
  constexpr TaskKind kind() const { return kind_; }
  constexpr operator TaskKind() const { return kind_; }  // NOLINT(google-explicit-constructor)
  constexpr std::string_view name() const { return task_kind_name(kind_); }

 private:
  // Not constexpr: reaching it during constant evaluation is the compile error, which
  // names it. Mark the kind TaskOwner::in_process in kTaskKinds.
  static void not_an_in_process_task_kind() {}
  TaskKind kind_;
};

}  // namespace strata::manager
