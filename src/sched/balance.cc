// Load balancing plans (balance.h): greedy moves scored on running sums, each checked
// against the scheduler's filters only when it would be the best so far.
#include "strata/sched/balance.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>
#include <unordered_map>

namespace strata::sched {

Status validate_config(const BalanceConfig& c) {
  if (!(c.min_imbalance >= 0 && c.min_imbalance <= 1))
    return invalid_argument("min_imbalance", "min_imbalance must be between 0 and 1");
  if (!(c.min_gain > 0 && c.min_gain <= 1))
    return invalid_argument("min_gain", "min_gain must be more than 0 and at most 1");
  if (c.max_moves < 1 || c.max_moves > 100)
    return invalid_argument("max_moves", "max_moves must be 1..100");
  return {};
}

namespace {

bool counts(const HostInfo& h) {
  return h.state == HostState::up && h.total_vcpus > 0 && h.total_memory_mib > 0;
}
double cpu_load(const HostInfo& h) {
  return static_cast<double>(h.allocated_vcpus) / static_cast<double>(h.total_vcpus);
}
double mem_load(const HostInfo& h) {
  return static_cast<double>(h.allocated_memory_mib) / static_cast<double>(h.total_memory_mib);
}

// Sums of the loads and of their squares over the hosts that count: a move changes two
// hosts, so its imbalance is computed in O(1).
struct Sums {
  double n = 0, cpu = 0, cpu2 = 0, mem = 0, mem2 = 0;
  void add(double c, double m, double sign) {
    cpu += sign * c;
    cpu2 += sign * c * c;
    mem += sign * m;
    mem2 += sign * m * m;
  }
  double imbalance() const {
    if (n < 1) return 0;
    auto sd = [&](double s, double s2) { return std::sqrt(std::max(0.0, s2 / n - (s / n) * (s / n))); };
    return (sd(cpu, cpu2) + sd(mem, mem2)) / 2;
  }
};

Sums sums_of(const std::vector<HostInfo>& hosts) {
  Sums s;
  for (const auto& h : hosts)
    if (counts(h)) {
      s.n += 1;
      s.add(cpu_load(h), mem_load(h), 1);
    }
  return s;
}

}  // namespace

double imbalance(const std::vector<HostInfo>& hosts) { return sums_of(hosts).imbalance(); }

Result<BalancePlan> plan_balance(const Scheduler& scheduler, std::vector<HostInfo> hosts,
                                 const std::vector<BalanceVm>& vms, const BalanceConfig& config) {
  if (auto st = validate_config(config); !st) return tl::unexpected(st.error());
  std::unordered_map<std::string, size_t> index;
  for (size_t i = 0; i < hosts.size(); ++i) index[hosts[i].id] = i;
  std::vector<size_t> vm_host(vms.size());
  for (size_t v = 0; v < vms.size(); ++v) {
    auto it = index.find(vms[v].host_id);
    if (it == index.end())
      return invalid_argument("vms[" + std::to_string(v) + "].host_id",
                              "VM " + vms[v].name + " is on host " + vms[v].host_id +
                                  ", which is not in the fleet");
    vm_host[v] = it->second;
  }
  // Per host, how many VMs of each anti-affinity group it holds.
  std::vector<std::map<std::string, int>> groups(hosts.size());
  for (size_t v = 0; v < vms.size(); ++v)
    if (!vms[v].request.anti_affinity_group.empty())
      ++groups[vm_host[v]][vms[v].request.anti_affinity_group];

  // What moves as one: a VM, or a keep-together group's VMs on one host (members by name;
  // the unit holds if any member must stay).
  struct Unit {
    std::vector<size_t> members;
    uint32_t vcpus = 0;
    uint64_t memory_mib = 0;
    uint64_t disk_bytes = 0;
    bool movable = true;
  };
  std::vector<Unit> units;
  {
    std::map<std::pair<size_t, std::string>, size_t> grouped;
    for (size_t v = 0; v < vms.size(); ++v) {
      size_t u = units.size();
      if (!vms[v].together.empty()) {
        auto [it, fresh] = grouped.try_emplace({vm_host[v], vms[v].together}, units.size());
        u = it->second;
        if (fresh) units.emplace_back();
      } else {
        units.emplace_back();
      }
      Unit& unit = units[u];
      unit.members.push_back(v);
      unit.vcpus += vms[v].request.vcpus;
      unit.memory_mib += vms[v].request.memory_mib;
      unit.disk_bytes += vms[v].disk_bytes;
      unit.movable = unit.movable && vms[v].movable;
    }
    for (auto& u : units)
      std::sort(u.members.begin(), u.members.end(),
                [&](size_t a, size_t b) { return vms[a].name < vms[b].name; });
  }
  auto host_of = [&](const Unit& u) { return vm_host[u.members.front()]; };
  auto name_of = [&](const Unit& u) -> const std::string& { return vms[u.members.front()].name; };
  // A unit leaving host `f` of `hs` (the fleet itself, or a trial copy of it): its
  // allocations, its members' anti-affinity groups that no other VM holds there (the counts
  // are the fleet's), and its keep-together group (the whole group leaves: a migration
  // takes the group's stopped VMs along cold).
  auto leave = [&](std::vector<HostInfo>& hs, const Unit& u, size_t f) {
    HostInfo& from = hs[f];
    std::map<std::string, int> anti;
    for (size_t v : u.members) {
      const auto& r = vms[v].request;
      from.allocated_vcpus -= std::min<uint32_t>(from.allocated_vcpus, r.vcpus);
      from.allocated_memory_mib -= std::min(from.allocated_memory_mib, r.memory_mib);
      if (!r.anti_affinity_group.empty()) ++anti[r.anti_affinity_group];
    }
    for (const auto& [g, n] : anti) {
      auto it = groups[f].find(g);
      if (it == groups[f].end() || it->second <= n) std::erase(from.anti_affinity_groups, g);
    }
    if (const std::string& g = vms[u.members.front()].together; !g.empty())
      std::erase(from.affinity_groups, g);
  };
  // A VM arriving on a host: its allocation, anti-affinity and keep-together groups.
  auto arrive = [&](HostInfo& h, size_t v) {
    const auto& r = vms[v].request;
    h.allocated_vcpus += r.vcpus;
    h.allocated_memory_mib += r.memory_mib;
    for (const std::string* g : {&r.anti_affinity_group, &vms[v].together})
      if (!g->empty()) {
        auto& list = g == &r.anti_affinity_group ? h.anti_affinity_groups : h.affinity_groups;
        if (std::find(list.begin(), list.end(), *g) == list.end()) list.push_back(*g);
      }
  };

  BalancePlan plan;
  Sums sums = sums_of(hosts);
  plan.imbalance = plan.imbalance_after = sums.imbalance();
  if (sums.n < 2) {
    plan.stopped = "no_hosts";
    return plan;
  }
  auto snapshot = Snapshot::build(hosts);
  if (!snapshot) return tl::unexpected(snapshot.error());
  // Whether `to` passes the filters for the whole unit: a VM against this plan's snapshot;
  // a group member by member, each on the target as the ones before it left it.
  auto fits = [&](const Unit& u, size_t to) -> bool {
    if (u.members.size() == 1 && vms[u.members.front()].together.empty()) {
      PlacementRequest r = vms[u.members.front()].request;
      r.pinned_host = hosts[to].id;
      return static_cast<bool>(scheduler.place(*snapshot, r));
    }
    // A group: on a copy of the fleet where it has left its host, member by member.
    std::vector<HostInfo> trial = hosts;
    leave(trial, u, host_of(u));
    for (size_t v : u.members) {
      auto snap = Snapshot::build(trial);
      if (!snap) return false;
      PlacementRequest r = vms[v].request;
      r.pinned_host = hosts[to].id;
      if (!scheduler.place(*snap, r)) return false;
      arrive(trial[to], v);
    }
    return true;
  };
  std::vector<bool> moved(units.size(), false);

  while (true) {
    const double now = sums.imbalance();
    if (now < config.min_imbalance) {
      plan.stopped = "balanced";
      break;
    }
    if (plan.moves.size() >= config.max_moves) {
      plan.stopped = "max_moves";
      break;
    }
    // Every (unit, target) pair that gains enough, best first; the filters decide lazily.
    struct Candidate {
      double gain;
      size_t unit;
      size_t to;
    };
    std::vector<Candidate> candidates;
    for (size_t u = 0; u < units.size(); ++u) {
      const Unit& unit = units[u];
      const HostInfo& from = hosts[host_of(unit)];
      if (!unit.movable || moved[u] || !counts(from)) continue;
      const double fc = cpu_load(from), fm = mem_load(from);
      const double nfc = static_cast<double>(from.allocated_vcpus -
                                             std::min<uint64_t>(from.allocated_vcpus, unit.vcpus)) /
                         static_cast<double>(from.total_vcpus);
      const double nfm = static_cast<double>(from.allocated_memory_mib -
                                             std::min(from.allocated_memory_mib, unit.memory_mib)) /
                         static_cast<double>(from.total_memory_mib);
      for (size_t t = 0; t < hosts.size(); ++t) {
        const HostInfo& to = hosts[t];
        if (t == host_of(unit) || !counts(to)) continue;
        const double tc = cpu_load(to), tm = mem_load(to);
        const double ntc = static_cast<double>(to.allocated_vcpus + unit.vcpus) /
                           static_cast<double>(to.total_vcpus);
        const double ntm = static_cast<double>(to.allocated_memory_mib + unit.memory_mib) /
                           static_cast<double>(to.total_memory_mib);
        Sums after = sums;
        after.add(fc, fm, -1);
        after.add(tc, tm, -1);
        after.add(nfc, nfm, 1);
        after.add(ntc, ntm, 1);
        const double gain = now - after.imbalance();
        if (gain >= config.min_gain) candidates.push_back({gain, u, t});
      }
    }
    std::sort(candidates.begin(), candidates.end(), [&](const Candidate& a, const Candidate& b) {
      if (a.gain != b.gain) return a.gain > b.gain;
      if (units[a.unit].memory_mib != units[b.unit].memory_mib)
        return units[a.unit].memory_mib < units[b.unit].memory_mib;
      if (name_of(units[a.unit]) != name_of(units[b.unit]))
        return name_of(units[a.unit]) < name_of(units[b.unit]);
      return hosts[a.to].id < hosts[b.to].id;
    });
    const Candidate* chosen = nullptr;
    for (const auto& c : candidates)
      if (fits(units[c.unit], c.to)) {
        chosen = &c;
        break;
      }
    if (!chosen) {
      plan.stopped = "no_gain";
      break;
    }
    const Unit& unit = units[chosen->unit];
    const size_t f = host_of(unit), t = chosen->to;
    HostInfo& from = hosts[f];
    HostInfo& to = hosts[t];
    BalanceMove move{name_of(unit), from.id, to.id, now, 0, unit.memory_mib, unit.disk_bytes, {}};
    for (size_t i = 1; i < unit.members.size(); ++i)
      move.together_with.push_back(vms[unit.members[i]].name);
    sums.add(cpu_load(from), mem_load(from), -1);
    sums.add(cpu_load(to), mem_load(to), -1);
    leave(hosts, unit, f);
    for (size_t v : unit.members) {
      if (const std::string& g = vms[v].request.anti_affinity_group; !g.empty()) {
        --groups[f][g];
        ++groups[t][g];
      }
      arrive(hosts[t], v);
      vm_host[v] = t;
    }
    sums.add(cpu_load(from), mem_load(from), 1);
    sums.add(cpu_load(to), mem_load(to), 1);
    move.imbalance_after = sums.imbalance();
    plan.imbalance_after = move.imbalance_after;
    plan.moves.push_back(std::move(move));
    moved[chosen->unit] = true;
    snapshot = Snapshot::build(hosts);
    if (!snapshot) return tl::unexpected(snapshot.error());
  }
  return plan;
}

}  // namespace strata::sched
