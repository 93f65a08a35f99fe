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

void AllocationCache::fill(sched::HostInfo& host, const std::string& exclude_vm_id) const {
  auto it = hosts_.find(host.id);
  if (it == hosts_.end()) return;
  const HostTotals& t = it->second;
  uint64_t vcpus = t.vcpus;
  uint64_t memory = t.memory_mib;
  std::string skip_group, skip_together;
  uint32_t skipped_in_group = 0;
  if (!exclude_vm_id.empty()) {
    for (const std::string& id : {exclude_vm_id, migration_key(exclude_vm_id)}) {
      if (const VmAllocation* ex = vm(id); ex && ex->host_id == host.id) {
        vcpus -= std::min<uint64_t>(vcpus, ex->vcpus);
        memory -= std::min(memory, ex->memory_mib);
        skip_group = ex->anti_affinity_group;
        skip_together = ex->affinity_group;
        ++skipped_in_group;
      }
    }
  }
  constexpr uint64_t kMaxVcpus = std::numeric_limits<uint32_t>::max();
  host.allocated_vcpus += static_cast<uint32_t>(std::min(vcpus, kMaxVcpus));
  host.allocated_memory_mib += memory;
  for (const auto& [group, count] : t.groups) {
    // The excluded VM's group stays when another VM of the group is on the host.
    if (!skip_group.empty() && group == skip_group && count <= skipped_in_group) continue;
    host.anti_affinity_groups.push_back(group);
  }
  for (const auto& [group, count] : t.together) {
    if (!skip_together.empty() && group == skip_together && count <= skipped_in_group) continue;
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
