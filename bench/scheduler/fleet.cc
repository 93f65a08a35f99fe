// Synthetic fleets and workloads for the scheduler benchmark.
#include "fleet.h"

#include <algorithm>
#include <cstdio>

namespace strata::bench {

namespace {
std::string numbered(const char* prefix, uint64_t n, int width) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%s%0*llu", prefix, width, static_cast<unsigned long long>(n));
  return buf;
}
}  // namespace

std::vector<sched::HostInfo> make_fleet(const FleetOptions& options) {
  Rng rng(options.seed);
  std::vector<sched::HostInfo> hosts;
  hosts.reserve(options.hosts);
  const uint32_t threads[] = {32, 48, 64, 96, 128};
  const uint32_t gib_per_thread[] = {4, 8, 12, 16, 16};
  for (uint32_t i = 0; i < options.hosts; ++i) {
    sched::HostInfo h;
    h.id = numbered("host-", i, 5);
    h.total_vcpus = rng.pick(threads);
    h.total_memory_mib = uint64_t{h.total_vcpus} * rng.pick(gib_per_thread) * 1024;
    if (options.mixed) {
      uint64_t s = rng.below(100);
      h.state = s < 96   ? sched::HostState::up
                : s < 98 ? sched::HostState::maintenance
                         : sched::HostState::unreachable;
      h.arch = rng.chance(90) ? "x86_64" : "aarch64";
      h.accelerator = rng.chance(85) ? sched::Accelerator::kvm : sched::Accelerator::tcg;
      h.labels = {{"zone", numbered("z", rng.below(4), 1)},
                  {"rack", numbered("r", rng.below(100), 2)},
                  {"ssd", rng.chance(50) ? "true" : "false"}};
    }
    if (options.initial_load > 0) {
      uint64_t pct = rng.below(options.initial_load + 1);
      h.allocated_vcpus = static_cast<uint32_t>(h.total_vcpus * 4 * pct / 100);
      h.allocated_memory_mib = h.total_memory_mib * pct / 100;
    }
    hosts.push_back(std::move(h));
  }
  return hosts;
}

sched::PlacementRequest mixed_size_vm(Rng& rng) {
  // Small VMs are common, large ones rare; memory per vCPU from 0.5 to 8 GiB.
  const uint32_t vcpus[] = {1, 1, 2, 2, 2, 4, 4, 4, 8, 8, 16, 32};
  const uint64_t mib_per_vcpu[] = {512, 1024, 2048, 2048, 4096, 4096, 8192};
  sched::PlacementRequest r;
  r.vcpus = rng.pick(vcpus);
  r.memory_mib = std::clamp<uint64_t>(r.vcpus * rng.pick(mib_per_vcpu), 512, 128 * 1024);
  return r;
}

std::vector<sched::PlacementRequest> make_constrained_workload(uint32_t count, uint32_t hosts,
                                                               uint64_t seed) {
  Rng rng(seed);
  std::vector<sched::PlacementRequest> out;
  out.reserve(count);
  for (uint32_t i = 0; i < count; ++i) {
    sched::PlacementRequest r = mixed_size_vm(rng);
    uint64_t a = rng.below(100);
    r.arch = a < 85 ? "x86_64" : a < 95 ? "" : "aarch64";
    if (rng.chance(10)) r.accelerator = sched::AcceleratorRequirement::kvm;
    if (rng.chance(20)) r.node_selector["zone"] = numbered("z", rng.below(4), 1);
    if (rng.chance(5)) r.node_selector["ssd"] = "true";
    if (rng.chance(10)) r.anti_affinity_group = numbered("group-", rng.below(1000), 4);
    if (rng.chance(1)) r.pinned_host = numbered("host-", rng.below(hosts), 5);
    out.push_back(std::move(r));
  }
  return out;
}

}  // namespace strata::bench
