// The CPU side of a host's inventory as the manager reads it (the agent's `cpu_models`
// section, see agent/cpu_models.h, and `cpu`, `qemu.version`, `accelerator`): the input of
// the cluster CPU baseline and of the scheduler's CPU filter. Pure: no I/O.
#pragma once

#include <string>

#include "strata/sched/cpu_baseline.h"

namespace strata::manager {

// Parses what it can (malformed entries are skipped; a missing section gives probed=false).
sched::HostCpu host_cpu(const std::string& host_name, const std::string& inventory_json);

// The scheduler's token for a host-dependent CPU ("host"/"max") started on a host with
// this signature: "cpu-sig:<sha256 prefix>".
std::string cpu_signature_token(const std::string& signature);

}  // namespace strata::manager
