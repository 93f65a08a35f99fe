// Host networks as the manager sees them: the Linux bridges in each host's inventory (and
// which of them can put a NIC on a VLAN), and the bridges a VM's NICs join. The scheduler
// matches the two (sched::network_token; its "network" filter), so a VM is placed, moved
// or restarted only where its NICs can be attached. Pure functions: no I/O.
#pragma once

#include <string>
#include <vector>

#include "strata/model/vm_spec.h"

namespace strata::manager {

// The network tokens a host offers, from its inventory JSON: "bridge:NAME" for every
// bridge, and "bridge-vlan:NAME" for each whose kernel can filter VLANs (the agent reports
// `vlan_filtering_supported`; an agent that does not is taken to be unable, since it
// would not put the NIC on its VLAN). Malformed entries are skipped.
std::vector<std::string> host_networks(const std::string& inventory_json);

// The tokens a VM's bridge NICs need (each once); user-mode NICs need none.
std::vector<std::string> nic_networks(const std::vector<model::NicSpec>& nics);

}  // namespace strata::manager
