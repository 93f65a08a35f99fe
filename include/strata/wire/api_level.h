// The agent API's level: which version of the manager <-> agent contract (api/proto/
// strata/agent/v1) an agent speaks, and the policy for neighbouring versions
// (docs/internals/versions.md).
//
// The level counts contract changes a peer must know about: an RPC, a field with meaning
// the other side must not ignore. Protobuf lets both sides ignore fields they do not know,
// so mixed levels still talk; the level tells the manager what it must not ask of an
// older agent (a feature's required level), and which agents it refuses outright.
//
// Policy: a manager works with agents of its own level and the one before (a rolling
// upgrade upgrades the manager first, then the agents one host at a time while their VMs
// run) and with an agent one level ahead (a host upgraded before its manager). An agent
// outside that window is refused at enrollment; one that is upgraded or downgraded out of
// it afterwards is reported (an event, the host's `agent_api_level`), never disconnected:
// its VMs keep running.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

#include "strata/common/error.h"
#include "strata/model/vm_spec.h"

namespace strata::wire {

// This build's level. History (bump it, add a line, and give new features a level):
//   1  the contract before levels: an agent that reports no level (0) speaks level 1
//   2  post-copy live migration (PrepareMigration.postcopy, MigrationPolicy.postcopy,
//      SwitchoverMigration); the level in HealthResponse and HostInventory
inline constexpr uint32_t kApiLevel = 2;
inline constexpr uint32_t kOldestApiLevel = 1;

// The level an agent speaks, from what it reports (0: it predates levels: 1).
constexpr uint32_t effective_api_level(uint32_t reported) {
  return reported == 0 ? kOldestApiLevel : reported;
}
// What an agent serving `level` reports (HealthResponse.api_level, the inventory's
// `agent.api_level`): level 1 predates the field, so it reports nothing (0). The inverse
// of effective_api_level.
constexpr uint32_t reported_api_level(uint32_t level) {
  return level > kOldestApiLevel ? level : 0;
}

// What the manager asks of an agent that not every level can do.
enum class AgentFeature {
  postcopy_migration,  // level 2
};
uint32_t required_api_level(AgentFeature feature);
std::string_view to_string(AgentFeature feature);
constexpr bool supports(uint32_t agent_level, uint32_t required) {
  return effective_api_level(agent_level) >= required;
}
inline bool supports(uint32_t agent_level, AgentFeature feature) {
  return supports(agent_level, required_api_level(feature));
}

// The window a manager of `manager_level` works with: one level either side.
constexpr bool api_level_in_window(uint32_t agent_level, uint32_t manager_level = kApiLevel) {
  const uint32_t a = effective_api_level(agent_level);
  return a + 1 >= manager_level && a <= manager_level + 1;
}
// failed_precondition naming `field` when the agent's level is outside the window, with
// what to upgrade; ok otherwise.
Status check_agent_api_level(uint32_t agent_level, std::string_view field,
                             uint32_t manager_level = kApiLevel);

// The agent's level from a host's inventory document (HostInventory.inventory_json, as
// the manager stores it): `agent.api_level`; an inventory without it is level 1. Null
// when the document is not JSON or the level is not a positive integer.
std::optional<uint32_t> inventory_api_level(std::string_view inventory_json);

// The newest VM hardware profile (the QEMU driver's device layout version) the agent can
// build, from its inventory: `agent.hardware_profile`. Devices are gated by it rather than
// by the API level: a VM asking for a device of profile N goes only to agents reporting
// N or later. Agents that predate the field build up to kHardwareProfileUnreported.
inline constexpr int kHardwareProfileUnreported = 2;
// The profile a spec's devices need, and why: 4 with a disk or NIC on a hot-plug slot
// (field "hotplug_slot"), 3 with a watchdog ("watchdog"), else 2 (no field).
struct HardwareNeed {
  int profile = kHardwareProfileUnreported;
  std::string_view what;   // "the watchdog", "hot-plugged devices"
  std::string_view field;  // the spec field that needs it
};
HardwareNeed required_hardware(const model::VmSpec& spec);
// Null when the document is not JSON or the value is not a positive integer.
std::optional<int> inventory_hardware_profile(std::string_view inventory_json);

}  // namespace strata::wire
