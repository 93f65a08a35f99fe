// What one VM asks of a host: resources plus placement constraints. Built by the manager
// from the VM resource; validated by the scheduler (validate_request).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "strata/common/error.h"

namespace strata::sched {

enum class AcceleratorRequirement : uint8_t { any, kvm, tcg };

std::string_view to_string(AcceleratorRequirement a);

struct PlacementRequest {
  uint32_t vcpus = 1;                                                // > 0
  uint64_t memory_mib = 256;                                         // > 0
  AcceleratorRequirement accelerator = AcceleratorRequirement::any;  // kvm/tcg: host must equal it
  std::string arch;                                                  // empty: any architecture
  std::map<std::string, std::string> node_selector;  // every pair must equal a host label
  std::string anti_affinity_group;  // empty: none; else no two VMs of the group on one host
  // Keep together: empty, none; else the VM goes where the group's VMs already run (a host
  // that is up holding it), or anywhere when none of them runs on a host that is up (the
  // first of the group, or all of them leaving a failed or drained host).
  std::string affinity_group;
  // Keep off: a host carrying every one of these labels is not chosen (empty: none).
  std::map<std::string, std::string> avoid_selector;
  std::vector<std::string> datastores;  // UUIDs the host must mount (the VM's disks are there)
  // Network tokens (network_token()) the host must offer: the VM's bridge NICs.
  std::vector<std::string> networks;
  // Empty: any host; else a CPU the host must offer (HostInfo::cpu_offers): the model a
  // running VM's QEMU uses, when it is to move live ("Westmere-v1", or "cpu-sig:..." for a
  // VM with the host-dependent "host"/"max" CPU).
  std::string cpu_model;
  std::string pinned_host;          // empty: any host; else only this host id is considered
};

// invalid_argument (with the field) for a request no host could ever satisfy by shape.
Status validate_request(const PlacementRequest& request);

}  // namespace strata::sched
