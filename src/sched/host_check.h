// Private to src/sched: a request compiled against one snapshot (strings resolved to
// interned ids) and the filter chain for one host. place() runs the chain in its hot loop
// and explain() runs the same chain, so the two can never disagree.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "snapshot_access.h"
#include "strata/sched/explanation.h"
#include "strata/sched/request.h"
#include "strata/sched/scheduler.h"
#include "strata/sched/snapshot.h"

namespace strata::sched::detail {

struct CompiledRequest {
  const PlacementRequest* request = nullptr;
  double vcpus = 0;
  double memory_mib = 0;
  double cpu_overcommit = 1;
  double mem_overcommit = 1;
  double inv_cpu_overcommit = 1;
  double inv_mem_overcommit = 1;

  bool any_arch = true;
  bool arch_known = true;  // false: no host has the requested arch
  uint16_t arch = 0;

  bool any_accelerator = true;
  Accelerator accelerator = Accelerator::kvm;

  // Selector pairs as interned ids; impossible when a key or value is unknown to the
  // snapshot (then no host can match, and explain() names the pair per host).
  std::vector<SnapshotAccess::Label> selector;
  bool selector_impossible = false;

  const std::vector<uint32_t>* group_hosts = nullptr;  // hosts already holding the group

  // Keep off: the pairs as interned ids; avoid_none when a pair is unknown to the snapshot
  // (no host carries it, so no host carries them all: nothing is avoided).
  std::vector<SnapshotAccess::Label> avoid;
  bool avoid_none = false;
  // Keep together: the hosts that are up holding the group (sorted); empty: no constraint.
  std::vector<uint32_t> together_up;

  // Per required datastore, the hosts mounting it; impossible when no host mounts one.
  std::vector<const std::vector<uint32_t>*> datastore_hosts;
  bool datastore_impossible = false;
  // Per required network token, the hosts offering it; impossible when no host does.
  std::vector<const std::vector<uint32_t>*> network_hosts;
  bool network_impossible = false;

  // The hosts offering the request's CPU (null with cpu_required: none does).
  const std::vector<uint32_t>* cpu_hosts = nullptr;
  bool cpu_required = false;

  bool pinned = false;
  std::optional<uint32_t> pinned_index;  // empty with pinned: unknown host id

