// Per-host allocation bookkeeping (see allocation_cache.h).
#include "strata/manager/controllers/allocation_cache.h"

#include <algorithm>
#include <limits>

namespace strata::manager {

void AllocationCache::add_to_host(const VmAllocation& a) {
  HostTotals& t = hosts_[a.host_id];
  t.vcpus += a.vcpus;
  t.memory_mib += a.memory_mib;
  t.vms += 1;
  if (!a.anti_affinity_group.empty()) t.groups[a.anti_affinity_group] += 1;
  if (!a.affinity_group.empty()) t.together[a.affinity_group] += 1;
}

void AllocationCache::remove_from_host(const VmAllocation& a) {
  auto it = hosts_.find(a.host_id);
  if (it == hosts_.end()) return;
  HostTotals& t = it->second;
  t.vcpus -= std::min<uint64_t>(t.vcpus, a.vcpus);
  t.memory_mib -= std::min(t.memory_mib, a.memory_mib);
  t.vms -= std::min<uint32_t>(t.vms, 1);
  if (!a.anti_affinity_group.empty()) {
    auto g = t.groups.find(a.anti_affinity_group);
    if (g != t.groups.end() && --g->second == 0) t.groups.erase(g);
  }
  if (!a.affinity_group.empty()) {
    auto g = t.together.find(a.affinity_group);
    if (g != t.together.end() && --g->second == 0) t.together.erase(g);
  }
  if (t.vms == 0) hosts_.erase(it);
}

void AllocationCache::set(const std::string& vm_id, VmAllocation allocation) {
  auto it = vms_.find(vm_id);
  if (it != vms_.end()) {
    remove_from_host(it->second);
    it->second = std::move(allocation);
    add_to_host(it->second);
    return;
  }
  add_to_host(allocation);
  vms_.emplace(vm_id, std::move(allocation));
}

void AllocationCache::remove(const std::string& vm_id) {
  auto it = vms_.find(vm_id);
  if (it == vms_.end()) return;
  remove_from_host(it->second);
  vms_.erase(it);
}

void AllocationCache::clear() {
  vms_.clear();
  hosts_.clear();
}

void AllocationCache::fill(sched::HostInfo& host,
                           const std::vector<std::string>& exclude_vm_ids) const {
  auto it = hosts_.find(host.id);
  if (it == hosts_.end()) return;
  const HostTotals& t = it->second;
  uint64_t vcpus = t.vcpus;
  uint64_t memory = t.memory_mib;
  // Per group, how many of its VMs on this host are left out.
  std::map<std::string, uint32_t> skip_group, skip_together;
  for (const std::string& vm_id : exclude_vm_ids) {
    for (const std::string& id : {vm_id, migration_key(vm_id)}) {
      if (const VmAllocation* ex = vm(id); ex && ex->host_id == host.id) {
        vcpus -= std::min<uint64_t>(vcpus, ex->vcpus);
        memory -= std::min(memory, ex->memory_mib);
        if (!ex->anti_affinity_group.empty()) ++skip_group[ex->anti_affinity_group];
        if (!ex->affinity_group.empty()) ++skip_together[ex->affinity_group];
      }
    }
  }
  auto skipped = [](const std::map<std::string, uint32_t>& m, const std::string& g) {
    auto s = m.find(g);
    return s == m.end() ? 0u : s->second;
  };
  constexpr uint64_t kMaxVcpus = std::numeric_limits<uint32_t>::max();
  host.allocated_vcpus += static_cast<uint32_t>(std::min(vcpus, kMaxVcpus));
  host.allocated_memory_mib += memory;
  for (const auto& [group, count] : t.groups) {
    // An excluded VM's group stays when another VM of the group is on the host.
    if (count <= skipped(skip_group, group)) continue;
    host.anti_affinity_groups.push_back(group);
  }
  for (const auto& [group, count] : t.together) {
    if (count <= skipped(skip_together, group)) continue;
    host.affinity_groups.push_back(group);
  }
}

const AllocationCache::HostTotals* AllocationCache::host(const std::string& host_id) const {
  auto it = hosts_.find(host_id);
  return it == hosts_.end() ? nullptr : &it->second;
}

const VmAllocation* AllocationCache::vm(const std::string& vm_id) const {
  auto it = vms_.find(vm_id);
  return it == vms_.end() ? nullptr : &it->second;
}

}  // namespace strata::manager
