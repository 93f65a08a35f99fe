// Snapshot building from store records and placement via strata_sched.
#include "strata/manager/controllers/placement.h"

#include <fmt/format.h>

namespace strata::manager {

Result<sched::Snapshot> PlacementService::snapshot(const std::string& exclude_vm_id) {
  auto hosts = store_.list_hosts({});
  if (!hosts) return tl::unexpected(hosts.error());
  auto vms = store_.list_vms({});
  if (!vms) return tl::unexpected(vms.error());
  std::map<std::string, sched::HostInfo> infos;
  for (const auto& h : *hosts) {
    sched::HostInfo info;
    info.id = h.id;
    info.name = h.name;
    info.state = h.state == "up"            ? sched::HostState::up
                 : h.state == "maintenance" ? sched::HostState::maintenance
                                            : sched::HostState::unreachable;
    info.accelerator = h.accelerator == "tcg" ? sched::Accelerator::tcg : sched::Accelerator::kvm;
    info.total_vcpus = static_cast<uint32_t>(h.cpu_threads);
    info.total_memory_mib = static_cast<uint64_t>(h.memory_mib);
    info.labels = h.labels;
    infos[h.id] = std::move(info);
  }
  for (const auto& vm : *vms) {
    if (!vm.host_id || vm.id == exclude_vm_id) continue;
    auto it = infos.find(*vm.host_id);
    if (it == infos.end()) continue;
    auto doc = decode_vm_document(vm.spec);
    if (!doc) continue;
    it->second.allocated_vcpus += doc->spec.vcpus;
    it->second.allocated_memory_mib += doc->spec.memory_mib;
    if (!doc->placement.anti_affinity_group.empty())
      it->second.anti_affinity_groups.push_back(doc->placement.anti_affinity_group);
  }
  std::vector<sched::HostInfo> list;
  for (auto& [id, info] : infos) list.push_back(std::move(info));
  return sched::Snapshot::build(std::move(list));
}

Result<store::HostRecord> PlacementService::place(const VmDocument& doc,
                                                  const std::string& exclude_vm_id) {
  sched::PlacementRequest req;
  req.vcpus = doc.spec.vcpus;
  req.memory_mib = doc.spec.memory_mib;
  req.node_selector = doc.placement.node_selector;
  req.anti_affinity_group = doc.placement.anti_affinity_group;
  if (!doc.placement.host.empty()) {
    auto pinned = store_.get_host_by_name(doc.placement.host);
    if (!pinned) {
      if (pinned.error().code == ErrorCode::not_found)
        return invalid_argument("host", fmt::format("no host named '{}'", doc.placement.host));
      return tl::unexpected(pinned.error());
    }
    req.pinned_host = pinned->id;
  }
  auto snap = snapshot(exclude_vm_id);
  if (!snap) return tl::unexpected(snap.error());
  if (snap->size() == 0)
    return make_error(ErrorCode::resource_exhausted,
                      "no hosts are enrolled: enroll a host (strata-agent) first");
  auto plan = scheduler_.place(*snap, req);
  if (!plan) return tl::unexpected(plan.error());
  return store_.get_host(plan->host_id);
}

}  // namespace strata::manager
