#include "strata/wire/runtime.h"

#include <absl/synchronization/mutex.h>

namespace strata::wire {

void configure_grpc_runtime() {
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  absl::EnableMutexInvariantDebugging(false);
}

}  // namespace strata::wire
