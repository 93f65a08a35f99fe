// Each filter alone: it rejects the host it should, with the reason it should, and place()
// agrees with explain().
#include <gtest/gtest.h>

#include "strata/sched/scheduler.h"
#include "test_hosts.h"

namespace strata::sched {
namespace {

using testing::host;
using testing::rejection_of;
using testing::request;
using testing::scheduler;
using testing::snapshot;

// Explains `req` and expects exactly `rejected` to be rejected by `filter`, `chosen` placed.
void expect_only(const Snapshot& snap, const PlacementRequest& req, const std::string& rejected,
                 Filter filter, const std::string& reason, const std::string& chosen,
                 const Scheduler& s = scheduler()) {
  Result<Explanation> e = s.explain(snap, req);
  ASSERT_TRUE(e) << e.error().to_string();
  ASSERT_EQ(e->rejections.size(), 1u);
  const Rejection* r = rejection_of(*e, rejected);
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->filter, filter);
  EXPECT_EQ(r->reason, reason);
  EXPECT_EQ(e->rejected_by[static_cast<size_t>(filter)], 1u);
  Result<Plan> p = s.place(snap, req);
  ASSERT_TRUE(p) << p.error().to_string();
  EXPECT_EQ(p->host_id, chosen);
}

TEST(SchedFilters, StateRejectsUnreachableAndMaintenance) {
  HostInfo down = host("a");
  down.state = HostState::unreachable;
  expect_only(snapshot({down, host("b")}), request(1, 512), "a", Filter::state,
              "host is unreachable", "b");
  HostInfo maint = host("a");
  maint.state = HostState::maintenance;
  expect_only(snapshot({maint, host("b")}), request(1, 512), "a", Filter::state,
              "host is in maintenance", "b");
}

TEST(SchedFilters, ArchMustEqualWhenRequested) {
  HostInfo arm = host("a");
  arm.arch = "aarch64";
  PlacementRequest req = request(1, 512);
  req.arch = "x86_64";
  expect_only(snapshot({arm, host("b")}), req, "a", Filter::arch,
              "host arch is aarch64, request needs x86_64", "b");
  // No arch in the request: both hosts qualify, the first (by id) wins the tie.
  auto p = scheduler().place(snapshot({arm, host("b")}), request(1, 512));
  ASSERT_TRUE(p);
  EXPECT_EQ(p->host_id, "a");
}

TEST(SchedFilters, ArchUnknownToSnapshotRejectsAll) {
  PlacementRequest req = request(1, 512);
  req.arch = "riscv64";
  auto e = scheduler().explain(snapshot({host("a")}), req);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->rejections.at(0).reason, "host arch is x86_64, request needs riscv64");
}

TEST(SchedFilters, AcceleratorRequirement) {
  HostInfo tcg = host("a");
  tcg.accelerator = Accelerator::tcg;
  PlacementRequest req = request(1, 512);
  req.accelerator = AcceleratorRequirement::kvm;
  expect_only(snapshot({tcg, host("b")}), req, "a", Filter::accelerator,
              "host accelerator is tcg, request needs kvm", "b");
  req.accelerator = AcceleratorRequirement::tcg;
  expect_only(snapshot({tcg, host("b")}), req, "b", Filter::accelerator,
              "host accelerator is kvm, request needs tcg", "a");
}

TEST(SchedFilters, SelectorAllPairsMustMatch) {
  HostInfo a = host("a");
  a.labels = {{"zone", "z1"}, {"ssd", "true"}};
  HostInfo b = host("b");
  b.labels = {{"zone", "z2"}, {"ssd", "true"}};
  HostInfo c = host("c");
  c.labels = {{"zone", "z1"}};
  PlacementRequest req = request(1, 512);
  req.node_selector = {{"zone", "z1"}, {"ssd", "true"}};
  auto e = scheduler().explain(snapshot({a, b, c}), req);
  ASSERT_TRUE(e);
  ASSERT_EQ(e->rejections.size(), 2u);
  EXPECT_EQ(rejection_of(*e, "b")->reason, "label zone=z2, request needs zone=z1");
  EXPECT_EQ(rejection_of(*e, "c")->reason, "label ssd missing, request needs ssd=true");
  EXPECT_EQ(e->rejected_by[static_cast<size_t>(Filter::selector)], 2u);
  auto p = scheduler().place(snapshot({a, b, c}), req);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->host_id, "a");
}

