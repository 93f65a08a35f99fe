// Backups in the manager (docs/internals/backup.md): the repository is a folder this
// manager is configured with (stratad --backup-repo; mounted at the same path on every
// host). Creating a backup and restoring one are tasks run by the VM's host agent (it
// reads and writes the disks); listing, showing, verifying and deleting read the
// repository here. The repository's manifests are the backups' records: they survive the
// manager's database and a repository alone is enough to restore.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "strata/backup/repository.h"
#include "strata/backup/sync.h"
#include "strata/common/clock.h"
#include "strata/common/error.h"
#include "strata/common/task_threads.h"
#include "strata/manager/agents/agent_client.h"
#include "strata/manager/controllers/vm_document.h"
#include "strata/manager/events/event_log.h"
#include "strata/manager/tasks/running_tasks.h"
#include "strata/manager/vms/backup_retention.h"
#include "strata/store/store.h"

namespace strata::manager {

struct BackupTask {
  std::string backup_id;
  std::string vm;
  store::TaskRecord task;
};

// What a prune decided (and, unless a dry run, did): per backup the VM, and for a kept
// one the rule that kept it.
struct PruneItem {
  std::string vm;
  RetentionDecision decision;
};
struct PruneResult {
  bool dry_run = false;
  bool sync_target = false;      // the sync target's backups, not the repository's
  std::vector<std::string> vms;  // the VMs whose backups were considered, by name
  std::vector<PruneItem> keep;
  std::vector<PruneItem> prune;  // deleted unless dry_run
  backup::GcReport gc;           // what the garbage collection after the deletions removed
};

class BackupService {
 public:
  using AgentLookup = std::function<AgentClientPtr(const std::string& host_id)>;
  // How a restore into a new VM creates it (stopped) and, when the restore fails, removes
  // it again: VmService::create(doc, false, actor) and VmService::remove in stratad.
  // Returns the new VM's record and its create task.
  using VmCreate = std::function<Result<std::pair<store::VmRecord, store::TaskRecord>>(
      VmDocument doc, const std::string& actor)>;
  using VmRemove = std::function<void(const std::string& name, const std::string& actor)>;
  // `repo`: the configured repository (empty: backups are off and every call answers
  // failed_precondition).
  BackupService(store::Store& store, EventLog& events, ClockPtr clock, AgentLookup agents,
                std::optional<backup::Repository> repo);
  ~BackupService();  // joins running workers
  BackupService(const BackupService&) = delete;
  BackupService& operator=(const BackupService&) = delete;

  // The off-site copy's repository (stratad --backup-sync-repo), never a path from a
  // request: sync() copies into it.
  void set_sync_target(std::optional<backup::Repository> target) {
    sync_target_ = std::move(target);
  }

  // The manager's registry of in-process tasks: each task's worker registers while it
  // runs, so its lease is renewed (tasks/task_leases.h).
  void set_running_tasks(RunningTasks* running) { running_ = running; }

  void set_vm_lifecycle(VmCreate create, VmRemove remove) {
    vm_create_ = std::move(create);
    vm_remove_ = std::move(remove);
  }

