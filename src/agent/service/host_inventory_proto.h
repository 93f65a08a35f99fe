// The agent's inventory as the gRPC and enrollment payloads carry it, shared by `serve`
// (the probed machine) and `sim` (simulated hosts, sim_fleet.h): whatever produced the
// HostInventory, the manager receives the same fields.
#pragma once

#include <nlohmann/json.hpp>

#include "strata/agent/datastore.h"
#include "strata/agent/inventory.h"
#include "strata/agent/v1/agent.pb.h"
#include "strata/wire/api_level.h"

namespace strata::agent::cli {

// `datastores` may be null (no shared storage). `api_level` is the agent API level served
// (strata/wire/api_level.h): the JSON's agent.api_level, left out at level 1, which
// predates it.
v1::HostInventory inventory_to_proto(const HostInventory& inv, const Datastores* datastores,
                                     uint32_t api_level = wire::kApiLevel);

// What enrollment sends as the host's inventory: the inventory JSON plus the fields the
// manager's scheduler reads first (accelerator, cpu_threads, memory_total_bytes).
nlohmann::json enrollment_inventory(const v1::HostInventory& inv);

}  // namespace strata::agent::cli
