// place() runs a fast loop (packed traits, label and group checks only for would-be
// winners); explain() runs the plain filter chain. On random fleets and constrained
// requests both must pick the same host, or both find nothing.
#include <gtest/gtest.h>

#include <random>

#include "strata/sched/placement.h"
#include "strata/sched/scheduler.h"
#include "test_hosts.h"

namespace strata::sched {
namespace {

using testing::host;
using testing::scheduler;

TEST(SchedConsistency, PlaceAgreesWithExplainOnRandomFleets) {
  std::mt19937 rng(7);
  auto pick = [&](int n) { return static_cast<int>(rng() % static_cast<unsigned>(n)); };
  std::vector<HostInfo> hosts;
  for (int i = 0; i < 300; ++i) {
    HostInfo h = host("h" + std::to_string(i), 4 + 4 * pick(8), 4096ull * (1 + pick(16)));
    h.state = pick(10) == 0 ? HostState::maintenance : HostState::up;
    h.arch = pick(5) == 0 ? "aarch64" : "x86_64";
    h.accelerator = pick(4) == 0 ? Accelerator::tcg : Accelerator::kvm;
    h.labels = {{"zone", "z" + std::to_string(pick(3))}};
    if (pick(2) == 0) h.labels["ssd"] = "true";
    h.allocated_vcpus = static_cast<uint32_t>(pick(static_cast<int>(h.total_vcpus) * 4));
    h.allocated_memory_mib = static_cast<uint64_t>(pick(static_cast<int>(h.total_memory_mib)));
    if (pick(3) == 0) h.anti_affinity_groups = {"g" + std::to_string(pick(5))};
    hosts.push_back(h);
  }
  Snapshot snap = testing::snapshot(hosts);
  for (WeightStrategy s : {WeightStrategy::spread, WeightStrategy::pack}) {
    Scheduler sched = scheduler(s);
    Snapshot work = snap;
    int placed = 0, failed = 0;
    for (int n = 0; n < 600; ++n) {
      PlacementRequest r = testing::request(1 + pick(16), 256ull * (1 + pick(64)));
      if (pick(3) == 0) r.arch = pick(2) ? "x86_64" : "aarch64";
      if (pick(5) == 0)
        r.accelerator = pick(2) ? AcceleratorRequirement::kvm : AcceleratorRequirement::tcg;
      if (pick(3) == 0) r.node_selector["zone"] = "z" + std::to_string(pick(4));
      if (pick(4) == 0) r.node_selector["ssd"] = "true";
      if (pick(3) == 0) r.anti_affinity_group = "g" + std::to_string(pick(8));
      if (pick(20) == 0) r.pinned_host = "h" + std::to_string(pick(320));
      Result<Plan> p = sched.place(work, r);
      Result<Explanation> e = sched.explain(work, r);
      ASSERT_TRUE(e);
      if (!p) {
        ASSERT_EQ(p.error().code, ErrorCode::resource_exhausted);
        EXPECT_TRUE(e->candidates.empty()) << "request " << n;
        ++failed;
        continue;
      }
      ASSERT_FALSE(e->candidates.empty()) << "request " << n;
      EXPECT_EQ(p->host_id, e->candidates[0].host_id) << "request " << n;
      EXPECT_EQ(e->rejections.size() + e->candidates.size(), work.size());
      ASSERT_TRUE(apply_placement(work, *p, r));
      ++placed;
    }
    // The mix exercises both outcomes.
    EXPECT_GT(placed, 100);
    EXPECT_GT(failed, 20);
  }
}

}  // namespace
}  // namespace strata::sched
