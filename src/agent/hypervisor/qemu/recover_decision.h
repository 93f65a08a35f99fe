// What QemuHypervisor::recover() makes of one VM found in the state folder after an agent
// restart: a pure decision over the facts it gathered, unit-tested for every combination.
// The rule it encodes: only the QEMU process tells whether a VM is alive. A QMP socket that
// cannot be connected (another client holds it, QEMU is slow under load) says nothing
// about the guest: such a VM stays active and QMP is retried, it is never declared ended.
#pragma once

#include <optional>

#include "strata/model/vm_spec.h"

namespace strata::agent::qemu {

struct RecoverFacts {
  model::VmState recorded = model::VmState::defined;  // state.json
  bool qemu_alive = false;     // pid alive AND its command line carries the VM's uuid
  bool qmp_connected = false;  // the greeting and qmp_capabilities went through
  std::optional<model::VmState> qmp_state;  // from query-status, when it answered
};

enum class RecoverAction {
  keep,          // not active: nothing was running, keep the recorded state
  reattach,      // live QEMU, QMP connected: adopt it with `state`
  attach_later,  // live QEMU, QMP not connected: keep `state` (active), retry QMP
  finalize,      // QEMU ended while the agent was down: stopped/crashed from exit.json
};

struct RecoverDecision {
  RecoverAction action = RecoverAction::keep;
  model::VmState state = model::VmState::defined;
};

RecoverDecision decide_recover(const RecoverFacts& facts);

// QEMU's query-status "status" as a VmState.
model::VmState state_from_query_status(const std::string& status);

}  // namespace strata::agent::qemu
