// AllocationCache bookkeeping, and PlacementService on a real SQLite store: decisions
// from the cache match what the store holds, the cache follows creates/moves/deletes, and
// load() rebuilds it after a restart (a fresh service over the same store).
#include "strata/manager/controllers/allocation_cache.h"

#include <gtest/gtest.h>

#include "strata/manager/controllers/placement.h"
#include "strata/manager/api/vm_rest.h"

namespace strata::manager {
namespace {

TEST(AllocationCache, SumsPerHostAndFollowsMovesAndRemoval) {
  AllocationCache c;
  c.set("vm1", {"h1", 2, 512, "web", ""});
  c.set("vm2", {"h1", 1, 256, "web", ""});
  c.set("vm3", {"h2", 4, 1024, "", ""});
  ASSERT_NE(c.host("h1"), nullptr);
  EXPECT_EQ(c.host("h1")->vcpus, 3u);
  EXPECT_EQ(c.host("h1")->memory_mib, 768u);
  EXPECT_EQ(c.host("h1")->groups.at("web"), 2u);
  // vm2 moves to h2: h1 keeps one "web" VM, h2 gains one.
  c.set("vm2", {"h2", 1, 256, "web", ""});
  EXPECT_EQ(c.host("h1")->vcpus, 2u);
  EXPECT_EQ(c.host("h1")->groups.at("web"), 1u);
  EXPECT_EQ(c.host("h2")->vcpus, 5u);
  EXPECT_EQ(c.host("h2")->groups.at("web"), 1u);
  c.remove("vm1");
  EXPECT_EQ(c.host("h1"), nullptr);  // empty host dropped
  c.remove("vm1");                   // unknown id: no-op
  EXPECT_EQ(c.vm_count(), 2u);
  c.clear();
  EXPECT_EQ(c.vm_count(), 0u);
  EXPECT_EQ(c.host("h2"), nullptr);
}

TEST(AllocationCache, FillAddsTotalsAndLeavesOutExcludedVm) {
  AllocationCache c;
  c.set("a", {"h1", 2, 512, "db", ""});
  c.set("b", {"h1", 1, 128, "", ""});
  c.set("c", {"h1", 1, 128, "web", ""});
  c.set("d", {"h1", 1, 128, "web", ""});
  sched::HostInfo h;
  h.id = "h1";
  c.fill(h);
  EXPECT_EQ(h.allocated_vcpus, 5u);
  EXPECT_EQ(h.allocated_memory_mib, 896u);
  EXPECT_EQ(h.anti_affinity_groups, (std::vector<std::string>{"db", "web"}));

  sched::HostInfo ex;
  ex.id = "h1";
  c.fill(ex, "a");  // its group "db" was its own only
  EXPECT_EQ(ex.allocated_vcpus, 3u);
  EXPECT_EQ(ex.allocated_memory_mib, 384u);
  EXPECT_EQ(ex.anti_affinity_groups, (std::vector<std::string>{"web"}));

  sched::HostInfo ex2;
  ex2.id = "h1";
  c.fill(ex2, "c");  // "web" stays: d is in it too
  EXPECT_EQ(ex2.anti_affinity_groups, (std::vector<std::string>{"db", "web"}));

  sched::HostInfo other;
  other.id = "h9";
  c.fill(other, "a");  // excluded VM on another host changes nothing here
  EXPECT_EQ(other.allocated_vcpus, 0u);
  EXPECT_TRUE(other.anti_affinity_groups.empty());
}

TEST(AllocationCache, KeepTogetherGroupsFollowTheirVms) {
  AllocationCache c;
  c.set("a", {"h1", 1, 128, "", "pair"});
  c.set("b", {"h1", 1, 128, "", "pair"});
  c.set("solo", {"h2", 1, 128, "", "alone"});
  sched::HostInfo h1;
  h1.id = "h1";
  c.fill(h1, "a");  // b keeps the group on h1
  EXPECT_EQ(h1.affinity_groups, (std::vector<std::string>{"pair"}));
  EXPECT_TRUE(h1.anti_affinity_groups.empty());
  sched::HostInfo h2;
  h2.id = "h2";
  c.fill(h2, "solo");  // its group was its own only: a migration may take it anywhere
  EXPECT_TRUE(h2.affinity_groups.empty());
  c.set("b", {"h2", 1, 128, "", "pair"});  // b moved: h2 holds "pair" now
  sched::HostInfo again;
  again.id = "h2";
  c.fill(again);
  EXPECT_EQ(again.affinity_groups, (std::vector<std::string>{"alone", "pair"}));
}

class PlacementCacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = store::open_store("sqlite::memory:", store::StoreOptions{system_clock(), 1});
    ASSERT_TRUE(s) << s.error().to_string();
    store_ = std::move(*s);
  }
  std::unique_ptr<PlacementService> service() {
    auto sched = sched::Scheduler::create({1.0, 1.0, sched::WeightStrategy::pack});
    return std::make_unique<PlacementService>(*store_, std::move(*sched));
  }
  std::string add_host(const std::string& name, int cpus, int mem) {
    store::HostRecord h;
    h.name = name;
    h.address = "unix:/nonexistent/" + name;
    h.state = "up";
    h.accelerator = "tcg";
    h.cpu_threads = cpus;
    h.memory_mib = mem;
    auto c = store_->create_host(h);
    EXPECT_TRUE(c);
    return c ? c->id : "";
  }
  // A document as POST /api/v1/vms makes it (so load() can decode what was stored).
  static VmDocument doc(const std::string& name, uint32_t vcpus, uint64_t mem,
                        const std::string& group = "") {
    nlohmann::json body = {{"name", name},
                           {"vcpus", vcpus},
                           {"memory_mib", mem},
                           {"disks", {{{"name", "root"}, {"image", "base"}, {"boot", true}}}}};
    if (!group.empty()) body["anti_affinity_group"] = group;
    bool start = false;
    auto d = vm_document_from_request(body, &start);
    EXPECT_TRUE(d) << d.error().to_string();
    EXPECT_TRUE(d && decode_vm_document(encode(*d))) << body.dump();
    return d ? *d : VmDocument{};
  }
  // place + store + record through the one placement path, as the VM service does.
  Result<store::VmRecord> create(PlacementService& p, const VmDocument& d) {
    return p.place_and_write(d, {}, [&](const store::HostRecord& host) {
      store::VmRecord vm;
      vm.name = d.spec.name;
      vm.host_id = host.id;
      vm.spec = encode(d);
      return store_->create_vm(vm);
    });
  }
  store::StorePtr store_;
};

