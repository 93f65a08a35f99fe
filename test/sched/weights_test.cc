// Weight strategies: spread prefers the emptiest host, pack the fullest that still fits,
// scores are in 0..100, ties go to the smaller host id.
#include <gtest/gtest.h>

#include <cmath>

#include "strata/sched/scheduler.h"
#include "test_hosts.h"

namespace strata::sched {
namespace {

using testing::host;
using testing::request;
using testing::scheduler;
using testing::snapshot;

Snapshot three_loads() {
  HostInfo empty = host("a", 16, 16384);
  HostInfo half = host("b", 16, 16384);
  half.allocated_vcpus = 32;
  half.allocated_memory_mib = 8192;
  HostInfo full = host("c", 16, 16384);
  full.allocated_vcpus = 56;
  full.allocated_memory_mib = 14336;
  return snapshot({half, full, empty});
}

TEST(SchedWeights, SpreadPrefersMostFree) {
  auto p = scheduler(WeightStrategy::spread).place(three_loads(), request(2, 1024));
  ASSERT_TRUE(p);
  EXPECT_EQ(p->host_id, "a");
  // After placement: cpu 2/64 used, memory 1024/16384 used.
  EXPECT_NEAR(p->score, 50.0 * ((1 - 2.0 / 64) + (1 - 1024.0 / 16384)), 1e-9);
}

TEST(SchedWeights, PackPrefersLeastLeftOver) {
  auto p = scheduler(WeightStrategy::pack).place(three_loads(), request(2, 1024));
  ASSERT_TRUE(p);
  EXPECT_EQ(p->host_id, "c");
  // Stranding grows from 0 to |58/64 - 15360/16384|; left free: cpu 6/64, memory 1024/16384.
  double cost = std::abs(58.0 / 64 - 15360.0 / 16384) + 0.01 * (6.0 / 64 + 1024.0 / 16384);
  EXPECT_NEAR(p->score, 100.0 * (1 - (1 + cost) / 2.02), 1e-9);
  // A request that no longer fits the fullest host goes to the next fullest.
  auto q = scheduler(WeightStrategy::pack).place(three_loads(), request(2, 4096));
  ASSERT_TRUE(q);
  EXPECT_EQ(q->host_id, "b");
}

TEST(SchedWeights, PackAvoidsStrandingBeforeFullness) {
  // Both hosts end equally full by the sum of used fractions (a tie for plain best fit).
  // A CPU-heavy VM on "a" (CPU already busier than memory) would leave memory that no
  // CPU can match; on "b" (memory busier) it levels the host.
  HostInfo a = host("a", 16, 16384);
  a.allocated_vcpus = 32;  // cpu 0.5 of 64, memory 0.25
  a.allocated_memory_mib = 4096;
  HostInfo b = host("b", 16, 16384);
  b.allocated_vcpus = 16;  // cpu 0.25, memory 0.5
  b.allocated_memory_mib = 8192;
  auto p = scheduler(WeightStrategy::pack).place(snapshot({a, b}), request(8, 1024));
  ASSERT_TRUE(p);
  EXPECT_EQ(p->host_id, "b");
}

TEST(SchedWeights, PackLevelsLopsidedHostEvenIfAnotherIsFuller) {
  HostInfo a = host("a", 16, 65536);  // idle CPU, half the memory used
  a.allocated_memory_mib = 32768;
  HostInfo b = host("b", 16, 65536);  // fuller overall, balanced
  b.allocated_vcpus = 24;
  b.allocated_memory_mib = 24576;
  auto p = scheduler(WeightStrategy::pack).place(snapshot({a, b}), request(16, 1024));
  ASSERT_TRUE(p);
  EXPECT_EQ(p->host_id, "a");
  // A VM shaped like the host adds no stranding anywhere: the fuller host wins.
  auto q = scheduler(WeightStrategy::pack).place(snapshot({a, b}), request(4, 4096));
  ASSERT_TRUE(q);
  EXPECT_EQ(q->host_id, "b");
}

TEST(SchedWeights, TiesGoToSmallerHostIdWhateverTheInputOrder) {
  for (WeightStrategy s : {WeightStrategy::spread, WeightStrategy::pack}) {
    auto p = scheduler(s).place(snapshot({host("n3"), host("n1"), host("n2")}), request(1, 512));
    ASSERT_TRUE(p);
    EXPECT_EQ(p->host_id, "n1");
    auto e = scheduler(s).explain(snapshot({host("n3"), host("n1"), host("n2")}), request(1, 512));
    ASSERT_TRUE(e);
    ASSERT_EQ(e->candidates.size(), 3u);
    EXPECT_EQ(e->candidates[0].host_id, "n1");
    EXPECT_EQ(e->candidates[1].host_id, "n2");
    EXPECT_EQ(e->candidates[2].host_id, "n3");
  }
}

TEST(SchedWeights, ScoresStayInRange) {
  HostInfo exact = host("a", 1, 1024);  // the request fills it exactly
  for (WeightStrategy s : {WeightStrategy::spread, WeightStrategy::pack}) {
    auto p = scheduler(s, 1.0).place(snapshot({exact}), request(1, 1024));
    ASSERT_TRUE(p);
    // pack: no stranding added, nothing left free (cost 0 on a -1..1.02 scale).
    EXPECT_NEAR(p->score, s == WeightStrategy::spread ? 0.0 : 100.0 * (1 - 1 / 2.02), 1e-9);
    auto q = scheduler(s, 1.0).place(snapshot({host("b", 1000000, 1ull << 30)}), request(1, 1));
    ASSERT_TRUE(q);
    EXPECT_GE(q->score, 0.0);
    EXPECT_LE(q->score, 100.0);
  }
}

TEST(SchedWeights, ExplainRanksLikePlace) {
  std::vector<HostInfo> hosts;
  for (int i = 0; i < 50; ++i) {
    HostInfo h = host("h" + std::to_string(i), 8 + (i * 7) % 24, 8192 + (i * 3331) % 60000);
    h.allocated_vcpus = (i * 13) % 20;
    h.allocated_memory_mib = (i * 977) % 8000;
    hosts.push_back(h);
  }
  Snapshot snap = snapshot(hosts);
  for (WeightStrategy s : {WeightStrategy::spread, WeightStrategy::pack}) {
    auto p = scheduler(s).place(snap, request(3, 3000));
    auto e = scheduler(s).explain(snap, request(3, 3000));
    ASSERT_TRUE(p && e);
    ASSERT_FALSE(e->candidates.empty());
    EXPECT_EQ(e->candidates[0].host_id, p->host_id);
    EXPECT_DOUBLE_EQ(e->candidates[0].score, p->score);
    for (size_t i = 1; i < e->candidates.size(); ++i) {
      EXPECT_GE(e->candidates[i - 1].score, e->candidates[i].score);
    }
  }
}

TEST(SchedWeights, ConfigIsValidated) {
  EXPECT_FALSE(Scheduler::create({0.0, 1.0, WeightStrategy::spread}));
  EXPECT_FALSE(Scheduler::create({4.0, -1.0, WeightStrategy::spread}));
  EXPECT_FALSE(Scheduler::create({std::nan(""), 1.0, WeightStrategy::spread}));
  auto bad = Scheduler::create({4.0, 0.0, WeightStrategy::pack});
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, ErrorCode::invalid_argument);
  EXPECT_EQ(bad.error().field, "mem_overcommit");
  SchedulerConfig defaults;
  EXPECT_EQ(defaults.cpu_overcommit, 4.0);
  EXPECT_EQ(defaults.mem_overcommit, 1.0);
  EXPECT_EQ(defaults.strategy, WeightStrategy::spread);
  EXPECT_EQ(weight_strategy_from_string("pack"), WeightStrategy::pack);
  EXPECT_EQ(weight_strategy_from_string("spread"), WeightStrategy::spread);
  EXPECT_FALSE(weight_strategy_from_string("random"));
}

}  // namespace
}  // namespace strata::sched
