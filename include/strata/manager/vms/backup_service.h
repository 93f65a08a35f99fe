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
#include <string>
#include <thread>
#include <vector>

#include "strata/backup/repository.h"
#include "strata/common/clock.h"
#include "strata/common/error.h"
#include "strata/common/task_threads.h"
#include "strata/manager/agents/agent_client.h"
#include "strata/manager/events/event_log.h"
#include "strata/store/store.h"

namespace strata::manager {

struct BackupTask {
  std::string backup_id;
  std::string vm;
  store::TaskRecord task;
};

class BackupService {
 public:
  using AgentLookup = std::function<AgentClientPtr(const std::string& host_id)>;
  // `repo`: the configured repository (empty: backups are off and every call answers
  // failed_precondition).
  BackupService(store::Store& store, EventLog& events, ClockPtr clock, AgentLookup agents,
                std::optional<backup::Repository> repo);
  ~BackupService();  // joins running workers
  BackupService(const BackupService&) = delete;
  BackupService& operator=(const BackupService&) = delete;

  // A "backup.create" task: the VM's host backs it up (full when asked, or when no
  // incremental is possible: the task's result says why). The VM must be placed.
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
  // Deletes the backup and garbage-collects the chunks no other backup names (conflict
  // while a backup runs). Synchronous.
  Result<backup::GcReport> remove(const std::string& id, const std::string& actor);

 private:
  Status check_configured() const;
  Result<store::TaskRecord> record(const std::string& kind, const std::string& target,
                                   const std::string& detail, const std::string& actor);
  std::string new_id(const std::string& vm) const;

  store::Store& store_;
  EventLog& events_;
  ClockPtr clock_;
  AgentLookup agents_;
  std::optional<backup::Repository> repo_;
  TaskThreads workers_;  // each task's work; joined before the service goes
};

}  // namespace strata::manager
