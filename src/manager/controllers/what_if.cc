// What-if planning on the placement engine (see placement.h): "these hosts are gone, where
// would their VMs go?" answers `strata plan host-down` and HA admission control, with the
// same snapshot, filters and weights as every real placement.
#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <optional>

#include "strata/manager/controllers/networks.h"
#include "strata/manager/controllers/placement.h"
#include "strata/sched/placement.h"

namespace strata::manager {

namespace {

struct Candidate {
  std::string vm;
  std::string from_host;  // id
  VmDocument doc;
};

// HA priority first (an HA restart's order), then larger memory, then name: big VMs first
// pack better (first fit decreasing), and the order is stable.
bool restart_order(const Candidate& a, const Candidate& b) {
  int pa = a.doc.ha.enabled ? a.doc.ha.priority : -1;
  int pb = b.doc.ha.enabled ? b.doc.ha.priority : -1;
  if (pa != pb) return pa > pb;
  if (a.doc.spec.memory_mib != b.doc.spec.memory_mib)
    return a.doc.spec.memory_mib > b.doc.spec.memory_mib;
  return a.vm < b.vm;
}

}  // namespace

std::string HostDownPlan::stays_text() const {
  std::string which;
  for (const auto& s : stays) which += fmt::format("{}{} ({})", which.empty() ? "" : "; ", s.vm, s.reason);
  return which;
}

Result<HostDownPlan> PlacementService::plan_host_down(const std::vector<std::string>& host_ids,
                                                      bool ha_only,
                                                      const std::vector<PendingVm>& pending,
                                                      bool running_only) {
  HostDownPlan plan;
  std::map<std::string, std::string> names;  // host id -> name (every host)
  auto hosts = store_.list_hosts({});
  if (!hosts) return tl::unexpected(hosts.error());
  for (const auto& h : *hosts) names[h.id] = h.name;
  for (const auto& id : host_ids) {
    auto it = names.find(id);
    if (it == names.end()) return not_found("no host with id " + id);
    plan.hosts.push_back(it->second);
  }
  auto lost = [&](const std::string& id) {
    return std::find(host_ids.begin(), host_ids.end(), id) != host_ids.end();
  };

  // The VMs to move: every VM placed on a lost host (and pending ones placed there).
  std::vector<Candidate> moving;
  for (const auto& id : host_ids) {
    store::VmListOptions o;
    o.host_id = id;
    auto vms = store_.list_vms(o);
    if (!vms) return tl::unexpected(vms.error());
    for (const auto& vm : *vms) {
      if (vm.deletion_requested) continue;
      auto doc = decode_vm_document(vm.spec);
      if (!doc) return tl::unexpected(doc.error().wrap("VM " + vm.name));
      if (ha_only && !doc->ha.enabled) continue;
      if (running_only) {
        const std::string state = decode_vm_status(vm.status).state;
        if (state != "running" && state != "paused") continue;
      }
      moving.push_back({vm.name, id, std::move(*doc)});
    }
  }
  for (const auto& p : pending) {
    if (lost(p.host_id) && (!ha_only || p.doc.ha.enabled))
      moving.push_back({p.name, p.host_id, p.doc});
  }
  std::sort(moving.begin(), moving.end(), restart_order);

  // The hosts' datastores and networks only when a VM's disks or NICs need them (each
  // means parsing every host's inventory).
  SnapshotDetail detail;
  for (const auto& c : moving) {
    for (const auto& d : c.doc.spec.disks)
      detail.datastores = detail.datastores || !d.datastore.empty();
    detail.networks = detail.networks || !nic_networks(c.doc.spec.nics).empty();
  }
  auto snap = snapshot_without({}, host_ids, detail);
  if (!snap) return tl::unexpected(snap.error());
  // Pending VMs on the hosts that stay take their capacity there.
  for (const auto& p : pending) {
    if (lost(p.host_id)) continue;
    auto index = snap->find(p.host_id);
    if (!index) continue;
    auto req = request_for(p.doc);
    if (!req) return tl::unexpected(req.error());
    (void)sched::apply_placement(*snap, sched::Plan{*index, p.host_id, 0}, *req);
  }

  for (const auto& c : moving) {
    const std::string& from = names[c.from_host];
    // As a migration does (place_migration), a VM's pin is where it runs now: moving it
    // moves the pin. (An HA VM cannot be pinned.)
    VmDocument moved = c.doc;
    moved.placement.host.clear();
    auto req = request_for(moved);
    if (!req) {
      plan.stays.push_back({c.vm, from, req.error().message, c.doc.ha.enabled});
      continue;
    }
    if (snap->size() == 0) {
      plan.stays.push_back({c.vm, from, "no other host", c.doc.ha.enabled});
      continue;
    }
    auto placed = scheduler_.place(*snap, *req);
    if (!placed) {
      plan.stays.push_back({c.vm, from, placed.error().message, c.doc.ha.enabled});
      continue;
    }
    (void)sched::apply_placement(*snap, *placed, *req);
    plan.moves.push_back({c.vm, from, snap->name(placed->host_index), placed->score,
                          c.doc.ha.enabled});
  }
  return plan;
}

Result<CapacityPlan> PlacementService::plan_capacity(const sched::PlacementRequest& size,
                                                     uint32_t count) {
  if (auto st = sched::validate_request(size); !st) return tl::unexpected(st.error());
  auto snap = snapshot({}, {}, SnapshotDetail::of(size));
  if (!snap) return tl::unexpected(snap.error());
  CapacityPlan plan;
  plan.requested = count;
  if (snap->size() == 0) {
    plan.runs_out_first = std::string(sched::to_string(sched::Filter::state));
    plan.summary = "no hosts are enrolled";
    return plan;
  }
  std::vector<uint32_t> per_host(snap->size(), 0);
  std::optional<sched::Snapshot> at_count;  // the fleet once the requested `count` are placed
  // Placed hosts are recorded until `count` (or every one when count is 0): the answer to
  // "where would N more go"; the loop goes on to the first refusal for "how many fit".
  while (plan.fit < CapacityPlan::kMax) {
    auto placed = scheduler_.place(*snap, size);
    if (!placed) {
      if (placed.error().code != ErrorCode::resource_exhausted)
        return tl::unexpected(placed.error());
      auto ex = scheduler_.explain(*snap, size);
      if (!ex) return tl::unexpected(ex.error());
      plan.summary = ex->summary();
      size_t best = 0;
      for (size_t f = 1; f < sched::kFilterCount; ++f)
        if (ex->rejected_by[f] > ex->rejected_by[best]) best = f;
      plan.runs_out_first = std::string(sched::to_string(static_cast<sched::Filter>(best)));
      break;
    }
    if (auto st = sched::apply_placement(*snap, *placed, size); !st)
      return tl::unexpected(st.error());
    if (count == 0 || plan.fit < count) ++per_host[placed->host_index];
    ++plan.fit;
    if (plan.fit == count) at_count = *snap;
  }
  plan.capped = plan.fit >= CapacityPlan::kMax;
  // Free capacity after the reported VMs, as the scheduler counts it (overcommit included).
  const sched::Snapshot& shown = at_count ? *at_count : *snap;
  const auto& cfg = scheduler_.config();
  for (uint32_t i = 0; i < shown.size(); ++i) {
    if (per_host[i] == 0) continue;
    sched::HostInfo h = shown.host(i);
    plan.hosts.push_back(
        {h.name.empty() ? h.id : h.name, per_host[i],
         static_cast<int64_t>(h.total_vcpus * cfg.cpu_overcommit) -
             static_cast<int64_t>(h.allocated_vcpus),
         static_cast<int64_t>(static_cast<double>(h.total_memory_mib) * cfg.mem_overcommit) -
             static_cast<int64_t>(h.allocated_memory_mib)});
  }
  std::sort(plan.hosts.begin(), plan.hosts.end(), [](const auto& a, const auto& b) {
    return a.vms != b.vms ? a.vms > b.vms : a.host < b.host;
  });
  return plan;
}

Status PlacementService::check_ha_admission(const std::vector<PendingVm>& pending) {
  // The hosts whose failure would need HA restarts: those holding an HA VM now, and the
  // pending VMs' hosts.
  std::vector<std::string> candidates;
  auto hosts = store_.list_hosts({});
  if (!hosts) return tl::unexpected(hosts.error());
  for (const auto& h : *hosts) {
    bool holds = std::any_of(pending.begin(), pending.end(), [&](const PendingVm& p) {
      return p.host_id == h.id && p.doc.ha.enabled;
    });
    if (!holds) {
      store::VmListOptions o;
      o.host_id = h.id;
      auto vms = store_.list_vms(o);
      if (!vms) return tl::unexpected(vms.error());
      for (const auto& vm : *vms) {
        auto doc = decode_vm_document(vm.spec);
        if (doc && doc->ha.enabled && !vm.deletion_requested) {
          holds = true;
          break;
        }
      }
    }
    if (holds) candidates.push_back(h.id);
  }
  for (const auto& id : candidates) {
    auto plan = plan_host_down({id}, /*ha_only=*/true, pending);
    if (!plan) return tl::unexpected(plan.error());
    if (plan->stays.empty()) continue;
    return make_error(ErrorCode::failed_precondition,
                      fmt::format("HA admission control: if host {} failed, {} of its HA VMs "
                                  "could not restart elsewhere: {}. Add capacity, lower the "
                                  "VM's size, or turn admission control off "
                                  "(stratad --ha-admission off)",
                                  plan->hosts.empty() ? id : plan->hosts[0], plan->stays.size(),
                                  plan->stays_text()),
                      "ha");
  }
  return {};
}

}  // namespace strata::manager
