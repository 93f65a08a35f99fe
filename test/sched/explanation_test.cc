// Explanations and the no-fit error: per-host reasons, per-filter summary, the message the
// manager returns as HTTP 422, and determinism.
#include <gtest/gtest.h>

#include "strata/sched/scheduler.h"
#include "test_hosts.h"

namespace strata::sched {
namespace {

using testing::host;
using testing::request;
using testing::scheduler;
using testing::snapshot;

Snapshot crowded() {
  std::vector<HostInfo> hosts;
  for (int i = 1; i <= 7; ++i) {
    HostInfo h = host("host-" + std::to_string(i), 16, 8192);
    h.allocated_memory_mib = 7168;
    hosts.push_back(h);
  }
  HostInfo down = host("host-8");
  down.state = HostState::unreachable;
  HostInfo maint = host("host-9");
  maint.state = HostState::maintenance;
  hosts.push_back(down);
  hosts.push_back(maint);
  return snapshot(hosts);
}

TEST(SchedExplanation, SummaryCountsPerFilterLargestFirst) {
  auto e = scheduler().explain(crowded(), request(1, 4096));
  ASSERT_TRUE(e);
  EXPECT_TRUE(e->candidates.empty());
  EXPECT_EQ(e->rejections.size(), 9u);
  EXPECT_EQ(e->summary(), "memory filter rejected 7 hosts, state filter rejected 2 hosts");
  EXPECT_EQ(e->rejections[2].to_string(), "host-3: memory: needs 4096 MiB, 1024 MiB free");
  EXPECT_EQ(e->rejections[7].to_string(), "host-8: state: host is unreachable");
}

TEST(SchedExplanation, NoFitErrorText) {
  auto p = scheduler().place(crowded(), request(2, 4096));
  ASSERT_FALSE(p);
  EXPECT_EQ(p.error().code, ErrorCode::resource_exhausted);
  EXPECT_EQ(p.error().message,
            "no host can take the VM (2 vCPUs, 4096 MiB): memory filter rejected 7 hosts, "
            "state filter rejected 2 hosts; "
            "host-1: memory: needs 4096 MiB, 1024 MiB free; "
            "host-2: memory: needs 4096 MiB, 1024 MiB free; "
            "host-3: memory: needs 4096 MiB, 1024 MiB free; "
            "host-4: memory: needs 4096 MiB, 1024 MiB free; "
            "host-5: memory: needs 4096 MiB, 1024 MiB free; and 4 more");
}

TEST(SchedExplanation, NoFitExamplesPreferHostsThatCameClosest) {
  HostInfo down = host("a");
  down.state = HostState::unreachable;
  HostInfo small = host("b", 1, 1024);
  auto p = scheduler().place(snapshot({down, small}), request(8, 512));
  ASSERT_FALSE(p);
  EXPECT_EQ(p.error().message,
            "no host can take the VM (8 vCPUs, 512 MiB): state filter rejected 1 host, cpu filter "
            "rejected 1 host; b: cpu: needs 8 vCPUs, 4 free (capacity 4 = 1 threads x 4, 0 "
            "allocated); a: state: host is unreachable");
}

TEST(SchedExplanation, EmptySnapshot) {
  auto p = scheduler().place(Snapshot{}, request(1, 1));
  ASSERT_FALSE(p);
  EXPECT_EQ(p.error().code, ErrorCode::resource_exhausted);
  EXPECT_EQ(p.error().message,
            "no host can take the VM (1 vCPUs, 1 MiB): the snapshot has no hosts");
}

TEST(SchedExplanation, UsesHostNames) {
  HostInfo h = host("0b7c", 1, 1024);
  h.name = "rack1-node7";
  auto e = scheduler().explain(snapshot({h}), request(1, 2048));
  ASSERT_TRUE(e);
  EXPECT_EQ(e->rejections.at(0).host_id, "0b7c");
  EXPECT_EQ(e->rejections.at(0).to_string(), "rack1-node7: memory: needs 2048 MiB, 1024 MiB free");
}

TEST(SchedExplanation, InvalidRequest) {
  auto p = scheduler().place(crowded(), request(0, 1024));
  ASSERT_FALSE(p);
  EXPECT_EQ(p.error().code, ErrorCode::invalid_argument);
  EXPECT_EQ(p.error().field, "vcpus");
  auto e = scheduler().explain(crowded(), request(1, 0));
  ASSERT_FALSE(e);
  EXPECT_EQ(e.error().field, "memory_mib");
}

TEST(SchedExplanation, DeterministicAcrossRunsAndInputOrder) {
  std::vector<HostInfo> hosts;
  for (int i = 0; i < 200; ++i) {
    HostInfo h = host("h" + std::to_string(i), 16, 32768);
    h.allocated_vcpus = (i % 4) * 8;  // many exact ties
    h.allocated_memory_mib = (i % 4) * 4096;
    hosts.push_back(h);
  }
  std::vector<HostInfo> reversed(hosts.rbegin(), hosts.rend());
  Snapshot a = snapshot(hosts);
  Snapshot b = snapshot(reversed);
  for (WeightStrategy s : {WeightStrategy::spread, WeightStrategy::pack}) {
    auto pa = scheduler(s).place(a, request(2, 2048));
    auto pb = scheduler(s).place(b, request(2, 2048));
    ASSERT_TRUE(pa && pb);
    EXPECT_EQ(pa->host_id, pb->host_id);
    EXPECT_EQ(pa->score, pb->score);
    // The smallest id among the best-loaded hosts: "h0" (spread) / "h103" (pack, i%4==3).
    EXPECT_EQ(pa->host_id, s == WeightStrategy::spread ? "h0" : "h103");
  }
}

}  // namespace
}  // namespace strata::sched
