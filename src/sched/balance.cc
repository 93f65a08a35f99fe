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
  // Per host, how many VMs of each anti-affinity group it holds: a group leaves a host's
  // list only with its last VM there.
  std::vector<std::map<std::string, int>> groups(hosts.size());
  for (size_t v = 0; v < vms.size(); ++v)
    if (!vms[v].request.anti_affinity_group.empty())
      ++groups[vm_host[v]][vms[v].request.anti_affinity_group];

  BalancePlan plan;
  Sums sums = sums_of(hosts);
  plan.imbalance = plan.imbalance_after = sums.imbalance();
  if (sums.n < 2) {
    plan.stopped = "no_hosts";
    return plan;
  }
  auto snapshot = Snapshot::build(hosts);
  if (!snapshot) return tl::unexpected(snapshot.error());
  std::vector<bool> moved(vms.size(), false);

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
    // Every (VM, target) pair that gains enough, best first; the filters decide lazily.
    struct Candidate {
      double gain;
      size_t vm;
      size_t to;
    };
    std::vector<Candidate> candidates;
    for (size_t v = 0; v < vms.size(); ++v) {
      const BalanceVm& vm = vms[v];
      const HostInfo& from = hosts[vm_host[v]];
      if (!vm.movable || moved[v] || !counts(from)) continue;
      const double fc = cpu_load(from), fm = mem_load(from);
      const double nfc = static_cast<double>(from.allocated_vcpus - std::min<uint64_t>(from.allocated_vcpus, vm.request.vcpus)) /
                         static_cast<double>(from.total_vcpus);
      const double nfm = static_cast<double>(from.allocated_memory_mib -
                                             std::min(from.allocated_memory_mib, vm.request.memory_mib)) /
                         static_cast<double>(from.total_memory_mib);
      for (size_t t = 0; t < hosts.size(); ++t) {
        const HostInfo& to = hosts[t];
        if (t == vm_host[v] || !counts(to)) continue;
        const double tc = cpu_load(to), tm = mem_load(to);
        const double ntc = static_cast<double>(to.allocated_vcpus + vm.request.vcpus) /
                           static_cast<double>(to.total_vcpus);
        const double ntm = static_cast<double>(to.allocated_memory_mib + vm.request.memory_mib) /
                           static_cast<double>(to.total_memory_mib);
        Sums after = sums;
        after.add(fc, fm, -1);
        after.add(tc, tm, -1);
        after.add(nfc, nfm, 1);
        after.add(ntc, ntm, 1);
        const double gain = now - after.imbalance();
        if (gain >= config.min_gain) candidates.push_back({gain, v, t});
      }
    }
    std::sort(candidates.begin(), candidates.end(), [&](const Candidate& a, const Candidate& b) {
      if (a.gain != b.gain) return a.gain > b.gain;
      if (vms[a.vm].request.memory_mib != vms[b.vm].request.memory_mib)
        return vms[a.vm].request.memory_mib < vms[b.vm].request.memory_mib;
      if (vms[a.vm].name != vms[b.vm].name) return vms[a.vm].name < vms[b.vm].name;
      return hosts[a.to].id < hosts[b.to].id;
    });
    const Candidate* chosen = nullptr;
    for (const auto& c : candidates) {
      PlacementRequest r = vms[c.vm].request;
      r.pinned_host = hosts[c.to].id;
      if (scheduler.place(*snapshot, r)) {
        chosen = &c;
        break;
      }
    }
    if (!chosen) {
      plan.stopped = "no_gain";
      break;
    }
    const BalanceVm& vm = vms[chosen->vm];
    HostInfo& from = hosts[vm_host[chosen->vm]];
    HostInfo& to = hosts[chosen->to];
    BalanceMove move{vm.name, from.id, to.id, now, 0, vm.request.memory_mib, vm.disk_bytes};
    sums.add(cpu_load(from), mem_load(from), -1);
    sums.add(cpu_load(to), mem_load(to), -1);
    from.allocated_vcpus -= std::min<uint32_t>(from.allocated_vcpus, vm.request.vcpus);
    from.allocated_memory_mib -= std::min(from.allocated_memory_mib, vm.request.memory_mib);
    to.allocated_vcpus += vm.request.vcpus;
    to.allocated_memory_mib += vm.request.memory_mib;
    sums.add(cpu_load(from), mem_load(from), 1);
    sums.add(cpu_load(to), mem_load(to), 1);
    if (const std::string& g = vm.request.anti_affinity_group; !g.empty()) {
      if (--groups[vm_host[chosen->vm]][g] == 0)
        std::erase(from.anti_affinity_groups, g);
      if (groups[chosen->to][g]++ == 0) to.anti_affinity_groups.push_back(g);
    }
    move.imbalance_after = sums.imbalance();
    plan.imbalance_after = move.imbalance_after;
    plan.moves.push_back(std::move(move));
    moved[chosen->vm] = true;
    vm_host[chosen->vm] = chosen->to;
    snapshot = Snapshot::build(hosts);
    if (!snapshot) return tl::unexpected(snapshot.error());
  }
  return plan;
}

}  // namespace strata::sched
