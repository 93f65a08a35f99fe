// Load balancing on the placement engine (placement.h): the fleet as the scheduler sees it,
// the VMs that may move, and sched::plan_balance for the moves.
#include <fmt/format.h>

#include <map>
#include <unordered_map>

#include "strata/manager/controllers/placement.h"

namespace strata::manager {

Result<BalanceProposal> PlacementService::plan_balance(
    const sched::BalanceConfig& config, const std::map<std::string, std::string>& hold) {
  if (auto st = sched::validate_config(config); !st) return tl::unexpected(st.error());
  // With the CPUs each host offers: a move must keep the VM's CPU (as a migration does).
  auto snap = snapshot({}, {}, SnapshotDetail::all());
  if (!snap) return tl::unexpected(snap.error());
  std::vector<sched::HostInfo> hosts;
  std::unordered_map<std::string, size_t> by_id;
  hosts.reserve(snap->size());
  for (uint32_t i = 0; i < snap->size(); ++i) {
    hosts.push_back(snap->host(i));
    by_id[hosts.back().id] = hosts.size() - 1;
  }
  auto vms = store_.list_vms({});
  if (!vms) return tl::unexpected(vms.error());

  BalanceProposal out;
  std::vector<sched::BalanceVm> list;
  for (const auto& vm : *vms) {
    if (!vm.host_id) continue;
    auto h = by_id.find(*vm.host_id);
    if (h == by_id.end()) continue;
    const sched::HostInfo& host = hosts[h->second];
    auto doc = decode_vm_document(vm.spec);
    if (!doc) continue;  // not counted by the cache either
    sched::BalanceVm b;
    b.name = vm.name;
    b.host_id = host.id;
    b.request.vcpus = doc->spec.vcpus;
    b.request.memory_mib = doc->spec.memory_mib;
    std::string why;
    const std::string state = decode_vm_status(vm.status).state;
    if (vm.deletion_requested) why = "being deleted";
    else if (doc->is_template) why = "a template";
    else if (doc->clone_of.is_clone() && doc->clone_of.linked) why = "a linked clone (stays with its template)";
    else if (doc->migration.active()) why = "migrating";
    else if (!doc->placement.host.empty())
      why = "pinned to host " + doc->placement.host;
    else if (vm.desired_state != "running" || (state != "running" && state != "paused"))
      why = state.empty() ? "not running" : state;
    else if (auto held = hold.find(vm.id); held != hold.end()) why = held->second;
    if (why.empty()) {
      auto req = request_for(*doc);
      if (!req) {
        why = req.error().message;
      } else {
        b.request = std::move(*req);
        std::string signature;
        for (const auto& t : host.cpu_offers)
          if (t.rfind("cpu-sig:", 0) == 0) signature = t;
        b.request.cpu_model = live_cpu_requirement(decode_vm_status(vm.status), signature);
        b.request.accelerator = host.accelerator == sched::Accelerator::tcg
                                    ? sched::AcceleratorRequirement::tcg
                                    : sched::AcceleratorRequirement::kvm;
        for (const auto& d : doc->spec.disks)
          if (d.datastore.empty() && !d.readonly) b.disk_bytes += d.size_bytes;
      }
    }
    b.movable = why.empty();
    // A keep-together group's running VMs on a host move as one (sched::BalanceVm); one of
    // them that must stay holds the others. A stopped member holds nothing (it has no
    // allocation to balance; a migration of the group takes it along cold).
    const bool running = vm.desired_state == "running" && (state == "running" || state == "paused");
    if (running) b.together = doc->placement.affinity_group;
    // Only the VMs of hosts that are up count for the imbalance, and only they could move.
    if (!b.movable && host.state == sched::HostState::up)
      out.held.push_back({vm.name, host.name.empty() ? host.id : host.name, why});
    list.push_back(std::move(b));
  }
  // Say why a movable VM stays when its group stays for another member's reason.
  std::map<std::pair<std::string, std::string>, std::string> group_held;  // (host, group)
  for (const auto& b : list)
    if (!b.together.empty() && !b.movable) group_held.try_emplace({b.host_id, b.together}, b.name);
  for (const auto& b : list) {
    if (b.together.empty() || !b.movable) continue;
    auto g = group_held.find({b.host_id, b.together});
    if (g == group_held.end()) continue;
    const sched::HostInfo& host = hosts[by_id[b.host_id]];
    if (host.state == sched::HostState::up)
      out.held.push_back(
          {b.name, host.name.empty() ? host.id : host.name,
           fmt::format("kept together with group {}, whose VM {} stays", b.together, g->second)});
  }
  for (const auto& h : hosts)
    out.hosts += h.state == sched::HostState::up && h.total_vcpus > 0 && h.total_memory_mib > 0;

  auto plan = sched::plan_balance(scheduler_, hosts, list, config);
  if (!plan) return tl::unexpected(plan.error());
  auto name = [&](const std::string& id) {
    auto it = by_id.find(id);
    return it == by_id.end() || hosts[it->second].name.empty() ? id : hosts[it->second].name;
  };
  out.imbalance = plan->imbalance;
  out.imbalance_after = plan->imbalance_after;
  out.stopped = plan->stopped;
  for (const auto& m : plan->moves)
    out.moves.push_back({m.vm, name(m.from_host_id), name(m.to_host_id), m.imbalance_before,
                         m.imbalance_after, m.memory_mib, m.disk_bytes, m.together_with});
  return out;
}

}  // namespace strata::manager