  // A "backup.create" task: the VM's host backs it up (full when asked, or when no
  // incremental is possible: the task's result says why). The VM must be placed. Once the
  // backup exists its manifest records the VM's spec as the store held it at the request
  // (what restore_new creates).
  Result<BackupTask> create(const std::string& vm, bool full, const std::string& actor);
  // Complete backups, oldest first (`vm` filters when not empty).
  Result<std::vector<backup::Manifest>> list(const std::string& vm);
  Result<backup::Manifest> show(const std::string& id);
  // A "backup.verify" task: every chunk rehashed here; its result lists the problems.
  Result<BackupTask> verify(const std::string& id, const std::string& actor);
  // A "backup.restore" task: the disks of `vm` (a stopped VM: its desired state is not
  // running) replaced by the backup's, by the VM's host.
  Result<BackupTask> restore(const std::string& id, const std::string& vm,
                             const std::string& actor);
  // A "backup.restore" task into a new VM `new_vm`: the backed-up VM's spec (the
  // manifest's; for a backup made before manifests recorded it, the source VM's in the
  // store) under the new name with a new uuid and new MACs, created stopped where the
  // scheduler places it; once its host has defined it, its disks are replaced by the
  // backup's. A restore that fails removes the new VM again. failed_precondition: no spec
  // (an older backup of a VM that is gone), a backed-up disk the spec lacks;
  // already_exists (field new_vm): the name is taken. `datastore`, when given, is where
  // every backed-up disk goes instead of where it was (as `qmrestore --storage`): a datastore's
  // name, or empty for the host's local image store; one that no host mounts is refused
  // naming the field "datastore".
  Result<BackupTask> restore_new(const std::string& id, const std::string& new_vm,
                                 const std::string& actor,
                                 const std::optional<std::string>& datastore = std::nullopt);
  // A "backup.restore" into a new VM failed because the manager running it stopped
  // (tasks/task_leases.h): the new VM (named with its id in the task's result from the
  // start) is removed, as a restore that fails removes it. Anything else is left alone.
  void abandon_restore(const store::TaskRecord& task);
  // Deletes the backup and garbage-collects the chunks no other backup names (conflict
  // while a backup runs). Synchronous.
  Result<backup::GcReport> remove(const std::string& id, const std::string& actor);

  // Applies `policy` to each VM's complete backups (backup_retention.h): the VMs are named
  // (a VM's backups outlive it: the name need not be a VM of the store) or, when `vms` is
  // empty, those of the store whose labels match `selector` (at least one pair). Unless
  // `dry_run`, the backups to prune are deleted under one exclusive repository lock (an
  // audit event "backup.delete" each, conflict while a backup runs), then one gc; one
  // "backup.prune" event sums it up.
  // `on_sync_target`: the same over the sync target's backups instead (the off-site copy's
  // own retention, as a prune job on Proxmox Backup Server's second datastore; its events
  // say so); failed_precondition when none is configured, conflict while a sync holds it.
  Result<PruneResult> prune(const std::vector<std::string>& vms, const store::Labels& selector,
                            const RetentionPolicy& policy, bool dry_run, const std::string& actor,
                            bool on_sync_target = false);
  // A "backup.sync" task: every complete backup the sync target lacks copied into it
  // (backup/sync.h: chunks it lacks, indexes, manifest last), with progress (backups done,
  // bytes copied); `verify` rehashes what was copied; `remove_vanished` then removes the
  // target's backups the repository no longer has (SyncOptions::remove_vanished) and gcs
  // the target. failed_precondition when no sync target is configured; conflict while
  // another sync runs.
  Result<store::TaskRecord> sync(bool verify, bool remove_vanished, const std::string& actor);
  bool sync_configured() const { return repo_ && sync_target_; }

  // Names of the store's VMs whose labels match `selector` (every pair), by name; VMs being
  // deleted are left out.
  Result<std::vector<std::string>> select_vms(const store::Labels& selector);

 private:
  Status check_configured() const;
  // The task (with `result` from the start when given) and its audit event.
  Result<store::TaskRecord> record(InProcessTaskKind kind, const std::string& target,
                                   const std::string& detail, const std::string& actor,
                                   const nlohmann::json& result = nlohmann::json::object());
  std::string new_id(const std::string& vm) const;
  // The encrypted repository's key for the agent's request ("" for a plain repository).
  std::string_view repo_key() const {
    return repo_ && repo_->key() ? repo_->key()->raw() : std::string_view();
  }

  store::Store& store_;
  EventLog& events_;
  ClockPtr clock_;
  AgentLookup agents_;
  VmCreate vm_create_;
  VmRemove vm_remove_;
  RunningTasks* running_ = nullptr;  // not owned; set before serving
  std::optional<backup::Repository> repo_;
  std::optional<backup::Repository> sync_target_;
  std::atomic<bool> sync_running_{false};
  std::atomic<bool> stopping_{false};  // set as the service goes: a running sync stops
  TaskThreads workers_;  // each task's work; joined before the service goes
};

}  // namespace strata::manager