TEST(SchedFilters, SelectorValueUnknownToSnapshotRejectsAll) {
  HostInfo a = host("a");
  a.labels = {{"zone", "z1"}};
  PlacementRequest req = request(1, 512);
  req.node_selector = {{"zone", "nowhere"}};
  auto p = scheduler().place(snapshot({a}), req);
  ASSERT_FALSE(p);
  EXPECT_EQ(p.error().code, ErrorCode::resource_exhausted);
  EXPECT_NE(p.error().message.find("a: selector: label zone=z1, request needs zone=nowhere"),
            std::string::npos)
      << p.error().message;
}

TEST(SchedFilters, AntiAffinityKeepsGroupMembersApart) {
  HostInfo a = host("a");
  a.anti_affinity_groups = {"web"};
  PlacementRequest req = request(1, 512);
  req.anti_affinity_group = "web";
  expect_only(snapshot({a, host("b")}), req, "a", Filter::anti_affinity,
              "a VM of anti-affinity group web already runs on this host", "b");
  // Another group is unaffected.
  req.anti_affinity_group = "db";
  auto p = scheduler().place(snapshot({a, host("b")}), req);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->host_id, "a");
}

TEST(SchedFilters, AntiAffinityAcrossManyMembers) {
  // Members on every other host: the sorted-walk in the hot loop must agree with explain().
  std::vector<HostInfo> hosts;
  for (int i = 0; i < 20; ++i) {
    HostInfo h = host("h" + std::to_string(100 + i));
    h.allocated_vcpus = static_cast<uint32_t>(i);  // later hosts fuller, evenly
    h.allocated_memory_mib = static_cast<uint64_t>(i) * 1024;
    if (i % 2 == 0 || i == 19) h.anti_affinity_groups = {"g"};
    hosts.push_back(h);
  }
  PlacementRequest req = request(1, 512);
  req.anti_affinity_group = "g";
  Snapshot snap = snapshot(hosts);
  auto spread = scheduler(WeightStrategy::spread).place(snap, req);
  auto pack = scheduler(WeightStrategy::pack).place(snap, req);
  ASSERT_TRUE(spread && pack);
  EXPECT_EQ(spread->host_id, "h101");
  EXPECT_EQ(pack->host_id, "h117");
  auto e = scheduler().explain(snap, req);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->rejected_by[static_cast<size_t>(Filter::anti_affinity)], 11u);
}

TEST(SchedFilters, AvoidKeepsOffHostsCarryingEveryLabel) {
  HostInfo old = host("a");
  old.labels = {{"tier", "old"}, {"zone", "z1"}};
  HostInfo half = host("b");
  half.labels = {{"tier", "old"}};  // one of the two labels only: not avoided
  PlacementRequest req = request(1, 512);
  req.avoid_selector = {{"tier", "old"}, {"zone", "z1"}};
  expect_only(snapshot({old, half}), req, "a", Filter::avoid,
              "the VM keeps off hosts labelled tier=old,zone=z1", "b");
  // A label no host carries avoids nothing.
  req.avoid_selector = {{"tier", "ancient"}};
  auto e = scheduler().explain(snapshot({old, half}), req);
  ASSERT_TRUE(e);
  EXPECT_TRUE(e->rejections.empty());
}

