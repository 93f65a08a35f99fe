// Must not compile: a worker holding a lease with a controller-driven kind, which the
// stale-task sweep never fails (task_kinds_compile.cmake).
#include "strata/manager/tasks/running_tasks.h"

namespace strata::manager {
void hold_lease(RunningTasks* running) {
  auto lease = RunningTasks::enter(running, TaskKind::vm_start, "t1");
  (void)lease;
}
}  // namespace strata::manager
