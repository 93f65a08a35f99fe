// Placement decisions: compile the request against the snapshot, scan every host once
// through the filter chain, keep the best ranking key. Explanations and no-fit messages
// re-run the same chain with reasons, only when needed.
#include "strata/sched/scheduler.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "host_check.h"

namespace strata::sched {

using detail::CompiledRequest;
using detail::SnapshotAccess;

std::string_view to_string(WeightStrategy s) {
  switch (s) {
    case WeightStrategy::spread:
      return "spread";
    case WeightStrategy::pack:
      return "pack";
  }
  return "unknown";
}

std::optional<WeightStrategy> weight_strategy_from_string(std::string_view s) {
  if (s == "spread") return WeightStrategy::spread;
  if (s == "pack") return WeightStrategy::pack;
  return std::nullopt;
}

Status validate_config(const SchedulerConfig& config) {
  // Also rejects NaN (comparisons with NaN are false).
  if (!(config.cpu_overcommit > 0) || !std::isfinite(config.cpu_overcommit)) {
    return invalid_argument("cpu_overcommit", "cpu_overcommit must be a finite number > 0");
  }
  if (!(config.mem_overcommit > 0) || !std::isfinite(config.mem_overcommit)) {
    return invalid_argument("mem_overcommit", "mem_overcommit must be a finite number > 0");
  }
  if (config.strategy != WeightStrategy::spread && config.strategy != WeightStrategy::pack) {
    return invalid_argument("strategy", "strategy must be spread or pack");
  }
  return {};
}

Result<Scheduler> Scheduler::create(SchedulerConfig config) {
  if (auto st = validate_config(config); !st) return tl::unexpected(st.error());
  return Scheduler(config);
}

namespace detail {

CompiledRequest compile(const Snapshot& snapshot, const PlacementRequest& request,
                        const SchedulerConfig& config) {
  CompiledRequest c;
  c.request = &request;
  c.vcpus = request.vcpus;
  c.memory_mib = static_cast<double>(request.memory_mib);
  c.cpu_overcommit = config.cpu_overcommit;
  c.mem_overcommit = config.mem_overcommit;
  c.inv_cpu_overcommit = 1.0 / config.cpu_overcommit;
  c.inv_mem_overcommit = 1.0 / config.mem_overcommit;
  if (!request.arch.empty()) {
    c.any_arch = false;
    std::optional<uint32_t> id = SnapshotAccess::lookup(snapshot, request.arch);
    c.arch_known = id && *id <= std::numeric_limits<uint16_t>::max();
    if (c.arch_known) c.arch = static_cast<uint16_t>(*id);
  }
  if (request.accelerator != AcceleratorRequirement::any) {
    c.any_accelerator = false;
    c.accelerator =
        request.accelerator == AcceleratorRequirement::kvm ? Accelerator::kvm : Accelerator::tcg;
  }
  for (const auto& [key, value] : request.node_selector) {
    std::optional<uint32_t> k = SnapshotAccess::lookup(snapshot, key);
    std::optional<uint32_t> v = SnapshotAccess::lookup(snapshot, value);
    if (!k || !v) {
      c.selector_impossible = true;
      continue;
    }
    c.selector.push_back({*k, *v});
  }
  if (!request.anti_affinity_group.empty()) {
    if (std::optional<uint32_t> g = SnapshotAccess::lookup(snapshot, request.anti_affinity_group)) {
      c.group_hosts = SnapshotAccess::group_hosts(snapshot, *g);
    }
  }
  for (const auto& [key, value] : request.avoid_selector) {
    std::optional<uint32_t> k = SnapshotAccess::lookup(snapshot, key);
    std::optional<uint32_t> v = SnapshotAccess::lookup(snapshot, value);
    if (!k || !v) {
      c.avoid_none = true;
      continue;
    }
    c.avoid.push_back({*k, *v});
  }
  if (!request.affinity_group.empty()) {
    if (std::optional<uint32_t> g = SnapshotAccess::lookup(snapshot, request.affinity_group))
      if (const std::vector<uint32_t>* hosts = SnapshotAccess::together_hosts(snapshot, *g))
        for (uint32_t i : *hosts)
          if (snapshot.record(i).traits.state == HostState::up) c.together_up.push_back(i);
  }
  for (const std::string& d : request.datastores) {
    std::optional<uint32_t> id = SnapshotAccess::lookup(snapshot, d);
    const std::vector<uint32_t>* hosts = id ? SnapshotAccess::datastore_hosts(snapshot, *id) : nullptr;
    if (!hosts) {
      c.datastore_impossible = true;
      continue;
    }
    c.datastore_hosts.push_back(hosts);
  }
  for (const std::string& n : request.networks) {
    std::optional<uint32_t> id = SnapshotAccess::lookup(snapshot, n);
    const std::vector<uint32_t>* hosts =
        id ? SnapshotAccess::network_hosts(snapshot, *id) : nullptr;
    if (!hosts) {
      c.network_impossible = true;
      continue;
    }
    c.network_hosts.push_back(hosts);
  }
  if (!request.cpu_model.empty()) {
    c.cpu_required = true;
    if (std::optional<uint32_t> id = SnapshotAccess::lookup(snapshot, request.cpu_model))
      c.cpu_hosts = SnapshotAccess::cpu_hosts(snapshot, *id);
  }
  if (!request.pinned_host.empty()) {
    c.pinned = true;
    c.pinned_index = snapshot.find(request.pinned_host);
  }
  // Masks built from HostTraits values, so byte order does not matter.
  HostTraits mask, want;
  mask.arch = 0;
  mask.state = static_cast<HostState>(0xff);
  mask.accelerator = static_cast<Accelerator>(0);
  want.arch = 0;
  want.state = HostState::up;
  want.accelerator = static_cast<Accelerator>(0);
  if (!c.any_arch && c.arch_known) {
    mask.arch = 0xffff;
    want.arch = c.arch;
  }
  if (!c.any_accelerator) {
    mask.accelerator = static_cast<Accelerator>(0xff);
    want.accelerator = c.accelerator;
  }
  c.traits_mask = traits_word(mask);
  c.traits_want = traits_word(want);
  c.impossible = (!c.any_arch && !c.arch_known) || c.selector_impossible ||
                 c.datastore_impossible || c.network_impossible ||
                 (c.cpu_required && c.cpu_hosts == nullptr);
  return c;
}

double to_score(WeightStrategy strategy, double key) {
  // spread: key in [0, 2]. pack: -key in [-1, 1 + 2w] (the stranding change is in
  // [-1, 1], the fullness term in [0, 2w]).
  constexpr double w = detail::kPackFullnessWeight;
  double score = strategy == WeightStrategy::spread ? 50.0 * key
                                                    : 100.0 * (1.0 - (1.0 - key) / (2.0 + 2.0 * w));
  return std::clamp(score, 0.0, 100.0);
}

}  // namespace detail

namespace {

struct Range {
  uint32_t begin = 0;
  uint32_t end = 0;
};

// Hosts the filter chain looks at: all, or only the pinned one (possibly none).
Range scan_range(const Snapshot& snapshot, const CompiledRequest& c) {
  if (!c.pinned) return {0, static_cast<uint32_t>(snapshot.size())};
  if (!c.pinned_index) return {0, 0};
  return {*c.pinned_index, *c.pinned_index + 1};
}

bool in_group(const CompiledRequest& c, uint32_t index) {
  return c.group_hosts != nullptr &&
         std::binary_search(c.group_hosts->begin(), c.group_hosts->end(), index);
}

// The first filter rejecting each host (pin included), kFilterCount for hosts that pass.
std::vector<uint8_t> evaluate_all(const Snapshot& snapshot, const CompiledRequest& c) {
  const auto& records = SnapshotAccess::records(snapshot);
  const auto& pool = SnapshotAccess::labels(snapshot);
  std::vector<uint8_t> verdict(snapshot.size(), static_cast<uint8_t>(Filter::pin));
  Range r = scan_range(snapshot, c);
  for (uint32_t i = r.begin; i < r.end; ++i) {
    std::optional<Filter> f = detail::first_failure(
        c, pool, records[i], in_group(c, i), detail::mounts_datastores(c, i),
        detail::offers_networks(c, i), detail::offers_cpu(c, i), detail::together_ok(c, i));
    verdict[i] = f ? static_cast<uint8_t>(*f) : static_cast<uint8_t>(kFilterCount);
  }
  return verdict;
}

std::string request_text(const PlacementRequest& r) {
  return std::to_string(r.vcpus) + " vCPUs, " + std::to_string(r.memory_mib) + " MiB";
}

Error no_fit(const Snapshot& snapshot, const CompiledRequest& c) {
  const PlacementRequest& req = *c.request;
  std::string message = "no host can take the VM (" + request_text(req) + "): ";
  if (snapshot.size() == 0) {
    return Error{ErrorCode::resource_exhausted, message + "the snapshot has no hosts", {}};
  }
  if (c.pinned && !c.pinned_index) {
    return Error{ErrorCode::resource_exhausted,
                 message + "pinned host " + req.pinned_host + " is not known",
                 {}};
  }
  std::vector<uint8_t> verdict = evaluate_all(snapshot, c);
  Explanation counts;
  for (uint8_t v : verdict) {
    if (v < kFilterCount) ++counts.rejected_by[v];
  }
  message += counts.summary();
  // A few examples, the hosts that came closest first (the later the rejecting filter,
  // the more filters the host passed), then in host order.
  constexpr size_t kExamples = 5;
  size_t shown = 0;
  for (size_t f = kFilterCount; f-- > 0 && shown < kExamples;) {
    if (f == static_cast<size_t>(Filter::pin)) break;
    for (uint32_t i = 0; i < verdict.size() && shown < kExamples; ++i) {
      if (verdict[i] != f) continue;
      message += "; ";
      Rejection rej{i, snapshot.id(i), snapshot.name(i), static_cast<Filter>(f),
                    detail::reason(snapshot, c, i, static_cast<Filter>(f))};
      message += rej.to_string();
      ++shown;
    }
  }
  size_t rejected = 0;
  for (uint32_t n : counts.rejected_by) rejected += n;
  if (rejected > shown && shown > 0) {
    message += "; and " + std::to_string(rejected - shown) + " more";
  }
  return Error{ErrorCode::resource_exhausted, std::move(message), {}};
}

// Filters that need more than the host record (labels, group membership). The hot loop
// runs them only for a host that would become the best so far: the result is the same
// argmax, and they run a handful of times per decision instead of once per host.
bool passes_lookups(const CompiledRequest& c, const std::vector<SnapshotAccess::Label>& pool,
                    const HostRecord& h, uint32_t index) {
  if (!c.selector.empty() && !detail::selector_matches(pool, h, c.selector)) return false;
  if (detail::avoided(c, pool, h)) return false;
  if (!detail::mounts_datastores(c, index)) return false;
  if (!detail::offers_networks(c, index)) return false;
  if (!detail::offers_cpu(c, index)) return false;
  if (!detail::together_ok(c, index)) return false;
  return !in_group(c, index);
}

// The hot loop: one pass over the compact records, no allocation, no strings. Templated
// on the strategy so the ranking has no branch on it. Must select exactly the host that
// first_failure() + rank_key() would (explain() uses those; tests compare the two).
template <WeightStrategy kStrategy>
int64_t best_host(const Snapshot& snapshot, const CompiledRequest& c, double& best_key) {
  best_key = -std::numeric_limits<double>::infinity();
  if (c.impossible) return -1;
  const HostRecord* records = SnapshotAccess::records(snapshot).data();
  const auto& pool = SnapshotAccess::labels(snapshot);
  const bool lookups = !c.selector.empty() || c.group_hosts != nullptr ||
                       !c.datastore_hosts.empty() || !c.network_hosts.empty() || !c.avoid.empty() ||
                       !c.together_up.empty() || c.cpu_required;
  const uint32_t mask = c.traits_mask;
  const uint32_t want = c.traits_want;
  Range r = scan_range(snapshot, c);
  int64_t best = -1;
  for (uint32_t i = r.begin; i < r.end; ++i) {
    const HostRecord& h = records[i];
    if ((detail::traits_word(h.traits) & mask) != want) continue;
    if (h.allocated_vcpus + c.vcpus > h.total_vcpus * c.cpu_overcommit) continue;
    if (static_cast<double>(h.allocated_memory_mib) + c.memory_mib >
        static_cast<double>(h.total_memory_mib) * c.mem_overcommit) {
      continue;
    }
    double key = detail::rank_key(c, kStrategy, h);
    // Strictly greater: on equal keys the smaller index (= smaller host id) stays.
    if (key > best_key && (!lookups || passes_lookups(c, pool, h, i))) {
      best_key = key;
      best = i;
    }
  }
  return best;
}

}  // namespace

Result<Plan> Scheduler::place(const Snapshot& snapshot, const PlacementRequest& request) const {
  if (auto st = validate_request(request); !st) return tl::unexpected(st.error());
  CompiledRequest c = detail::compile(snapshot, request, config_);
  double key = 0;
  int64_t best = config_.strategy == WeightStrategy::spread
                     ? best_host<WeightStrategy::spread>(snapshot, c, key)
                     : best_host<WeightStrategy::pack>(snapshot, c, key);
  if (best < 0) return tl::unexpected(no_fit(snapshot, c));
  auto index = static_cast<uint32_t>(best);
  return Plan{index, snapshot.id(index), detail::to_score(config_.strategy, key)};
}

Result<Explanation> Scheduler::explain(const Snapshot& snapshot,
                                       const PlacementRequest& request) const {
  if (auto st = validate_request(request); !st) return tl::unexpected(st.error());
  CompiledRequest c = detail::compile(snapshot, request, config_);
  std::vector<uint8_t> verdict = evaluate_all(snapshot, c);
  const auto& records = SnapshotAccess::records(snapshot);
  Explanation e;
  for (uint32_t i = 0; i < verdict.size(); ++i) {
    if (verdict[i] == kFilterCount) {
      double key = detail::rank_key(c, config_.strategy, records[i]);
      e.candidates.push_back({i, snapshot.id(i), detail::to_score(config_.strategy, key)});
      continue;
    }
    auto f = static_cast<Filter>(verdict[i]);
    ++e.rejected_by[verdict[i]];
    e.rejections.push_back(
        {i, snapshot.id(i), snapshot.name(i), f, detail::reason(snapshot, c, i, f)});
  }
  // Rank by the same key place() uses (not the rounded score), ties by host order.
  std::vector<double> keys;
  keys.reserve(e.candidates.size());
  for (const Candidate& cand : e.candidates) {
    keys.push_back(detail::rank_key(c, config_.strategy, records[cand.host_index]));
  }
  std::vector<size_t> order(e.candidates.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return keys[a] > keys[b]; });
  std::vector<Candidate> ranked;
  ranked.reserve(order.size());
  for (size_t i : order) ranked.push_back(std::move(e.candidates[i]));
  e.candidates = std::move(ranked);
  return e;
}

}  // namespace strata::sched