TEST(SchedFilters, AffinityKeepsTheGroupWhereItRuns) {
  HostInfo holder = host("b");
  holder.affinity_groups = {"db"};
  holder.allocated_vcpus = 8;  // busier: spread alone would choose a
  PlacementRequest req = request(1, 512);
  req.affinity_group = "db";
  expect_only(snapshot({host("a"), holder}), req, "a", Filter::affinity,
              "keep-together group db runs on b", "b");
  // The first of a group goes anywhere (the least loaded host).
  PlacementRequest first = request(1, 512);
  first.affinity_group = "web";
  auto p = scheduler().place(snapshot({host("a"), holder}), first);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->host_id, "a");
  // Its host failed or is drained: the group follows its first VM anywhere.
  holder.state = HostState::maintenance;
  auto e = scheduler().explain(snapshot({host("a"), holder, host("c")}), req);
  ASSERT_TRUE(e);
  ASSERT_EQ(e->rejections.size(), 1u);
  EXPECT_EQ(e->rejections[0].filter, Filter::state);
  EXPECT_EQ(e->candidates.size(), 2u);
  // Where the group runs but the VM does not fit, it does not go elsewhere.
  HostInfo full = host("b", 1, 1024);
  full.affinity_groups = {"db"};
  full.allocated_vcpus = 4;
  auto none = scheduler().place(snapshot({host("a"), full}), req);
  ASSERT_FALSE(none);
  EXPECT_NE(none.error().message.find("affinity filter rejected 1 host"), std::string::npos)
      << none.error().message;
}

TEST(SchedFilters, AGroupCannotBeKeptTogetherAndApart) {
  PlacementRequest req = request(1, 512);
  req.affinity_group = req.anti_affinity_group = "g";
  auto p = scheduler().place(snapshot({host("a")}), req);
  ASSERT_FALSE(p);
  EXPECT_EQ(p.error().field, "affinity_group");
}

TEST(SchedFilters, CpuHonoursOvercommit) {
  HostInfo a = host("a", 4, 65536);
  a.allocated_vcpus = 14;  // capacity 16 at 4.0
  expect_only(snapshot({a, host("b")}), request(3, 512), "a", Filter::cpu,
              "needs 3 vCPUs, 2 free (capacity 16 = 4 threads x 4, 14 allocated)", "b");
  // Exactly filling the capacity is allowed.
  auto p = scheduler().place(snapshot({a}), request(2, 512));
  ASSERT_TRUE(p);
  // Without overcommit the same host is full already.
  auto strict = scheduler(WeightStrategy::spread, 1.0).place(snapshot({a}), request(1, 512));
  ASSERT_FALSE(strict);
  EXPECT_NE(strict.error().message.find(
                "a: cpu: needs 1 vCPUs, 0 free (capacity 4 = 4 threads x 1, 14 allocated)"),
            std::string::npos)
      << strict.error().message;
  // Fractional ratios floor the capacity in the text and compare exactly in the filter.
  auto half =
      scheduler(WeightStrategy::spread, 1.5).place(snapshot({host("c", 3)}), request(4, 512));
  ASSERT_TRUE(half);  // 4 <= 4.5
  auto over =
      scheduler(WeightStrategy::spread, 1.5).place(snapshot({host("c", 3)}), request(5, 512));
  ASSERT_FALSE(over);
  EXPECT_NE(over.error().message.find("capacity 4 = 3 threads x 1.5"), std::string::npos)
      << over.error().message;
}

TEST(SchedFilters, MigrationTargetMustOfferTheVmsCpu) {
  HostInfo old_host = host("old");
  old_host.cpu_offers = {"Nehalem-v1", "Westmere-v1", "cpu-sig:aaaa"};
  HostInfo new_host = host("new");
  new_host.cpu_offers = {"Haswell-v4", "Nehalem-v1", "Westmere-v1", "cpu-sig:bbbb"};
  HostInfo unprobed = host("unprobed");  // reports no CPU: takes no CPU-bound VM
  PlacementRequest req = request(1, 512);
  req.cpu_model = "Haswell-v4";
  Result<Explanation> e = scheduler().explain(snapshot({old_host, new_host, unprobed}), req);
  ASSERT_TRUE(e) << e.error().to_string();
  ASSERT_EQ(e->rejections.size(), 2u);
  for (const char* h : {"old", "unprobed"}) {
    const Rejection* r = rejection_of(*e, h);
    ASSERT_NE(r, nullptr) << h;
    EXPECT_EQ(r->filter, Filter::cpu_model);
    EXPECT_EQ(r->reason, "cannot offer CPU model Haswell-v4 (the VM runs with it)");
  }
  auto p = scheduler().place(snapshot({old_host, new_host, unprobed}), req);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->host_id, "new");
  // A VM started with host/max moves only to a host with the same CPU signature.
  req.cpu_model = "cpu-sig:aaaa";
  p = scheduler().place(snapshot({old_host, new_host, unprobed}), req);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->host_id, "old");
  req.cpu_model = "cpu-sig:cccc";
  auto none = scheduler().place(snapshot({old_host, new_host}), req);
  ASSERT_FALSE(none);
  EXPECT_NE(none.error().message.find("CPU differs"), std::string::npos) << none.error().message;
  // No CPU asked (a new VM, a cold move): every host.
  req.cpu_model.clear();
  EXPECT_TRUE(scheduler().place(snapshot({unprobed}), req));
  EXPECT_EQ(snapshot({new_host}).host(0).cpu_offers, new_host.cpu_offers);
  EXPECT_EQ(to_string(Filter::cpu_model), "cpu-model");
}

