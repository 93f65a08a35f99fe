// The VM service on a real (in-memory SQLite) store: each create/act/delete commits the
// record, its task, the superseded task's end and the audit event together; refusals
// (taken name, no host, wrong version, being deleted, not meant to run) write nothing.
#include "strata/manager/vms/vm_service.h"

#include <gtest/gtest.h>

#include <vector>

#include "strata/manager/tasks/task_tracker.h"

namespace strata::manager {
namespace {

class VmServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = store::open_store("sqlite::memory:", store::StoreOptions{clock_, 1});
    ASSERT_TRUE(s) << s.error().to_string();
    store_ = std::move(*s);
    events_ = std::make_unique<EventLog>(*store_);
    auto sched = sched::Scheduler::create({1.0, 1.0, sched::WeightStrategy::pack});
    ASSERT_TRUE(sched);
    placement_ = std::make_unique<PlacementService>(*store_, std::move(*sched));
    ASSERT_TRUE(placement_->load());
    service_ = std::make_unique<VmService>(*store_, *placement_, *events_, clock_,
                                           [this](const std::string& id) { told_.push_back(id); });
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
  static VmDocument doc(const std::string& name, uint32_t vcpus = 1, uint64_t mem = 256) {
    VmDocument d;
    d.spec.name = name;
    d.spec.vcpus = vcpus;
    d.spec.memory_mib = mem;
    model::DiskSpec disk;
    disk.name = "root";
    disk.base_image = "base";
    disk.boot = true;
    d.spec.disks.push_back(disk);
    return d;
  }
  size_t count_tasks() {
    auto t = store_->list_tasks({});
    return t ? t->size() : 0;
  }
  std::vector<store::EventRecord> audit(const std::string& action) {
    std::vector<store::EventRecord> out;
    if (auto all = store_->list_events(0, 0))
      for (auto& e : *all)
        if (e.action == action) out.push_back(e);
    return out;
  }

  std::shared_ptr<ManualClock> clock_ = std::make_shared<ManualClock>();
  store::StorePtr store_;
  std::unique_ptr<EventLog> events_;
  std::unique_ptr<PlacementService> placement_;
  std::unique_ptr<VmService> service_;
  std::vector<std::string> told_;
};

TEST_F(VmServiceTest, CreateCommitsRecordTaskAndAuditTogether) {
  std::string h = add_host("h1", 4, 4096);
  auto c = service_->create(doc("web"), true, "token:alice");
  ASSERT_TRUE(c) << c.error().to_string();
  EXPECT_EQ(c->vm.host_id.value_or(""), h);
  EXPECT_EQ(c->vm.desired_state, "running");
  EXPECT_EQ(c->task.kind, "vm.create");
  EXPECT_EQ(c->task.target_id, c->vm.id);
  EXPECT_EQ(c->task.state, "pending");
  auto stored = store_->get_vm_by_name("web");
  ASSERT_TRUE(stored);
  auto d = decode_vm_document(stored->spec);
  ASSERT_TRUE(d);
  EXPECT_EQ(d->control.task_id, c->task.id);
  EXPECT_FALSE(d->spec.uuid.empty()) << "the spec is completed";
  EXPECT_EQ(decode_vm_status(stored->status).state, "scheduled");
  auto ev = audit("vm.create");
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].actor, "token:alice");
  EXPECT_EQ(ev[0].target, "vm/web");
  EXPECT_EQ(ev[0].result, "ok");
  EXPECT_EQ(told_, std::vector<std::string>{c->vm.id});
  ASSERT_TRUE(placement_->cached(c->vm.id));
  EXPECT_EQ(placement_->cached(c->vm.id)->host_id, h);
}

