// The VM lifecycle's one home in the manager: create, act (start, stop, reboot, pause,
// resume) and delete. Each call validates, decides (placement through PlacementService's
// one placement path) and writes in ONE store transaction: the VM record, its new task,
// the superseded task's end and the audit event commit together or not at all. Then the
// controller is told (on_change) and drives the agent. HTTP routes only parse the request
// into these calls and render what they return (api/vm_rest.h); errors are values:
//   invalid_argument / not_found / already_exists / conflict (resource_version) /
//   failed_precondition (being deleted, not meant to run) / resource_exhausted (no host).
// Thread-safe: the store serializes transactions; creates hold the placement lock.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "strata/common/clock.h"
#include "strata/common/error.h"
#include "strata/common/task_threads.h"
#include "strata/manager/agents/agent_client.h"
#include "strata/manager/controllers/image_distribution.h"
#include "strata/manager/controllers/placement.h"
#include "strata/manager/controllers/vm_document.h"
#include "strata/manager/events/event_log.h"
#include "strata/manager/tasks/running_tasks.h"
#include "strata/store/store.h"

namespace strata::manager {

class TaskTracker;

enum class VmVerb { start, stop, reboot, pause, resume, remove };

// "start", "stop", ... "delete"; the task kind and audit action is "vm." + this.
const char* to_string(VmVerb verb);
// The task a verb makes (controller-driven: the VM's desired state carries it out).
TaskKind task_kind(VmVerb verb);

struct VmActOptions {
  std::optional<int64_t> expected_version;  // compare-and-swap on resource_version
  bool stop_force = false;                  // stop: force off instead of ACPI
  uint32_t stop_timeout_s = 0;              // stop: ACPI wait (0: agent default)
};

// Disk snapshots of a VM (vm_snapshots.cc): the operation a task carries out on the host.
enum class SnapshotOp { create, revert, remove };
// "create", "revert", "delete"; the task kind and audit action is "vm.snapshot." + this.
const char* to_string(SnapshotOp op);
// The task an operation makes (run by a VmService worker).
InProcessTaskKind task_kind(SnapshotOp op);

// A snapshot as the host's agent reports it.
struct SnapshotView {
  std::string name;
  std::string parent;  // "" for a root snapshot
  int64_t created_unix_ms = 0;
  std::string consistency;  // "filesystem" (guest agent froze the filesystems) | "crash"
  std::string vm_state;     // the VM's state when it was taken
  bool current = false;     // the VM's disks are an overlay of this snapshot
};

// The agent of a host, or null when it is not connected.
using AgentLookup = std::function<AgentClientPtr(const std::string& host_id)>;

struct VmMigrateOptions {
  std::string target_host;      // a host name; empty: the scheduler chooses
  uint64_t max_bandwidth = 0;   // bytes per second; 0: QEMU's default
  int64_t downtime_max_ms = 0;  // the highest downtime limit to step up to; 0: 1000 ms
  std::optional<bool> tls;      // TLS for the stream and the mirror; unset: the cluster default
  bool auto_converge = false;   // let QEMU throttle the guest's vCPUs while RAM lags behind
  bool postcopy = false;        // switch over early, the target fetches the rest of the RAM
};

// What a change committed: the VM as stored and the task that tracks the intent.
struct VmChange {
  store::VmRecord vm;
  store::TaskRecord task;
};

// HA admission control (stratad --ha-admission): an HA VM is created only when every
// host's HA VMs, with it, would still restart elsewhere after that one host's failure
// (PlacementService::check_ha_admission). warn: created anyway, with a vm.ha_admission
// event saying what would not restart.
enum class HaAdmission { enforce, warn, off };

class VmService {
 public:
  // on_change(vm_id) runs after every committed change (the controller's enqueue_vm);
  // null: nothing is told (tests).
  VmService(store::Store& store, PlacementService& placement, EventLog& events, ClockPtr clock,
            std::function<void(const std::string& vm_id)> on_change = {});

  // Completes the spec (uuid, MACs), checks its images, places it and stores it with a
  // "vm.create" task. `actor` is who asked (the audit event's actor).
  Result<VmChange> create(VmDocument doc, bool start, const std::string& actor);
  void set_ha_admission(HaAdmission mode) { ha_admission_ = mode; }
  // The cluster default for a migration's TLS (stratad --migration-tls; on by default).
  void set_migration_tls(bool on) { migration_tls_ = on; }
  PlacementService& placement() { return placement_; }
  store::Store& store() { return store_; }

  // A new intent for the VM named `name`: bumps control.generation, replaces the current
  // task (the previous open one fails as superseded).
  Result<VmChange> act(const std::string& name, VmVerb verb, const VmActOptions& options,
                       const std::string& actor);