TEST(SchedFilters, DatastoreMustBeMounted) {
  HostInfo a = host("a");
  HostInfo b = host("b");
  b.datastores = {"shared@u1", "other@u2"};
  HostInfo c = host("c");
  c.datastores = {"shared@u9"};  // another storage under the same name
  PlacementRequest req = request(1, 512);
  req.datastores = {"shared@u1"};
  Result<Explanation> e = scheduler().explain(snapshot({a, b, c}), req);
  ASSERT_TRUE(e) << e.error().to_string();
  ASSERT_EQ(e->rejections.size(), 2u);
  for (const char* h : {"a", "c"}) {
    const Rejection* r = rejection_of(*e, h);
    ASSERT_NE(r, nullptr) << h;
    EXPECT_EQ(r->filter, Filter::datastore);
    EXPECT_EQ(r->reason, "does not mount datastore shared@u1 (the VM's disks are there)");
  }
  auto p = scheduler().place(snapshot({a, b, c}), req);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->host_id, "b");
  // Two datastores: the host must mount both.
  req.datastores = {"shared@u1", "other@u2"};
  p = scheduler().place(snapshot({a, b, c}), req);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->host_id, "b");
  // A datastore no host mounts: nothing fits, and the message says why.
  req.datastores = {"gone@u3"};
  auto none = scheduler().place(snapshot({a, b, c}), req);
  ASSERT_FALSE(none);
  EXPECT_NE(none.error().message.find("datastore gone@u3"), std::string::npos)
      << none.error().message;
  // The snapshot gives the datastores back.
  EXPECT_EQ(snapshot({a, b, c}).host(1).datastores,
            (std::vector<std::string>{"other@u2", "shared@u1"}));
}

TEST(SchedFilters, BridgeNicsNeedTheBridgeAndVlanNicsItsFiltering) {
  HostInfo a = host("a");  // no bridge at all
  HostInfo b = host("b");  // br0, but its kernel cannot filter VLANs
  b.networks = {network_token("br0", false)};
  HostInfo c = host("c");  // br0 with VLANs, and br1
  c.networks = {network_token("br0", false), network_token("br0", true),
                network_token("br1", false)};
  EXPECT_EQ(network_token("br0", true), "bridge-vlan:br0");

  PlacementRequest req = request(1, 512);
  req.networks = {network_token("br0", false)};
  expect_only(snapshot({a, b}), req, "a", Filter::network,
              "has no bridge br0 (a NIC of the VM joins it)", "b");

  // A NIC on a VLAN: b has the bridge but cannot tag, so only c takes the VM.
  req.networks = {network_token("br0", true)};
  Result<Explanation> e = scheduler().explain(snapshot({a, b, c}), req);
  ASSERT_TRUE(e) << e.error().to_string();
  ASSERT_EQ(e->rejections.size(), 2u);
  EXPECT_EQ(rejection_of(*e, "a")->reason,
            "has no bridge br0 (a NIC of the VM joins it on a VLAN)");
  EXPECT_EQ(rejection_of(*e, "b")->filter, Filter::network);
  EXPECT_EQ(rejection_of(*e, "b")->reason,
            "bridge br0 cannot put a NIC on a VLAN (the host's kernel has no bridge VLAN "
            "filtering, CONFIG_BRIDGE_VLAN_FILTERING)");
  auto p = scheduler().place(snapshot({a, b, c}), req);
  ASSERT_TRUE(p) << p.error().to_string();
  EXPECT_EQ(p->host_id, "c");

  // Two bridges: the host needs both.
  req.networks = {network_token("br0", false), network_token("br1", false)};
  p = scheduler().place(snapshot({a, b, c}), req);
  ASSERT_TRUE(p) << p.error().to_string();
  EXPECT_EQ(p->host_id, "c");

  // A bridge no host has: nothing fits, and the message names it.
  req.networks = {network_token("br9", false)};
  auto none = scheduler().place(snapshot({a, b, c}), req);
  ASSERT_FALSE(none);
  EXPECT_NE(none.error().message.find("has no bridge br9"), std::string::npos)
      << none.error().message;
  EXPECT_EQ(to_string(Filter::network), "network");
  EXPECT_EQ(snapshot({a, b, c}).host(2).networks,
            (std::vector<std::string>{"bridge-vlan:br0", "bridge:br0", "bridge:br1"}));  // sorted
}