TEST_F(VmServiceTest, RefusedCreatesWriteNothing) {
  add_host("h1", 2, 4096);
  ASSERT_TRUE(service_->create(doc("a", 2), false, "t"));
  const size_t tasks = count_tasks();
  auto taken = service_->create(doc("a", 1), false, "t");
  ASSERT_FALSE(taken);
  EXPECT_EQ(taken.error().code, ErrorCode::already_exists);
  EXPECT_EQ(taken.error().field, "name");
  auto full = service_->create(doc("b", 1), false, "t");  // 2 of 2 vCPUs taken
  ASSERT_FALSE(full);
  EXPECT_EQ(full.error().code, ErrorCode::resource_exhausted);
  auto bad = doc("c");
  bad.placement.host = "nowhere";
  auto pinned = service_->create(bad, false, "t");
  ASSERT_FALSE(pinned);
  EXPECT_EQ(pinned.error().code, ErrorCode::invalid_argument);
  EXPECT_EQ(count_tasks(), tasks);
  EXPECT_EQ(audit("vm.create").size(), 1u);
  EXPECT_FALSE(store_->get_vm_by_name("b"));
  EXPECT_EQ(placement_->cached_vm_count(), 1u);
}

// The scheduler places a VM with bridge NICs only where its hosts' inventories show the
// bridge, and a NIC with a VLAN only where that bridge can filter VLANs; the refusal names
// each host's reason.
TEST_F(VmServiceTest, BridgeNicsArePlacedWhereTheirBridgeIs) {
  auto with_inventory = [&](const std::string& name, const std::string& inventory) {
    std::string id = add_host(name, 4, 4096);
    auto h = store_->get_host(id);
    EXPECT_TRUE(h);
    h->inventory = inventory;
    EXPECT_TRUE(store_->update_host(*h));
    return id;
  };
  with_inventory("h1", R"({"interfaces": [{"name": "eth0", "bridge": false}]})");
  std::string h2 = with_inventory(
      "h2",
      R"({"interfaces": [{"name": "br0", "bridge": true, "vlan_filtering_supported": false}]})");
  std::string h3 = with_inventory(
      "h3",
      R"({"interfaces": [{"name": "br0", "bridge": true, "vlan_filtering_supported": true}]})");
  auto with_nic = [](const std::string& name, const std::string& bridge, uint16_t vlan) {
    VmDocument d = doc(name);
    model::NicSpec n{model::NicMode::bridge, bridge, ""};
    n.vlan = vlan;
    d.spec.nics.push_back(n);
    return d;
  };
  auto tagged = service_->create(with_nic("tagged", "br0", 10), false, "t");
  ASSERT_TRUE(tagged) << tagged.error().to_string();
  EXPECT_EQ(tagged->vm.host_id.value_or(""), h3);
  // pack: the fuller host that qualifies, never h1.
  auto plain = service_->create(with_nic("plain", "br0", 0), false, "t");
  ASSERT_TRUE(plain) << plain.error().to_string();
  EXPECT_NE(plain->vm.host_id.value_or(""), "");
  EXPECT_TRUE(*plain->vm.host_id == h2 || *plain->vm.host_id == h3);
  auto nowhere = service_->create(with_nic("lost", "br9", 0), false, "t");
  ASSERT_FALSE(nowhere);
  EXPECT_EQ(nowhere.error().code, ErrorCode::resource_exhausted);
  EXPECT_NE(nowhere.error().message.find("h1: network: has no bridge br9"), std::string::npos)
      << nowhere.error().message;
  // The preview (the web console's dry run) says the same per host.
  auto preview = placement_->preview(with_nic("probe", "br0", 10));
  ASSERT_TRUE(preview) << preview.error().to_string();
  ASSERT_EQ(preview->candidates.size(), 1u);
  EXPECT_EQ(preview->candidates[0].host_id, h3);
  ASSERT_EQ(preview->rejected.size(), 2u);
  for (const auto& r : preview->rejected)
    EXPECT_EQ(r.filter, sched::Filter::network) << r.to_string();
}

