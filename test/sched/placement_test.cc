// Applying plans: the scheduler leaves its snapshot alone; apply_placement/place_batch
// update a copy so the next decision sees the previous ones.
#include "strata/sched/placement.h"

#include <gtest/gtest.h>

#include "test_hosts.h"

namespace strata::sched {
namespace {

using testing::host;
using testing::request;
using testing::scheduler;
using testing::snapshot;

TEST(SchedPlacement, PlaceNeverMutatesTheSnapshot) {
  Snapshot snap = snapshot({host("a", 4, 4096)});
  PlacementRequest req = request(2, 1024);
  req.anti_affinity_group = "g";
  for (int i = 0; i < 3; ++i) {
    auto p = scheduler().place(snap, req);
    ASSERT_TRUE(p);
    EXPECT_EQ(p->host_id, "a");
  }
  EXPECT_EQ(snap.host(0).allocated_vcpus, 0u);
  EXPECT_TRUE(snap.host(0).anti_affinity_groups.empty());
}

TEST(SchedPlacement, ApplyAddsResourcesAndGroup) {
  Snapshot snap = snapshot({host("a", 4, 4096), host("b", 4, 4096)});
  PlacementRequest req = request(3, 1024);
  req.anti_affinity_group = "g";
  auto p = scheduler().place(snap, req);
  ASSERT_TRUE(p);
  ASSERT_TRUE(apply_placement(snap, *p, req));
  HostInfo a = snap.host(p->host_index);
  EXPECT_EQ(a.allocated_vcpus, 3u);
  EXPECT_EQ(a.allocated_memory_mib, 1024u);
  EXPECT_EQ(a.anti_affinity_groups, std::vector<std::string>{"g"});
  // The group now keeps the next member off that host.
  auto q = scheduler().place(snap, req);
  ASSERT_TRUE(q);
  EXPECT_NE(q->host_id, p->host_id);
}

TEST(SchedPlacement, ApplyRejectsForeignPlan) {
  Snapshot snap = snapshot({host("a")});
  Plan foreign{0, "z", 1.0};
  auto st = apply_placement(snap, foreign, request(1, 1));
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code, ErrorCode::invalid_argument);
  Plan out_of_range{5, "a", 1.0};
  EXPECT_FALSE(apply_placement(snap, out_of_range, request(1, 1)));
}

TEST(SchedPlacement, BatchFillsUntilFullThenExplains) {
  // 2 hosts x 8 GiB; 5 VMs of 3 GiB: two per host fit, the fifth does not.
  Snapshot snap = snapshot({host("a", 8, 8192), host("b", 8, 8192)});
  std::vector<PlacementRequest> reqs(5, request(1, 3072));
  auto plans = place_batch(scheduler(WeightStrategy::spread), snap, reqs);
  ASSERT_EQ(plans.size(), 5u);
  EXPECT_EQ(plans[0]->host_id, "a");
  EXPECT_EQ(plans[1]->host_id, "b");  // spread alternates
  EXPECT_EQ(plans[2]->host_id, "a");
  EXPECT_EQ(plans[3]->host_id, "b");
  ASSERT_FALSE(plans[4]);
  EXPECT_NE(plans[4].error().message.find("memory filter rejected 2 hosts"), std::string::npos);
  EXPECT_EQ(snap.host(0).allocated_memory_mib, 6144u);
}

TEST(SchedPlacement, PackFillsOneHostFirst) {
  Snapshot snap = snapshot({host("a", 8, 8192), host("b", 8, 8192)});
  std::vector<PlacementRequest> reqs(3, request(1, 2048));
  auto plans = place_batch(scheduler(WeightStrategy::pack), snap, reqs);
  for (const auto& p : plans) {
    ASSERT_TRUE(p);
    EXPECT_EQ(p->host_id, "a");
  }
}

TEST(SchedPlacement, AntiAffinityBatchSpreadsGroupThenFails) {
  Snapshot snap = snapshot({host("a"), host("b"), host("c")});
  PlacementRequest req = request(1, 512);
  req.anti_affinity_group = "quorum";
  auto plans =
      place_batch(scheduler(WeightStrategy::pack), snap, std::vector<PlacementRequest>(4, req));
  ASSERT_TRUE(plans[0] && plans[1] && plans[2]);
  EXPECT_EQ(plans[0]->host_id, "a");
  EXPECT_EQ(plans[1]->host_id, "b");
  EXPECT_EQ(plans[2]->host_id, "c");
  ASSERT_FALSE(plans[3]);
  EXPECT_NE(plans[3].error().message.find("anti-affinity filter rejected 3 hosts"),
            std::string::npos);
}

}  // namespace
}  // namespace strata::sched
