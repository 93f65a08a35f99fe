// Compiles: a worker holds its lease with an in-process kind (task_kinds_compile.cmake).
#include "strata/manager/tasks/running_tasks.h"

namespace strata::manager {
void hold_lease(RunningTasks* running) {
  auto lease = RunningTasks::enter(running, TaskKind::backup_create, "t1");
  (void)lease;
}
}  // namespace strata::manager