TEST_F(VmServiceTest, ActBumpsGenerationAndSupersedesTheOpenTask) {
  add_host("h1", 4, 4096);
  auto c = service_->create(doc("web"), true, "t");
  ASSERT_TRUE(c);
  VmActOptions stop;
  stop.stop_force = true;
  stop.stop_timeout_s = 5;
  auto s = service_->act("web", VmVerb::stop, stop, "token:bob");
  ASSERT_TRUE(s) << s.error().to_string();
  EXPECT_EQ(s->task.kind, "vm.stop");
  EXPECT_EQ(s->vm.desired_state, "stopped");
  auto d = decode_vm_document(s->vm.spec);
  ASSERT_TRUE(d);
  EXPECT_EQ(d->control.generation, 2);
  EXPECT_EQ(d->control.task_id, s->task.id);
  EXPECT_TRUE(d->control.stop_force);
  EXPECT_EQ(d->control.stop_timeout_s, 5u);
  auto old = store_->get_task(c->task.id);
  ASSERT_TRUE(old);
  EXPECT_EQ(old->state, "failed");
  EXPECT_NE(old->message.find("superseded by vm.stop"), std::string::npos) << old->message;
  auto ev = audit("vm.stop");
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].actor, "token:bob");
  EXPECT_EQ(ev[0].target, "vm/web");

  auto p = service_->act("web", VmVerb::pause, {}, "t");  // not meant to run now
  ASSERT_FALSE(p);
  EXPECT_EQ(p.error().code, ErrorCode::failed_precondition);
  auto r = service_->act("web", VmVerb::start, {}, "t");
  ASSERT_TRUE(r);
  auto p2 = service_->act("web", VmVerb::pause, {}, "t");
  ASSERT_TRUE(p2);
  auto d2 = decode_vm_document(p2->vm.spec);
  ASSERT_TRUE(d2);
  EXPECT_TRUE(d2->control.paused);
  EXPECT_EQ(d2->control.generation, 4);
  EXPECT_EQ(told_.size(), 4u);
}

TEST_F(VmServiceTest, RefusedActsWriteNothing) {
  add_host("h1", 4, 4096);
  auto c = service_->create(doc("web"), false, "t");
  ASSERT_TRUE(c);
  const size_t tasks = count_tasks();
  auto missing = service_->act("nope", VmVerb::start, {}, "t");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, ErrorCode::not_found);
  VmActOptions stale;
  stale.expected_version = c->vm.resource_version + 5;
  auto conflict = service_->act("web", VmVerb::start, stale, "t");
  ASSERT_FALSE(conflict);
  EXPECT_EQ(conflict.error().code, ErrorCode::conflict);
  EXPECT_EQ(conflict.error().field, "resource_version");
  auto reboot = service_->act("web", VmVerb::reboot, {}, "t");  // stopped: not meant to run
  ASSERT_FALSE(reboot);
  EXPECT_EQ(reboot.error().code, ErrorCode::failed_precondition);
  EXPECT_EQ(count_tasks(), tasks) << "a refused action leaves no task behind";
  auto still = store_->get_task(c->task.id);
  ASSERT_TRUE(still);
  EXPECT_EQ(still->state, "pending") << "nor ends the VM's current one";
  auto vm = store_->get_vm(c->vm.id);
  ASSERT_TRUE(vm);
  EXPECT_EQ(vm->resource_version, c->vm.resource_version);
}

TEST_F(VmServiceTest, DeleteMarksTheRecordOnceAndRefusesLaterActions) {
  add_host("h1", 4, 4096);
  auto c = service_->create(doc("web"), true, "t");
  ASSERT_TRUE(c);
  clock_->advance(std::chrono::seconds(1234));
  VmActOptions exact;
  auto del = service_->remove("web", c->vm.resource_version, "token:carol");
  ASSERT_TRUE(del) << del.error().to_string();
  EXPECT_EQ(del->task.kind, "vm.delete");
  EXPECT_TRUE(del->vm.deletion_requested);
  EXPECT_EQ(del->vm.deletion_requested_ms, 1234000);
  ASSERT_EQ(audit("vm.delete").size(), 1u);
  auto again = service_->remove("web", std::nullopt, "t");
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code, ErrorCode::failed_precondition);
  auto start = service_->act("web", VmVerb::start, exact, "t");
  ASSERT_FALSE(start);
  EXPECT_EQ(start.error().code, ErrorCode::failed_precondition);
}

}  // namespace
}  // namespace strata::manager