TEST(SchedFilters, MemoryHonoursOvercommit) {
  HostInfo a = host("host-3", 16, 8192);
  a.allocated_memory_mib = 7168;
  expect_only(snapshot({a, host("host-4")}), request(1, 4096), "host-3", Filter::memory,
              "needs 4096 MiB, 1024 MiB free", "host-4");
  // At 1.5 the host has 12288 MiB to give, 5120 free.
  auto s = scheduler(WeightStrategy::spread, 4.0, 1.5);
  auto p = s.place(snapshot({a}), request(1, 4096));
  ASSERT_TRUE(p);
  auto no = s.place(snapshot({a}), request(1, 6144));
  ASSERT_FALSE(no);
  EXPECT_NE(
      no.error().message.find(
          "host-3: memory: needs 6144 MiB, 5120 MiB free (capacity 12288 MiB = 8192 MiB x 1.5)"),
      std::string::npos)
      << no.error().message;
}

TEST(SchedFilters, OverAllocatedHostReportsZeroFree) {
  HostInfo a = host("a", 16, 8192);
  a.allocated_memory_mib = 9000;  // more than capacity (ratio lowered since)
  auto e = scheduler().explain(snapshot({a}), request(1, 1));
  ASSERT_TRUE(e);
  EXPECT_EQ(e->rejections.at(0).reason, "needs 1 MiB, 0 MiB free");
}

TEST(SchedFilters, PinConsidersOnlyThatHost) {
  Snapshot snap = snapshot({host("a", 64), host("b", 8), host("c", 64)});
  PlacementRequest req = request(1, 512);
  req.pinned_host = "b";
  auto p = scheduler().place(snap, req);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->host_id, "b");
  auto e = scheduler().explain(snap, req);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->rejected_by[static_cast<size_t>(Filter::pin)], 2u);
  EXPECT_EQ(rejection_of(*e, "a")->reason, "request is pinned to host b");
  // The pinned host still goes through every other filter.
  req.vcpus = 33;  // 8 threads x 4 = 32
  auto no = scheduler().place(snap, req);
  ASSERT_FALSE(no);
  EXPECT_EQ(no.error().code, ErrorCode::resource_exhausted);
  EXPECT_NE(no.error().message.find("b: cpu: needs 33 vCPUs, 32 free"), std::string::npos)
      << no.error().message;
  EXPECT_NE(no.error().message.find("pin filter rejected 2 hosts, cpu filter rejected 1 host"),
            std::string::npos)
      << no.error().message;
}

TEST(SchedFilters, PinToUnknownHost) {
  PlacementRequest req = request(1, 512);
  req.pinned_host = "ghost";
  auto p = scheduler().place(snapshot({host("a")}), req);
  ASSERT_FALSE(p);
  EXPECT_EQ(p.error().code, ErrorCode::resource_exhausted);
  EXPECT_NE(p.error().message.find("pinned host ghost is not known"), std::string::npos);
}

TEST(SchedFilters, FirstFailingFilterIsReported) {
  HostInfo a = host("a", 1, 256);
  a.state = HostState::maintenance;
  a.arch = "aarch64";
  PlacementRequest req = request(64, 65536);
  req.arch = "x86_64";
  auto e = scheduler().explain(snapshot({a}), req);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->rejections.at(0).filter, Filter::state);
}

}  // namespace
}  // namespace strata::sched