TEST_F(PlacementCacheTest, FullHostRejectsUntilDeleteIsForgotten) {
  auto p = service();
  ASSERT_TRUE(p->load());
  std::string h = add_host("h1", 4, 4096);
  auto a = create(*p, doc("a", 2, 1024));
  auto b = create(*p, doc("b", 2, 1024));
  ASSERT_TRUE(a && b);
  EXPECT_EQ(*a->host_id, h);
  auto c = create(*p, doc("c", 1, 512));  // 4 of 4 vCPUs taken (overcommit 1.0)
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error().code, ErrorCode::resource_exhausted);
  EXPECT_NE(c.error().message.find("cpu"), std::string::npos) << c.error().message;
  ASSERT_TRUE(store_->delete_vm(a->id, std::nullopt));
  p->forget(a->id);
  EXPECT_TRUE(create(*p, doc("c", 1, 512)));
}

TEST_F(PlacementCacheTest, LoadRebuildsFromStoreAfterRestart) {
  add_host("h1", 2, 2048);
  add_host("h2", 2, 2048);
  std::string b_host;
  {
    auto p = service();
    ASSERT_TRUE(p->load());
    ASSERT_TRUE(create(*p, doc("a", 2, 512, "g")));
    auto b = create(*p, doc("b", 1, 512, "g"));
    ASSERT_TRUE(b);
    b_host = *b->host_id;
  }
  // A VM written by someone else while "down" (not recorded in any cache) and one unplaced.
  store::VmRecord other;
  other.name = "other";
  other.host_id = b_host;
  other.spec = encode(doc("other", 1, 256));
  ASSERT_TRUE(store_->create_vm(other));
  store::VmRecord unplaced;
  unplaced.name = "unplaced";
  unplaced.spec = encode(doc("unplaced", 2, 256));
  ASSERT_TRUE(store_->create_vm(unplaced));

  auto p = service();  // the restarted manager
  ASSERT_TRUE(p->load());
  EXPECT_EQ(p->cached_vm_count(), 3u);
  auto snap = p->snapshot();
  ASSERT_TRUE(snap);
  uint64_t vcpus = 0;
  size_t groups = 0;
  for (uint32_t i = 0; i < snap->size(); ++i) {
    vcpus += snap->host(i).allocated_vcpus;
    groups += snap->host(i).anti_affinity_groups.size();
  }
  EXPECT_EQ(vcpus, 4u);   // 2 + 1 + 1; the unplaced VM holds nothing
  EXPECT_EQ(groups, 2u);  // "g" on both hosts
  // Both hosts hold a "g" VM: anti-affinity rejects a third.
  auto g = create(*p, doc("c", 1, 128, "g"));
  ASSERT_FALSE(g);
  EXPECT_NE(g.error().message.find("anti-affinity"), std::string::npos) << g.error().message;
  // a fills its host; b + other fill the other one: nothing fits.
  EXPECT_FALSE(create(*p, doc("d", 1, 128)));
}