// What-if (plan_host_down) and HA admission control, on the same store and scheduler.
namespace strata::manager {
namespace {

class WhatIfTest : public VmServiceTest {
 protected:
  // The VM's status as its host would report it once it runs (no controller here).
  void mark_running(const std::string& name) {
    auto vm = store_->get_vm_by_name(name);
    ASSERT_TRUE(vm);
    auto st = decode_vm_status(vm->status);
    st.state = "running";
    vm->status = encode(st);
    ASSERT_TRUE(store_->update_vm(*vm));
  }
  std::string create_on_first_host(const std::string& name, uint64_t mem, bool ha = false) {
    VmDocument d = doc(name, 1, mem);
    d.ha.enabled = ha;
    d.ha.priority = ha ? 10 : 0;
    auto c = service_->create(d, true, "t");
    EXPECT_TRUE(c) << c.error().to_string();
    return c ? *c->vm.host_id : "";
  }
};

TEST_F(WhatIfTest, HostDownPlacesLargestFirstAndExplainsWhatDoesNotFit) {
  std::string h1 = add_host("h1", 8, 8192);
  service_->set_ha_admission(HaAdmission::off);
  for (auto [n, m] : {std::pair{"big", 1536}, {"mid", 1024}, {"huge", 1024}, {"small", 512}})
    ASSERT_EQ(create_on_first_host(n, m), h1);
  add_host("h2", 8, 2048);
  add_host("h3", 8, 1024);
  auto plan = placement_->plan_host_down({h1}, false);
  ASSERT_TRUE(plan) << plan.error().to_string();
  EXPECT_EQ(plan->hosts, std::vector<std::string>{"h1"});
  ASSERT_EQ(plan->moves.size(), 3u);
  EXPECT_EQ(plan->moves[0].vm, "big") << "largest first";
  EXPECT_EQ(plan->moves[0].to_host, "h2") << "only h2 has 1536 MiB";
  // big -> h2 (512 left), huge -> h3 (same size as mid, first by name), mid stays, small -> h2.
  ASSERT_EQ(plan->stays.size(), 1u);
  EXPECT_EQ(plan->stays[0].vm, "mid");
  EXPECT_EQ(plan->stays[0].from_host, "h1");
  EXPECT_NE(plan->stays[0].reason.find("MiB"), std::string::npos) << plan->stays[0].reason;
  // Nothing was written: the VMs are where they were.
  EXPECT_EQ(*store_->get_vm_by_name("big")->host_id, h1);
  // Only HA VMs: none here.
  auto ha = placement_->plan_host_down({h1}, true);
  ASSERT_TRUE(ha);
  EXPECT_TRUE(ha->moves.empty());
  EXPECT_TRUE(ha->stays.empty());
}

TEST_F(WhatIfTest, HaAdmissionRefusesAnHaVmThatCouldNotRestartElsewhere) {
  std::string h1 = add_host("h1", 8, 4096);
  // One host: nowhere to restart.
  VmDocument d = doc("db", 1, 1024);
  d.ha.enabled = true;
  auto refused = service_->create(d, true, "t");
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, ErrorCode::failed_precondition);
  EXPECT_EQ(refused.error().field, "ha");
  EXPECT_NE(refused.error().message.find("if host h1 failed"), std::string::npos)
      << refused.error().message;
  EXPECT_FALSE(store_->get_vm_by_name("db")) << "nothing written";
  // warn: created, with an event saying why it would not restart.
  service_->set_ha_admission(HaAdmission::warn);
  ASSERT_TRUE(service_->create(d, true, "t"));
  EXPECT_EQ(audit("vm.ha_admission").size(), 1u);
  // A second host with room: admitted under enforce.
  service_->set_ha_admission(HaAdmission::enforce);
  add_host("h2", 8, 2048);
  VmDocument d2 = doc("db2", 1, 512);
  d2.ha.enabled = true;
  ASSERT_TRUE(service_->create(d2, true, "t"));
  // 2560 MiB of HA VMs on 4096 + 2048 MiB of hosts: wherever a third of 1024 MiB goes,
  // losing h1 (db's host) would leave more to restart on h2 than h2 has: refused, naming h1.
  VmDocument d3 = doc("db3", 1, 1024);
  d3.ha.enabled = true;
  auto third = service_->create(d3, true, "t");
  ASSERT_FALSE(third);
  EXPECT_NE(third.error().message.find("if host h1 failed"), std::string::npos)
      << third.error().message;
}

// Capacity: h1 6 threads / 4096 MiB holding a 1 vCPU / 1024 MiB VM, h2 8 / 2048, h3 down;
// overcommit 1.0. VMs of 1 vCPU / 1024 MiB: h1 takes 3 more, h2 2; memory runs out first.
TEST_F(WhatIfTest, CapacityCountsWhatFitsWhereAndWhatRunsOutFirst) {
  std::string h1 = add_host("h1", 6, 4096);
  ASSERT_EQ(create_on_first_host("app", 1024), h1);
  add_host("h2", 8, 2048);
  store::HostRecord down;
  down.name = "h3";
  down.address = "unix:/nonexistent/h3";
  down.state = "unreachable";
  down.accelerator = "tcg";
  down.cpu_threads = 64;
  down.memory_mib = 65536;
  ASSERT_TRUE(store_->create_host(down));

  sched::PlacementRequest size;
  size.vcpus = 1;
  size.memory_mib = 1024;
  auto all = placement_->plan_capacity(size, 0);
  ASSERT_TRUE(all) << all.error().to_string();
  EXPECT_EQ(all->fit, 5u);
  EXPECT_FALSE(all->capped);
  EXPECT_EQ(all->runs_out_first, "memory") << all->summary;
  EXPECT_NE(all->summary.find("memory filter rejected 2 hosts"), std::string::npos) << all->summary;
  ASSERT_EQ(all->hosts.size(), 2u);
  EXPECT_EQ(all->hosts[0].host, "h1");
  EXPECT_EQ(all->hosts[0].vms, 3u);
  EXPECT_EQ(all->hosts[0].free_memory_mib, 0);
  EXPECT_EQ(all->hosts[0].free_vcpus, 2) << "6 threads: app + 3";
  EXPECT_EQ(all->hosts[1].host, "h2");
  EXPECT_EQ(all->hosts[1].vms, 2u);
  EXPECT_EQ(all->hosts[1].free_vcpus, 6);

  // Two asked for: both fit; the hosts list shows where those two go (pack: fullest first).
  auto two = placement_->plan_capacity(size, 2);
  ASSERT_TRUE(two);
  EXPECT_EQ(two->requested, 2u);
  EXPECT_EQ(two->fit, 5u);
  uint32_t shown = 0;
  for (const auto& h : two->hosts) shown += h.vms;
  EXPECT_EQ(shown, 2u);

  // CPU runs out first when VMs are CPU-heavy: 4 vCPUs each, one on h1 (5 threads free),
  // two on h2.
  size.vcpus = 4;
  size.memory_mib = 256;
  auto cpu = placement_->plan_capacity(size, 0);
  ASSERT_TRUE(cpu);
  EXPECT_EQ(cpu->fit, 3u);
  EXPECT_EQ(cpu->runs_out_first, "cpu") << cpu->summary;

  // A selector no host matches: nothing fits, the selector is named.
  size.node_selector = {{"zone", "b"}};
  auto none = placement_->plan_capacity(size, 1);
  ASSERT_TRUE(none);
  EXPECT_EQ(none->fit, 0u);
  EXPECT_TRUE(none->hosts.empty());
  EXPECT_EQ(none->runs_out_first, "selector") << none->summary;

  // Nothing was written.
  auto vms = store_->list_vms({});
  ASSERT_TRUE(vms);
  EXPECT_EQ(vms->size(), 1u);
}

// Post-copy needs both hosts' agents at its API level (strata/wire/api_level.h): a target
// whose agent is one version behind (an inventory from before levels) refuses it naming
// the field and writes nothing; the same move without post-copy goes, and once the agent is
// upgraded (its inventory says level 2) post-copy goes too.
TEST_F(WhatIfTest, PostcopyNeedsAgentsThatSpeakItsLevel) {
  std::string h1 = add_host("h1", 8, 4096);
  auto set_level = [&](const std::string& id, const std::string& inventory) {
    auto h = store_->get_host(id);
    ASSERT_TRUE(h);
    h->inventory = inventory;
    ASSERT_TRUE(store_->update_host(*h));
  };
  set_level(h1, R"({"agent":{"version":"new","api_level":2}})");
  ASSERT_EQ(create_on_first_host("mover", 512), h1);
  std::string h2 = add_host("h2", 8, 4096);
  set_level(h2, R"({"agent":{"version":"old"}})");
  mark_running("mover");
  const size_t tasks = count_tasks();

  VmMigrateOptions o;
  o.target_host = "h2";
  o.postcopy = true;
  auto refused = service_->migrate("mover", o, "t");
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, ErrorCode::failed_precondition);
  EXPECT_EQ(refused.error().field, "postcopy");
  EXPECT_NE(refused.error().message.find("host h2's agent speaks API level 1"), std::string::npos)
      << refused.error().message;
  EXPECT_EQ(count_tasks(), tasks) << "a refusal writes nothing";
  EXPECT_FALSE(decode_vm_document(store_->get_vm_by_name("mover")->spec)->migration.active());