  // Live migration of a running (or paused) VM to another host (chosen by the scheduler
  // when none is named: same accelerator, fits, not the source). Records the intent and a
  // "vm.migrate" task in one transaction; the controller drives the agents. Refused while
  // the VM is being deleted, not running, or already migrating. While it migrates the
  // VM's other actions are refused (failed_precondition).
  Result<VmChange> migrate(const std::string& name, const VmMigrateOptions& options,
                           const std::string& actor);
  // Cancels the VM's migration: recorded in the intent with its audit event (one
  // transaction); while the memory copies, the source's QEMU is told at once (the agent's
  // CancelMigration), else the controller gives the target up at its next step. The VM
  // stays on (or returns to) its source, running; the migrate task fails "cancelled by
  // <actor>". failed_precondition: no migration in progress, or it is switching over
  // (the target resumes: too late, it completes).
  Result<VmChange> cancel_migration(const std::string& name, const std::string& actor);

  Result<VmChange> remove(const std::string& name, std::optional<int64_t> expected_version,
                          const std::string& actor) {
    VmActOptions o;
    o.expected_version = expected_version;
    return act(name, VmVerb::remove, o, actor);
  }

  // Snapshots. A snapshot operation is ONE store transaction (its "vm.snapshot.<op>" task
  // and the audit event), then runs on the VM's host in the background (request id: the
  // task id) and ends the task (its result: the snapshot, for create). Errors before the
  // commit: not_found, failed_precondition (being deleted, not placed; revert of a VM meant
  // to run), invalid_argument (snapshot name).
  void set_agents(AgentLookup lookup) { agents_ = std::move(lookup); }
  Result<VmChange> snapshot(const std::string& name, SnapshotOp op, const std::string& snap,
                            const std::string& actor);
  // Asks the VM's host (unavailable when it is not connected).
  Result<std::vector<SnapshotView>> list_snapshots(const std::string& name);

  // Templates and clones (vm_clones.cc). make_template turns a stopped VM into a template
  // (read-only, never runs: start and the other run verbs are refused with conflict; so are
  // snapshot changes and migration); one transaction with its audit event. A repeat is a
  // no-op. failed_precondition: being deleted, migrating, meant to run or not stopped yet.
  Result<store::VmRecord> make_template(const std::string& name, const std::string& actor);
  // clone: a new VM `name` from the VM or template `source`, on the source's host (a linked
  // clone's disks are overlays of files there; a full clone's copy is made there too).
  // linked: unset means linked for a template, full for a VM; a linked clone needs a
  // template (failed_precondition: its disks must never change again). A VM source must
  // be stopped. The clone gets a new uuid and new MACs, and stays stopped. One transaction
  // writes the record (clone_of.pending), its "vm.clone" task and the audit event; a worker
  // then has the host make the disks (the task shows a full copy's progress) and ends the
  // task; a clone that fails is deleted again. invalid_argument("name"), already_exists.
  // A "vm.clone" task failed because the manager making it stopped (tasks/task_leases.h):
  // its VM, still pending as that clone, is marked for deletion as a failed clone is (the
  // controller undoes what the host made). Anything else is left alone.
  void abandon_clone(const store::TaskRecord& task);
  Result<VmChange> clone(const std::string& source, const std::string& name,
                         std::optional<bool> linked, const std::string& actor);
  // The CD-ROM's medium (vm_cdrom.cc; docs/internals/firmware.md): `image` (a catalog or
  // host image of kind iso) goes in, empty ejects. One transaction writes a "vm.cdrom" task
  // and its audit event; a worker then copies the iso to the VM's host if it lacks it
  // (the image distributor, progress in the task), has the host change the medium (live
  // when the VM runs; request id: the task id) and only then records the medium in the
  // VM's spec, so the spec never names a medium the host refused. A VM not placed yet
  // gets it recorded at once (its define carries it). invalid_argument("image"): not an
  // iso; failed_precondition: being deleted, migrating, or a machine without a CD-ROM.
  Result<VmChange> change_cdrom(const std::string& name, const std::string& image,
                                const std::string& actor);
  // Grows disk `disk` of VM `name` to `size_bytes` (vm_disk_resize.cc; docs/internals/
  // qemu-driver.md, "Disk resize"). One transaction writes a "vm.disk.resize" task and its
  // audit event; a worker has the host grow the disk (live when the VM runs; request id:
  // the task id) and only then records the size in the VM's spec. A VM not placed yet gets
  // the size recorded at once (its define makes the disk that big). Grow only:
  // invalid_argument("size_bytes") below the size the spec records (the host checks the
  // real size too); not_found("disk"); failed_precondition: read-only disk, being deleted,
  // migrating.
  Result<VmChange> resize_disk(const std::string& name, const std::string& disk,
                               uint64_t size_bytes, const std::string& actor);
  // Hot-plug (vm_hotplug.cc; docs/internals/qemu-driver.md, "Hot-plug"), each through
  // change_on_host as a "vm.disk.attach" / "vm.disk.detach" / "vm.nic.attach" /
  // "vm.nic.detach" task. attach_disk: a new disk (blank of size_bytes, or an overlay of a
  // catalog image), never the boot disk; attach_nic: a NIC (its MAC made here when empty,
  // so a retried attach is the same NIC). The host puts it on a free hot-plug slot, live
  // when the VM runs, and the spec then records it with its slot. A VM on no host yet gets
  // the change at once (placed at boot by its define). detach_*: the disk (its data is
  // deleted) or the NIC (by MAC) leaves; a running VM can lose only a device on a slot.
  // invalid_argument (naming "disk.*", "nic.*"); already_exists (disk name, MAC);
  // not_found ("disk", "mac"); failed_precondition: the boot disk, limits, being deleted,
  // migrating.
  Result<VmChange> attach_disk(const std::string& name, const model::DiskSpec& disk,
                               const std::string& actor);
  Result<VmChange> detach_disk(const std::string& name, const std::string& disk,
                               const std::string& actor);
  Result<VmChange> attach_nic(const std::string& name, const model::NicSpec& nic,
                              const std::string& actor);
  Result<VmChange> detach_nic(const std::string& name, const std::string& mac,
                              const std::string& actor);
  void set_image_distributor(ImageDistributor* images) { images_ = images; }
  // The manager's registry of in-process tasks: each snapshot, clone and host change
  // registers while its worker runs, so its lease is renewed (tasks/task_leases.h).
  void set_running_tasks(RunningTasks* running) { running_ = running; }
  // The VMs whose disks are overlays of `template_id`'s (its linked clones), by name.
  static Result<std::vector<std::string>> linked_clones_of(store::Store& tx,
                                                           const std::string& template_id);
  ~VmService();