TEST_F(PlacementCacheTest, ReplacementExcludesTheVmItself) {
  auto p = service();
  ASSERT_TRUE(p->load());
  std::string h = add_host("h1", 2, 2048);
  auto a = create(*p, doc("a", 2, 512, "g"));
  ASSERT_TRUE(a);
  // Re-placing "a" (e.g. after its host was cleared) must not compete with itself.
  auto again = p->place(doc("a", 2, 512, "g"), a->id);
  ASSERT_TRUE(again) << again.error().to_string();
  EXPECT_EQ(again->id, h);
  // Recording with no host forgets it.
  store::VmRecord moved = *a;
  moved.host_id.reset();
  p->record(moved);
  EXPECT_FALSE(p->cached(a->id));
}

// The placement lock covers the choice, not the write: a second placement made while the
// first VM is being written (from inside its write: it would deadlock if the lock were
// held) sees the first one's hold, and a write that fails gives its share back.
TEST_F(PlacementCacheTest, AWriteInProgressHoldsItsShareWithoutTheLock) {
  auto p = service();
  ASSERT_TRUE(p->load());
  std::string h = add_host("h1", 4, 4096);
  Result<store::VmRecord> inner = make_error(ErrorCode::internal, "not run");
  auto outer = p->place_and_write(doc("a", 3, 1024), {}, [&](const store::HostRecord& host) {
    inner = create(*p, doc("b", 2, 512));  // 3 of 4 vCPUs held by "a" meanwhile
    store::VmRecord vm;
    vm.name = "a";
    vm.host_id = host.id;
    vm.spec = encode(doc("a", 3, 1024));
    return store_->create_vm(vm);
  });
  ASSERT_TRUE(outer) << outer.error().to_string();
  ASSERT_FALSE(inner);
  EXPECT_EQ(inner.error().code, ErrorCode::resource_exhausted) << inner.error().to_string();
  EXPECT_EQ(p->cached_vm_count(), 1u);  // the hold became a's allocation
  // A failed write drops its hold: the last vCPU is still free afterwards.
  auto failed = p->place_and_write(doc("c", 1, 256), {}, [&](const store::HostRecord&) {
    return Result<store::VmRecord>(make_error(ErrorCode::unavailable, "store down"));
  });
  ASSERT_FALSE(failed);
  EXPECT_EQ(failed.error().code, ErrorCode::unavailable);
  EXPECT_EQ(p->cached_vm_count(), 1u);
  EXPECT_TRUE(create(*p, doc("d", 1, 256)));
}

// Hosts are decoded once per version: a change written to the store (maintenance, more
// memory), a new host and a deleted one all reach the next snapshot.
TEST_F(PlacementCacheTest, HostChangesReachTheNextSnapshot) {
  auto p = service();
  ASSERT_TRUE(p->load());
  std::string h1 = add_host("h1", 4, 4096);
  std::string h2 = add_host("h2", 4, 4096);
  auto snap = p->snapshot();
  ASSERT_TRUE(snap);
  ASSERT_EQ(snap->size(), 2u);
  auto host = store_->get_host(h1);
  ASSERT_TRUE(host);
  host->state = "maintenance";
  host->memory_mib = 8192;
  ASSERT_TRUE(store_->update_host(*host));
  ASSERT_TRUE(store_->delete_host(h2, std::nullopt));
  std::string h3 = add_host("h3", 8, 2048);
  snap = p->snapshot();
  ASSERT_TRUE(snap);
  ASSERT_EQ(snap->size(), 2u);
  for (uint32_t i = 0; i < snap->size(); ++i) {
    const auto& info = snap->host(i);
    if (info.id == h1) {
      EXPECT_EQ(info.state, sched::HostState::maintenance);
      EXPECT_EQ(info.total_memory_mib, 8192u);
    } else {
      EXPECT_EQ(info.id, h3);
      EXPECT_EQ(info.total_vcpus, 8u);
    }
  }
  // A create goes to the one host that takes VMs.
  auto a = create(*p, doc("a", 1, 256));
  ASSERT_TRUE(a) << a.error().to_string();
  EXPECT_EQ(*a->host_id, h3);
}

}  // namespace
}  // namespace strata::manager
