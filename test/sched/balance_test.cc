// The balancer's plans (balance.h): moves that lower the imbalance, within the filters,
// with hysteresis and a cap.
#include "strata/sched/balance.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>

#include "test_hosts.h"

namespace strata::sched {
namespace {

using testing::host;
using testing::request;
using testing::scheduler;

// Hosts with VMs: the VMs' allocations are added to their hosts.
struct Fleet {
  std::vector<HostInfo> hosts;
  std::vector<BalanceVm> vms;
  void add_host(const std::string& id, uint32_t vcpus = 16, uint64_t mem = 65536) {
    hosts.push_back(host(id, vcpus, mem));
  }
  BalanceVm& add_vm(const std::string& name, const std::string& on, uint32_t vcpus,
                    uint64_t mem, const std::string& group = {}) {
    BalanceVm vm;
    vm.name = name;
    vm.host_id = on;
    vm.request = request(vcpus, mem);
    vm.request.anti_affinity_group = group;
    for (auto& h : hosts)
      if (h.id == on) {
        h.allocated_vcpus += vcpus;
        h.allocated_memory_mib += mem;
        if (!group.empty()) h.anti_affinity_groups.push_back(group);
      }
    vms.push_back(vm);
    return vms.back();
  }
  // Makes the last VM added a member of keep-together group `group`, as the manager hands
  // it over: the unit's name and the request's group, which its host holds.
  void together(const std::string& group) {
    BalanceVm& vm = vms.back();
    vm.together = group;
    vm.request.affinity_group = group;
    for (auto& h : hosts)
      if (h.id == vm.host_id &&
          std::find(h.affinity_groups.begin(), h.affinity_groups.end(), group) == h.affinity_groups.end())
        h.affinity_groups.push_back(group);
  }
};

TEST(BalanceTest, ImbalanceIsZeroForEvenHostsAndGrowsWithTheSpread) {
  Fleet f;
  f.add_host("a");
  f.add_host("b");
  EXPECT_DOUBLE_EQ(imbalance(f.hosts), 0);
  f.add_vm("v1", "a", 8, 32768);  // a: cpu 0.5, mem 0.5; b: 0, 0
  EXPECT_NEAR(imbalance(f.hosts), 0.25, 1e-9);
  f.add_vm("v2", "b", 8, 32768);
  EXPECT_NEAR(imbalance(f.hosts), 0, 1e-9);
  // Hosts that are not up do not count.
  f.hosts[1].state = HostState::maintenance;
  EXPECT_DOUBLE_EQ(imbalance(f.hosts), 0);
}

TEST(BalanceTest, MovesFromTheLoadedHostToTheEmptyOnesUntilEven) {
  Fleet f;
  f.add_host("a");
  f.add_host("b");
  f.add_host("c");
  for (int i = 0; i < 6; ++i) f.add_vm("v" + std::to_string(i), "a", 2, 8192);
  auto plan = plan_balance(scheduler(), f.hosts, f.vms, {});
  ASSERT_TRUE(plan) << plan.error().to_string();
  ASSERT_EQ(plan->moves.size(), 4u) << "two VMs to each other host";
  int to_b = 0, to_c = 0;
  for (const auto& m : plan->moves) {
    EXPECT_EQ(m.from_host_id, "a");
    to_b += m.to_host_id == "b";
    to_c += m.to_host_id == "c";
    EXPECT_LT(m.imbalance_after, m.imbalance_before);
    EXPECT_EQ(m.memory_mib, 8192u);
  }
  EXPECT_EQ(to_b, 2);
  EXPECT_EQ(to_c, 2);
  EXPECT_GT(plan->imbalance, 0.2);
  EXPECT_NEAR(plan->imbalance_after, 0, 1e-9);
  EXPECT_EQ(plan->stopped, "balanced");
}

TEST(BalanceTest, HysteresisLeavesANearlyEvenFleetAlone) {
  Fleet f;
  f.add_host("a");
  f.add_host("b");
  f.add_vm("v1", "a", 2, 8192);
  f.add_vm("v2", "a", 1, 4096);
  f.add_vm("v3", "b", 2, 8192);
  // a holds 4 GiB more than b: imbalance ~0.047, under the default 0.10.
  auto plan = plan_balance(scheduler(), f.hosts, f.vms, {});
  ASSERT_TRUE(plan);
  EXPECT_TRUE(plan->moves.empty());
  EXPECT_EQ(plan->stopped, "balanced");
  // With no floor, moving v2 only swaps which host is heavier: no gain, no move.
  BalanceConfig eager;
  eager.min_imbalance = 0;
  plan = plan_balance(scheduler(), f.hosts, f.vms, eager);
  ASSERT_TRUE(plan);
  EXPECT_TRUE(plan->moves.empty());
  EXPECT_EQ(plan->stopped, "no_gain");
}

TEST(BalanceTest, RespectsTheCapAndMovesAVmAtMostOnce) {
  Fleet f;
  for (const char* h : {"a", "b", "c", "d"}) f.add_host(h);
  for (int i = 0; i < 12; ++i) f.add_vm("v" + std::to_string(i), "a", 1, 4096);
  BalanceConfig cfg;
  cfg.max_moves = 2;
  auto plan = plan_balance(scheduler(), f.hosts, f.vms, cfg);
  ASSERT_TRUE(plan);
  EXPECT_EQ(plan->moves.size(), 2u);
  EXPECT_EQ(plan->stopped, "max_moves");
  EXPECT_NE(plan->moves[0].vm, plan->moves[1].vm);
}

TEST(BalanceTest, NeverProposesWhatTheFiltersRefuse) {
  Fleet f;
  f.add_host("a");
  f.add_host("b");
  f.add_host("small", 16, 4096);  // memory: takes nothing of 8 GiB
  f.hosts[1].labels["zone"] = "z2";
  // Anti-affinity: web-1 cannot join web-2 on b.
  f.add_vm("web-1", "a", 2, 8192, "web");
  f.add_vm("web-2", "b", 2, 8192, "web");
  // A node selector that only a matches.
  f.hosts[0].labels["zone"] = "z1";
  auto& db = f.add_vm("db", "a", 4, 16384);
  db.request.node_selector["zone"] = "z1";
  // Not movable (a pinned VM, say).
  f.add_vm("pinned", "a", 4, 16384).movable = false;
  f.add_vm("app", "a", 2, 8192);
  BalanceConfig cfg;
  cfg.min_imbalance = 0;
  cfg.min_gain = 0.001;
  auto plan = plan_balance(scheduler(), f.hosts, f.vms, cfg);
  ASSERT_TRUE(plan) << plan.error().to_string();
  ASSERT_FALSE(plan->moves.empty());
  for (const auto& m : plan->moves) {
    EXPECT_NE(m.vm, "pinned");
    EXPECT_NE(m.vm, "db") << "its selector keeps it on a";
    EXPECT_NE(m.to_host_id, "small") << m.vm << " does not fit there";
    if (m.vm == "web-1") ADD_FAILURE() << "web-1 would join web-2 on " << m.to_host_id;
  }
  EXPECT_EQ(plan->moves[0].vm, "app");
  EXPECT_EQ(plan->moves[0].to_host_id, "b");
}

TEST(BalanceTest, AMoveCarriesItsAntiAffinityGroupToItsTarget) {
  Fleet f;
  f.add_host("a");
  f.add_host("b");
  // Two of group g on a (placed before the group was set, say). The first move takes g1
  // to b; the second must not take g2 there too, although by name it would come first.
  f.add_vm("g1", "a", 2, 8192, "g");
  f.add_vm("g2", "a", 2, 8192, "g");
  f.add_vm("x1", "a", 2, 8192);
  f.add_vm("x2", "a", 2, 8192);
  auto plan = plan_balance(scheduler(), f.hosts, f.vms, {});
  ASSERT_TRUE(plan) << plan.error().to_string();
  ASSERT_EQ(plan->moves.size(), 2u);
  EXPECT_EQ(plan->moves[0].vm, "g1");
  EXPECT_EQ(plan->moves[1].vm, "x1") << "g2 would join g1 on b";
  EXPECT_EQ(plan->stopped, "balanced");
}

TEST(BalanceTest, AKeepTogetherGroupMovesAsOneUnitToOneTarget) {
  Fleet f;
  f.add_host("a");
  f.add_host("b");
  // a: a group of two (4 vCPUs, 16 GiB together) and two loners; b: empty.
  f.add_vm("t2", "a", 2, 8192);
  f.together("web");
  f.add_vm("t1", "a", 2, 8192);
  f.together("web");
  f.add_vm("x1", "a", 2, 8192);
  f.add_vm("x2", "a", 2, 8192);
  auto plan = plan_balance(scheduler(), f.hosts, f.vms, {});
  ASSERT_TRUE(plan) << plan.error().to_string();
  // Moving the group (16 GiB) evens the fleet in one move, as two loners would in two.
  ASSERT_EQ(plan->moves.size(), 1u);
  const auto& m = plan->moves[0];
  EXPECT_EQ(m.vm, "t1") << "a group's move is named by its first VM by name";
  EXPECT_EQ(m.together_with, std::vector<std::string>{"t2"});
  EXPECT_EQ(m.to_host_id, "b");
  EXPECT_EQ(m.memory_mib, 16384u) << "what the move copies: both VMs' memory";
  EXPECT_NEAR(plan->imbalance_after, 0, 1e-9);
  EXPECT_EQ(plan->stopped, "balanced");
}

TEST(BalanceTest, AGroupStaysWithAMemberThatMustAndGoesOnlyWhereEveryMemberMay) {
  Fleet f;
  f.add_host("a", 16, 65536);
  f.add_host("b", 16, 65536);
  f.add_host("c", 16, 65536);
  // a is full of one group; one member is pinned: none of them moves, the loner does.
  f.add_vm("p1", "a", 4, 16384);
  f.together("db");
  f.add_vm("p2", "a", 4, 16384);
  f.together("db");
  f.add_vm("p3", "a", 4, 16384);
  f.together("db");
  f.vms.back().movable = false;
  f.add_vm("x", "a", 4, 16384);
  auto plan = plan_balance(scheduler(), f.hosts, f.vms, {});
  ASSERT_TRUE(plan) << plan.error().to_string();
  ASSERT_EQ(plan->moves.size(), 1u);
  EXPECT_EQ(plan->moves[0].vm, "x");

  // A target must pass every member's own filters: b would be the best target for the
  // group, but g2's anti-affinity group is there already, so the group goes to c whole
  // (neither member alone to b).
  Fleet g;
  g.add_host("a");
  g.add_host("b");
  g.add_host("c");
  g.add_vm("g1", "a", 2, 8192);
  g.together("web");
  g.add_vm("g2", "a", 2, 8192, "z");
  g.together("web");
  for (int i = 0; i < 4; ++i) g.add_vm("x" + std::to_string(i), "a", 2, 8192);
  g.add_vm("z1", "b", 1, 512, "z");
  g.add_vm("y", "c", 1, 2048);
  plan = plan_balance(scheduler(), g.hosts, g.vms, {});
  ASSERT_TRUE(plan) << plan.error().to_string();
  ASSERT_FALSE(plan->moves.empty());
  EXPECT_EQ(plan->moves[0].vm, "g1");
  EXPECT_EQ(plan->moves[0].together_with, std::vector<std::string>{"g2"});
  EXPECT_EQ(plan->moves[0].to_host_id, "c");
  for (const auto& m : plan->moves) EXPECT_NE(m.vm, "g2") << "g2 only moves with g1";
}

TEST(BalanceTest, RefusesABadConfigAndAVmOnAnUnknownHost) {
  Fleet f;
  f.add_host("a");
  f.add_host("b");
  BalanceConfig bad;
  bad.max_moves = 0;
  auto plan = plan_balance(scheduler(), f.hosts, f.vms, bad);
  ASSERT_FALSE(plan);
  EXPECT_EQ(plan.error().field, "max_moves");
  bad = {};
  bad.min_gain = 0;
  EXPECT_EQ(plan_balance(scheduler(), f.hosts, f.vms, bad).error().field, "min_gain");
  f.vms.push_back(BalanceVm{"lost", "nowhere", request(1, 512), true, 0, {}});
  plan = plan_balance(scheduler(), f.hosts, f.vms, {});
  ASSERT_FALSE(plan);
  EXPECT_EQ(plan.error().field, "vms[0].host_id");
}

TEST(BalanceTest, OneHostUpIsNothingToBalance) {
  Fleet f;
  f.add_host("a");
  f.add_host("b");
  f.hosts[1].state = HostState::unreachable;
  f.add_vm("v", "a", 8, 32768);
  auto plan = plan_balance(scheduler(), f.hosts, f.vms, {});
  ASSERT_TRUE(plan);
  EXPECT_TRUE(plan->moves.empty());
  EXPECT_EQ(plan->stopped, "no_hosts");
}

}  // namespace
}  // namespace strata::sched