 private:
  store::Store& store_;
  PlacementService& placement_;
  EventLog& events_;
  ClockPtr clock_;
  std::function<void(const std::string&)> on_change_;
  AgentLookup agents_;
  ImageDistributor* images_ = nullptr;  // not owned; null: hosts must hold the iso already
  RunningTasks* running_ = nullptr;     // not owned; set before serving
  // A VM change its host carries out (vm_host_change.cc): CD-ROM, disk resize, hot-plug.
  // `plan` runs in the one transaction that writes the task (titled `what`) and the audit
  // event (action `kind`): it checks the change and applies it to the document, which is
  // recorded at once when the VM is on no host yet (its define carries it). Otherwise a
  // worker runs `on_host` (request id: the task id), then applies its `record` to the spec
  // current then and ends the task with its message. A VM placed but not defined yet fails
  // the task saying so. Refused while the VM is being deleted or migrates ("`moving` once
  // it has moved").
  struct HostOutcome {
    std::function<void(model::VmSpec&)> record;
    std::string message;
  };
  struct HostChange {
    explicit HostChange(InProcessTaskKind k) : kind(k) {}
    InProcessTaskKind kind;  // its task, run by run_host_change's worker
    std::string what, moving, running;
    // Checks the change against the VM (and its host: vm.host_id) and writes it in `doc`.
    std::function<Status(store::Store& tx, const store::VmRecord& vm, VmDocument& doc)> plan;
    std::function<Result<HostOutcome>(AgentClient& agent, const store::VmRecord& vm,
                                      TaskTracker& tasks, const std::string& task_id)>
        on_host;
  };
  Result<VmChange> change_on_host(const std::string& name, HostChange change,
                                  const std::string& actor);
  void run_host_change(std::string host_id, std::string vm_id, std::string task_id,
                       std::shared_ptr<const HostChange> change);
  HaAdmission ha_admission_ = HaAdmission::enforce;  // set before serving; read only after
  bool migration_tls_ = true;                        // set before serving; read only after
  // Marks a clone VM for deletion (clone_of.pending cleared); with `only_pending`, only
  // while its disks are still being made.
  void drop_clone(const std::string& vm_id, bool only_pending);
  void run_clone(std::string host_id, std::string source, std::string vm_id, bool linked,
                 std::string task_id);
  // Snapshot operations and clones in flight (joined by the destructor).
  void run_snapshot(std::string host_id, std::string vm, SnapshotOp op, std::string snap,
                    std::string task_id);
  TaskThreads workers_;  // each task's work; joined before the service goes
};

}  // namespace strata::manager