  // Hot-loop form of the state/arch/accelerator filters: a host passes all three iff
  // (its HostTraits bytes & traits_mask) == traits_want.
  uint32_t traits_mask = 0;
  uint32_t traits_want = 0;
  // Some filter can pass no host at all (unknown arch, unknown selector label).
  bool impossible = false;
};

inline uint32_t traits_word(const HostTraits& t) {
  uint32_t w;
  std::memcpy(&w, &t, sizeof w);
  return w;
}

CompiledRequest compile(const Snapshot& snapshot, const PlacementRequest& request,
                        const SchedulerConfig& config);

inline bool selector_matches(const std::vector<SnapshotAccess::Label>& pool, const HostRecord& h,
                             const std::vector<SnapshotAccess::Label>& selector) {
  const SnapshotAccess::Label* begin = pool.data() + h.labels_begin;
  const SnapshotAccess::Label* end = begin + h.labels_count;
  for (const auto& want : selector) {
    const SnapshotAccess::Label* l = begin;
    while (l != end && l->key != want.key) ++l;
    if (l == end || l->value != want.value) return false;
  }
  return true;
}

// Whether host `index` is in every one of `sets` (sorted host indices per required
// datastore or network); never when `impossible` (a requirement no host offers).
inline bool in_every(const std::vector<const std::vector<uint32_t>*>& sets, bool impossible,
                     uint32_t index) {
  if (impossible) return false;
  for (const std::vector<uint32_t>* hosts : sets)
    if (!std::binary_search(hosts->begin(), hosts->end(), index)) return false;
  return true;
}

// Whether host `index` mounts every datastore the request needs.
inline bool mounts_datastores(const CompiledRequest& c, uint32_t index) {
  return in_every(c.datastore_hosts, c.datastore_impossible, index);
}

// Whether host `index` offers every network the request's NICs join.
inline bool offers_networks(const CompiledRequest& c, uint32_t index) {
  return in_every(c.network_hosts, c.network_impossible, index);
}

// Whether host `index` can run the request's CPU model.
inline bool offers_cpu(const CompiledRequest& c, uint32_t index) {
  if (!c.cpu_required) return true;
  return c.cpu_hosts != nullptr && std::binary_search(c.cpu_hosts->begin(), c.cpu_hosts->end(), index);
}

// Whether host `h` carries every label the request keeps off.
inline bool avoided(const CompiledRequest& c, const std::vector<SnapshotAccess::Label>& pool,
                    const HostRecord& h) {
  return !c.avoid.empty() && !c.avoid_none && selector_matches(pool, h, c.avoid);
}

// Whether host `index` satisfies the request's keep-together group.
inline bool together_ok(const CompiledRequest& c, uint32_t index) {
  return c.together_up.empty() ||
         std::binary_search(c.together_up.begin(), c.together_up.end(), index);
}

// The first filter (in Filter order) that rejects host `h`, ignoring pin (the callers
// restrict the scan to the pinned host). `in_group`: the host already holds the
// request's anti-affinity group; `datastores_ok`: mounts_datastores(); `networks_ok`:
// offers_networks(); `cpu_ok`: offers_cpu(); `together`: together_ok().
inline std::optional<Filter> first_failure(const CompiledRequest& c,
                                           const std::vector<SnapshotAccess::Label>& pool,
                                           const HostRecord& h, bool in_group, bool datastores_ok,
                                           bool networks_ok, bool cpu_ok, bool together) {
  if (h.traits.state != HostState::up) return Filter::state;
  if (!c.any_arch && (!c.arch_known || h.traits.arch != c.arch)) return Filter::arch;
  if (!c.any_accelerator && h.traits.accelerator != c.accelerator) return Filter::accelerator;
  if (!c.selector.empty() || c.selector_impossible) {
    if (c.selector_impossible || !selector_matches(pool, h, c.selector)) return Filter::selector;
  }
  if (avoided(c, pool, h)) return Filter::avoid;
  if (!datastores_ok) return Filter::datastore;
  if (!networks_ok) return Filter::network;
  if (!cpu_ok) return Filter::cpu_model;
  if (in_group) return Filter::anti_affinity;
  if (!together) return Filter::affinity;
  if (h.allocated_vcpus + c.vcpus > h.total_vcpus * c.cpu_overcommit) return Filter::cpu;
  if (static_cast<double>(h.allocated_memory_mib) + c.memory_mib >
      static_cast<double>(h.total_memory_mib) * c.mem_overcommit) {
    return Filter::memory;
  }
  return std::nullopt;
}

// Weight of fullness against stranding in the pack key (see rank_key). Small on
// purpose: on the fill benchmark, 0.01 reaches 94-99% utilization before the first
// failure, 0.2 about 85%, and plain best fit (fullness alone) strands capacity at ~83%.
inline constexpr double kPackFullnessWeight = 0.01;

// Ranking key for a host that passed every filter: larger is better. Cheap enough for
// the hot loop; to_score() maps it to the reported 0..100.
inline double rank_key(const CompiledRequest& c, WeightStrategy strategy, const HostRecord& h) {
  // Fractions of capacity in use before and after placement (capacity = total x overcommit).
  double cpu_scale = h.inv_total_vcpus * c.inv_cpu_overcommit;
  double mem_scale = h.inv_total_memory_mib * c.inv_mem_overcommit;
  double cpu_before = h.allocated_vcpus * cpu_scale;
  double mem_before = static_cast<double>(h.allocated_memory_mib) * mem_scale;
  double cpu_used = cpu_before + c.vcpus * cpu_scale;
  double mem_used = mem_before + c.memory_mib * mem_scale;
  if (strategy == WeightStrategy::spread) return 2.0 - cpu_used - mem_used;
  // pack: the placement that adds the least stranded capacity first (stranded: what one
  // dimension has free beyond what the other can match, |cpu free - memory free| as
  // fractions; a placement that levels a lopsided host lowers it), then the fullest host.
  double stranded_after = std::abs(cpu_used - mem_used);
  double stranded_before = std::abs(cpu_before - mem_before);
  double free_after = 2.0 - cpu_used - mem_used;
  return -(stranded_after - stranded_before + kPackFullnessWeight * free_after);
}

double to_score(WeightStrategy strategy, double key);

// Human text for why `filter` rejects host `index` ("needs 4096 MiB, 1024 MiB free").
std::string reason(const Snapshot& snapshot, const CompiledRequest& c, uint32_t index,
                   Filter filter);

}  // namespace strata::sched::detail