  set_level(h2, R"({"agent":{"version":"new","api_level":2}})");
  auto moved = service_->migrate("mover", o, "t");
  ASSERT_TRUE(moved) << moved.error().to_string();
  EXPECT_TRUE(decode_vm_document(moved->vm.spec)->migration.postcopy);
}

TEST_F(WhatIfTest, PrecopyMigratesToAnAgentOneVersionBehind) {
  std::string h1 = add_host("h1", 8, 4096);
  ASSERT_EQ(create_on_first_host("mover", 512), h1);
  add_host("h2", 8, 4096);  // inventory "{}": an agent from before levels
  mark_running("mover");
  VmMigrateOptions o;
  o.target_host = "h2";
  auto moved = service_->migrate("mover", o, "t");
  ASSERT_TRUE(moved) << moved.error().to_string();
  EXPECT_FALSE(decode_vm_document(moved->vm.spec)->migration.postcopy);
}

// A migration holds the VM's share of its target until it ends: a create cannot take that
// room meanwhile, and a restarted manager (load) still counts it.
TEST_F(WhatIfTest, AMigrationReservesItsTargetUntilItEnds) {
  std::string h1 = add_host("h1", 8, 4096);
  ASSERT_EQ(create_on_first_host("mover", 1024), h1);
  std::string h2 = add_host("h2", 8, 1536);
  mark_running("mover");
  VmMigrateOptions o;
  o.target_host = "h2";
  auto m = service_->migrate("mover", o, "t");
  ASSERT_TRUE(m) << m.error().to_string();
  EXPECT_TRUE(decode_vm_document(m->vm.spec)->migration.tls) << "TLS unless asked otherwise";

  // h2 has 1536 MiB, 1024 of them held for the migration: a 1024 MiB VM pinned there does
  // not fit; h1 still counts the VM as well (it runs there until the switch-over).
  auto pinned = [&](const std::string& name) {
    VmDocument d = doc(name, 1, 1024);
    d.placement.host = "h2";
    return d;
  };
  auto refused = service_->create(pinned("late"), true, "t");
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, ErrorCode::resource_exhausted) << refused.error().to_string();
  sched::PlacementRequest gib;
  gib.vcpus = 1;
  gib.memory_mib = 1024;
  auto plan = placement_->plan_capacity(gib, 0);
  ASSERT_TRUE(plan);
  EXPECT_EQ(plan->fit, 3u) << "h1: 4096 - 1024 (3); h2: 1536 - 1024 reserved (0)";

  // A restarted manager rebuilds the reservation from the record.
  auto sched2 = sched::Scheduler::create({1.0, 1.0, sched::WeightStrategy::pack});
  ASSERT_TRUE(sched2);
  PlacementService reloaded(*store_, std::move(*sched2));
  ASSERT_TRUE(reloaded.load());
  auto again = reloaded.plan_capacity(gib, 0);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->fit, 3u);

  // The migration ends on h2 (the controller's end: host moved, intent cleared): the
  // reservation becomes the VM's own share there, and h1's room is free again.
  auto vm = store_->get_vm_by_name("mover");
  auto d = decode_vm_document(vm->spec);
  d->migration.target_host_id.clear();
  vm->spec = encode(*d);
  vm->host_id = h2;
  ASSERT_TRUE(store_->update_vm(*vm));
  placement_->record(*store_->get_vm_by_name("mover"));
  auto after = placement_->plan_capacity(gib, 0);
  ASSERT_TRUE(after);
  EXPECT_EQ(after->fit, 4u) << "h1: 4096 free; h2: 1536 - 1024";
  EXPECT_FALSE(service_->create(pinned("late"), true, "t")) << "h2 holds the VM itself now";
}

}  // namespace
}  // namespace strata::manager
