// What the placed VMs hold on each host (vCPUs, memory, anti-affinity groups), kept in
// memory so a placement decision costs O(hosts), not O(VMs): PlacementService fills it
// once from the store at start and updates it whenever a VM gets, changes or loses a host.
// Pure bookkeeping (no I/O, not thread-safe: the owner locks).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <unordered_map>
#include <vector>

#include "strata/sched/snapshot.h"

namespace strata::manager {

// One VM's share of one host.
struct VmAllocation {
  std::string host_id;
  uint32_t vcpus = 0;
  uint64_t memory_mib = 0;
  std::string anti_affinity_group;  // empty: none
  std::string affinity_group;       // keep-together group; empty: none
};

class AllocationCache {
 public:
  // The entry that holds a migrating VM's share of its target host until the migration
  // ends (the VM's own entry stays on the source): nothing else takes that room meanwhile.
  static std::string migration_key(const std::string& vm_id) { return vm_id + "@migration"; }
  // The entry that holds a VM's share of the host chosen for it while its record is being
  // written (PlacementService::place_and_write), numbered per placement.
  static std::string hold_key(uint64_t n) { return "@hold:" + std::to_string(n); }

  struct HostTotals {
    uint64_t vcpus = 0;
    uint64_t memory_mib = 0;
    std::map<std::string, uint32_t> groups;  // group -> number of its VMs on the host
    std::map<std::string, uint32_t> together;  // keep-together group -> its VMs here
    uint32_t vms = 0;
  };

  // Adds a VM or replaces what it held before (moved to another host, resized).
  void set(const std::string& vm_id, VmAllocation allocation);
  // Forgets a VM (deleted, or no longer placed). Unknown ids are ignored.
  void remove(const std::string& vm_id);
  void clear();

  // Adds what the host's VMs hold to `host` (allocated_vcpus/memory, anti-affinity and
  // keep-together groups), leaving out `exclude_vm_ids` and their migration reservations
  // (VMs being re-placed do not compete with themselves; a group they leave stays on the
  // host only through its other VMs there).
  void fill(sched::HostInfo& host, const std::vector<std::string>& exclude_vm_ids) const;
  void fill(sched::HostInfo& host, const std::string& exclude_vm_id = {}) const {
    fill(host, exclude_vm_id.empty() ? std::vector<std::string>{}
                                     : std::vector<std::string>{exclude_vm_id});
  }

  const HostTotals* host(const std::string& host_id) const;
  const VmAllocation* vm(const std::string& vm_id) const;
  size_t vm_count() const { return vms_.size(); }
  // Every host holding at least one VM, by host id.
  const std::unordered_map<std::string, HostTotals>& hosts() const { return hosts_; }

 private:
  void add_to_host(const VmAllocation& a);
  void remove_from_host(const VmAllocation& a);

  std::unordered_map<std::string, VmAllocation> vms_;
  std::unordered_map<std::string, HostTotals> hosts_;
};

}  // namespace strata::manager
