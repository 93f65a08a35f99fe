// The reconcile loop's decisions as pure functions (no store, no agent, no clock), so they
// are unit-tested case by case: which agent call moves a VM from what the agent reports
// towards what the store wants, how long to wait before retrying, and whether a VM an
// agent already runs is adopted by a (restarted) manager. vm_reconcile.cc does the I/O.
#pragma once

#include <chrono>
#include <optional>
#include <string>

#include "strata/manager/controllers/vm_document.h"
#include "strata/store/records.h"

namespace strata::manager {

// Whether `host`'s agent can build the devices `spec` asks for (its inventory's hardware
// profile, strata/wire/api_level.h): failed_precondition naming the device and the fix
// otherwise. An agent that predates a device would ignore it, so the manager asks first.
Status check_host_hardware(const model::VmSpec& spec, const store::HostRecord& host);

// The one agent call a reconcile pass makes for an existing VM (after define).
enum class VmAction { none, start, pause, resume, reboot, shutdown, force_off };
std::string_view to_string(VmAction a);

// Agent states in which the guest is (or is becoming) active.
bool is_active_state(const std::string& agent_state);

// desired_state: the store's "running"|"stopped"; status: the last written status (its
// applied_generation says whether this intent's action already happened); agent_state:
// what the agent reports now ("defined", "running", "paused", "stopped", "crashed", ...).
// A VM that stopped by itself after being started for this intent stays stopped (no
// restart policy): only a new generation starts it again.
VmAction decide_vm_action(const std::string& desired_state, const VmDocument& doc,
                          const VmStatusDoc& status, const std::string& agent_state);

// Delay before retry number `attempt` (1-based) of a failed pass: base * 2^(attempt-1),
// capped at max (and at 32 x base).
std::chrono::milliseconds retry_delay(int attempt, std::chrono::milliseconds base,
                                      std::chrono::milliseconds max);

// A VM found on a host's agent (its name and the strata.vm-id label, if any) against the
// store record looked up by that label (else by name).
enum class Adoption {
  ignore,  // not ours: no record, or the record has another name
  adopt,   // ours and unplaced in the store: record the host, then reconcile
  known,   // ours and already placed: just reconcile
};
Adoption decide_adoption(const std::optional<store::VmRecord>& record,
                         const std::string& agent_vm_name);

// Whether the guest facts a reconcile pass read differ from the stored ones in what they
// say (the time they were read aside): the event's message ("host name web-1, OS Debian
// ..., addresses 10.0.2.15/24"; "gone" when they are no more), or none when unchanged. The
// web console's VM page reloads on that event (vm.guest) instead of polling.
std::optional<std::string> guest_facts_change(const std::optional<model::GuestFacts>& before,
                                              const std::optional<model::GuestFacts>& after);

// A VM as its host's listing (ListVms) shows it, for the periodic resync.
struct AgentVmView {
  std::string state;        // the agent's state name ("running", "stopped", ...)
  std::string vm_id_label;  // its strata.vm-id label ("" when it has none)
  std::optional<model::GuestFacts> guest;
  std::string cpu_model;
};
// Whether the periodic resync may leave a VM alone: its host's copy is the record's (by
// label), no intent is pending (delete, migration, clone, a generation not applied, an
// action decide_vm_action would take), and the status already says what the host says
// (state, no error, guest facts apart from their read time, CPU model). Anything else goes
// to a full reconcile pass, which is also what every VM gets once per manager process.
bool vm_converged(const store::VmRecord& vm, const VmDocument& doc, const VmStatusDoc& status,
                  const AgentVmView& agent);

}  // namespace strata::manager
