// Must not compile: a worker naming its kind by a string that no table entry vouches for
// (task_kinds_compile.cmake).
#include "strata/manager/tasks/running_tasks.h"

namespace strata::manager {
void hold_lease(RunningTasks* running) {
  auto lease = RunningTasks::enter(running, "vm.resize", "t1");
  (void)lease;
}
}  // namespace strata::manager
