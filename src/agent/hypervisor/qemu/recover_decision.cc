// decide_recover (see recover_decision.h).
#include "recover_decision.h"

#include "qemu_hypervisor.h"

namespace strata::agent::qemu {

using model::VmState;

RecoverDecision decide_recover(const RecoverFacts& f) {
  if (!is_active(f.recorded)) return {RecoverAction::keep, f.recorded};
  if (!f.qemu_alive) return {RecoverAction::finalize, f.recorded};
  // An interrupted start() whose QEMU lives: it runs (or is paused, as query-status says).
  VmState fallback = f.recorded == VmState::starting ? VmState::running : f.recorded;
  if (f.qmp_connected) return {RecoverAction::reattach, f.qmp_state.value_or(fallback)};
  return {RecoverAction::attach_later, f.recorded};
}

VmState state_from_query_status(const std::string& s) {
  if (s == "running") return VmState::running;
  if (s == "shutdown") return VmState::shutting_down;
  if (s == "guest-panicked" || s == "internal-error" || s == "io-error") return VmState::crashed;
  return VmState::paused;  // paused, suspended, prelaunch, debug, ...
}

}  // namespace strata::agent::qemu
