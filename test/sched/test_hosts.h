// Test helpers: small host and snapshot builders for the scheduler tests.
#pragma once

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "strata/sched/scheduler.h"
#include "strata/sched/snapshot.h"

namespace strata::sched::testing {

inline HostInfo host(std::string id, uint32_t vcpus = 16, uint64_t memory_mib = 65536) {
  HostInfo h;
  h.id = std::move(id);
  h.total_vcpus = vcpus;
  h.total_memory_mib = memory_mib;
  return h;
}

inline Snapshot snapshot(std::vector<HostInfo> hosts) {
  Result<Snapshot> s = Snapshot::build(std::move(hosts));
  EXPECT_TRUE(s.has_value()) << (s ? "" : s.error().to_string());
  return s ? std::move(*s) : Snapshot{};
}

inline Scheduler scheduler(WeightStrategy strategy = WeightStrategy::spread,
                           double cpu_overcommit = 4.0, double mem_overcommit = 1.0) {
  return *Scheduler::create({cpu_overcommit, mem_overcommit, strategy});
}

inline PlacementRequest request(uint32_t vcpus, uint64_t memory_mib) {
  PlacementRequest r;
  r.vcpus = vcpus;
  r.memory_mib = memory_mib;
  return r;
}

// The single rejection of host `id` in an explanation (fails the test when absent).
inline const Rejection* rejection_of(const Explanation& e, const std::string& id) {
  for (const Rejection& r : e.rejections) {
    if (r.host_id == id) return &r;
  }
  ADD_FAILURE() << "no rejection for " << id;
  return nullptr;
}

}  // namespace strata::sched::testing
