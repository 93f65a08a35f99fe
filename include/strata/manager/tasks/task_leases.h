// Leases of in-process tasks (running_tasks.h): this manager renews the `updated_ms` of the
// tasks it runs, and a sweep fails every in-process task that nobody renewed for a lease
// (its manager died mid-operation), so no task shows an operation that is not happening.
// The sweep's only rule is the lease's age: several managers may share one PostgreSQL store
// and a live peer renews its own tasks, so a peer's task never looks stale.
// docs/internals/manager.md, "In-process tasks".
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "strata/common/clock.h"
#include "strata/common/error.h"
#include "strata/common/periodic.h"
#include "strata/manager/tasks/running_tasks.h"
#include "strata/store/store.h"

namespace strata::manager {

// The message a swept task ends with.
inline constexpr const char* kStaleTaskMessage = "the manager running this task stopped";

struct TaskLeaseConfig {
  // How often this manager renews its tasks and sweeps (--task-renew-interval).
  std::chrono::milliseconds renew_interval = std::chrono::seconds(60);
  // A task not renewed for this long is failed (--task-lease). Keep it several renewals
  // long: a renewal may be late (a slow store) and managers' wall clocks may differ a bit.
  std::chrono::milliseconds lease = std::chrono::minutes(5);
};

// The non-terminal tasks of an in-process kind whose updated_ms is before `now_ms - lease`.
Result<std::vector<store::TaskRecord>> find_stale_tasks(store::Store& store, int64_t now_ms,
                                                        std::chrono::milliseconds lease);
// Fails each task as it was read (kStaleTaskMessage), compare-and-swap on its
// resource_version: a task renewed or changed since it was read is left as it is. Returns
// the tasks it failed.
std::vector<store::TaskRecord> fail_stale_tasks(store::Store& store,
                                                const std::vector<store::TaskRecord>& stale);

class TaskLeases {
 public:
  // `running`: this manager's registry. `on_failed` (may be empty) is told of each task the
  // sweep failed, to undo what the dead operation left behind where that is safe.
  TaskLeases(store::Store& store, ClockPtr clock, RunningTasks& running, TaskLeaseConfig config,
             std::function<void(const store::TaskRecord&)> on_failed = {});
  ~TaskLeases();
  TaskLeases(const TaskLeases&) = delete;
  TaskLeases& operator=(const TaskLeases&) = delete;

  // Touches updated_ms of each registered task that is not terminal (one store write
  // each; a conflict means the task was written meanwhile, which renews it too). Returns
  // how many it renewed.
  int renew();
  // find_stale_tasks + fail_stale_tasks, leaving this manager's registered tasks alone
  // (even when a renewal failed: they are alive). Returns the tasks it failed.
  Result<std::vector<store::TaskRecord>> sweep();

  // A thread that renews then sweeps every renew_interval (the first pass at once).
  void start();
  void stop();

 private:
  int64_t now_ms() const;

  store::Store& store_;
  ClockPtr clock_;
  RunningTasks& running_;
  TaskLeaseConfig config_;
  std::function<void(const store::TaskRecord&)> on_failed_;

  // Declared last: stopped (joined) before the members its passes use are destroyed.
  PeriodicThread thread_;
};

}  // namespace strata::manager
