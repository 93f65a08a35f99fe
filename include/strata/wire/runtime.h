// Process-wide settings of the gRPC runtime, made once at the start of `stratad` and
// `strata-agent` (before any channel or server exists).
#pragma once

namespace strata::wire {

// Turns off Abseil's mutex deadlock detection, which gRPC's locks go through. Debian builds
// Abseil without NDEBUG, so detection is on: every lock and unlock of gRPC's mutexes looked
// the mutex up in a process-wide lock graph (GraphCycles::GetId). perf at 1 000 simulated
// hosts: about 6 % of the manager's CPU and a fifth of the simulator's. Tests keep it on.
void configure_grpc_runtime();

}  // namespace strata::wire
