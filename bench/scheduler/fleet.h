// Synthetic fleets and workloads for the scheduler benchmark, from a fixed seed
// (splitmix64, so the numbers are the same on every machine and standard library).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "strata/sched/request.h"
#include "strata/sched/snapshot.h"

namespace strata::bench {

class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  // Uniform in [0, n).
  uint64_t below(uint64_t n) { return next() % n; }
  // True with probability percent/100.
  bool chance(uint64_t percent) { return below(100) < percent; }
  template <typename T, size_t N>
  T pick(const T (&values)[N]) {
    return values[below(N)];
  }

 private:
  uint64_t state_;
};

struct FleetOptions {
  uint32_t hosts = 10000;
  uint64_t seed = 42;
  bool mixed = true;           // states, arches, accelerators, labels vary
  uint32_t initial_load = 20;  // each host starts 0..initial_load % allocated
};

std::vector<sched::HostInfo> make_fleet(const FleetOptions& options);

// The throughput workload: mixed sizes plus every constraint the scheduler has
// (arch, accelerator, node selectors, anti-affinity groups, pins).
std::vector<sched::PlacementRequest> make_constrained_workload(uint32_t count, uint32_t hosts,
                                                               uint64_t seed);

// One unconstrained VM of a mixed size: 1-32 vCPUs, 0.5-128 GiB.
sched::PlacementRequest mixed_size_vm(Rng& rng);

}  // namespace strata::bench
