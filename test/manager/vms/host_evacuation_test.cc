// Maintenance evacuation on a real (in-memory SQLite) store, without agents: each pass
// starts migrations through the VM service, at most `parallel` at a time; the test plays
// the migration controller's part (a migration ends by moving the record, or fails by
// clearing the intent) and checks what the task says moved and what stayed, and why.
#include "strata/manager/vms/host_evacuation.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <thread>

#include "strata/common/clock_wait.h"

#include "strata/manager/tasks/task_tracker.h"

namespace strata::manager {
namespace {

using nlohmann::json;

class HostEvacuationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = store::open_store("sqlite::memory:", store::StoreOptions{clock_, 1});
    ASSERT_TRUE(s) << s.error().to_string();
    store_ = std::move(*s);
    events_ = std::make_unique<EventLog>(*store_);
    auto sched = sched::Scheduler::create({1.0, 1.0, sched::WeightStrategy::spread});
    ASSERT_TRUE(sched);
    placement_ = std::make_unique<PlacementService>(*store_, std::move(*sched));
    ASSERT_TRUE(placement_->load());
    vms_ = std::make_unique<VmService>(*store_, *placement_, *events_, clock_);
    evac_ = std::make_unique<HostEvacuator>(*store_, *vms_, *events_, clock_,
                                            EvacuationConfig{2, std::chrono::seconds(1), 2});
  }
  std::string add_host(const std::string& name, int cpus, int mem) {
    store::HostRecord h;
    h.name = name;
    h.address = "10.0.0." + std::to_string(++hosts_) + ":7700";
    h.state = "up";
    h.accelerator = "tcg";
    h.cpu_threads = cpus;
    h.memory_mib = mem;
    auto c = store_->create_host(h);
    EXPECT_TRUE(c);
    return c ? c->id : "";
  }
  // A VM on `host`, observed in `state` (with a local disk when `local_disk`).
  void add_vm(const std::string& name, const std::string& host, const std::string& state,
              uint64_t mem = 256, bool local_disk = false, const std::string& together = "") {
    VmDocument d;
    d.spec.name = name;
    d.spec.vcpus = 1;
    d.spec.memory_mib = mem;
    d.spec.kernel_boot = model::KernelBoot{"k", "", ""};
    if (local_disk) {
      model::DiskSpec disk;
      disk.name = "data";
      disk.size_bytes = 1 << 20;
      d.spec.disks.push_back(disk);
    }
    d.placement.host = host;
    d.placement.affinity_group = together;
    auto c = vms_->create(d, state != "stopped", "test");
    ASSERT_TRUE(c) << c.error().to_string();
    auto vm = *store_->get_vm(c->vm.id);
    VmStatusDoc st;
    st.state = state;
    vm.status = encode(st);
    ASSERT_TRUE(store_->update_vm(vm));
  }
  VmDocument doc_of(const std::string& name) {
    return *decode_vm_document(store_->get_vm_by_name(name)->spec);
  }
  // The controller's end of a migration: moved to its target, or failed (stays).
  void finish_migration(const std::string& name, bool ok, const std::string& error = {}) {
    auto vm = *store_->get_vm_by_name(name);
    auto d = *decode_vm_document(vm.spec);
    ASSERT_TRUE(d.migration.active()) << name;
    if (ok) vm.host_id = d.migration.target_host_id;
    d.migration.target_host_id.clear();
    vm.spec = encode(d);
    auto st = decode_vm_status(vm.status);
    st.last_error = error;
    vm.status = encode(st);
    ASSERT_TRUE(store_->update_vm(vm));
    placement_->record(vm);
  }
  std::vector<std::string> migrating() {
    std::vector<std::string> out;
    auto all = store_->list_vms({});
    if (!all) return out;
    for (auto& vm : *all)
      if (decode_vm_document(vm.spec)->migration.active()) out.push_back(vm.name);
    return out;
  }
  store::TaskRecord task(const std::string& id) { return *store_->get_task(id); }

  std::shared_ptr<SimulatedClock> clock_ = std::make_shared<SimulatedClock>();
  store::StorePtr store_;
  std::unique_ptr<EventLog> events_;
  std::unique_ptr<PlacementService> placement_;
  std::unique_ptr<VmService> vms_;
  std::unique_ptr<HostEvacuator> evac_;
  int hosts_ = 0;
};

TEST_F(HostEvacuationTest, VmsMoveTwoAtATimeStoppedOnesColdAndStuckOnesStayWithTheReason) {
  std::string h1 = add_host("h1", 8, 8192);
  std::string h2 = add_host("h2", 8, 8192);
  for (const char* n : {"a", "b", "c"}) add_vm(n, "h1", "running");
  add_vm("off", "h1", "stopped", 256, /*local_disk=*/true);  // moves cold, its disk copied
  add_vm("stuck", "h1", "starting");                          // neither running nor stopped
  add_vm("elsewhere", "h2", "running");
  auto t = evac_->evacuate("h1", "token:ops");
  ASSERT_TRUE(t) << t.error().to_string();
  EXPECT_EQ(t->kind, "host.evacuate");
  EXPECT_EQ(store_->get_host(h1)->state, "maintenance");
  // Asking again returns the same evacuation.
  EXPECT_EQ(evac_->evacuate("h1", "token:ops")->id, t->id);

  evac_->tick();
  EXPECT_EQ(migrating().size(), 2u);  // two at a time
  for (auto& n : migrating()) EXPECT_EQ(doc_of(n).migration.target_host_id, h2);
  EXPECT_EQ(task(t->id).state, "running");
  evac_->tick();
  EXPECT_EQ(migrating().size(), 2u);  // none more while two run
  for (auto& n : migrating()) finish_migration(n, true);
  evac_->tick();
  ASSERT_EQ(migrating().size(), 2u);
  for (auto& n : migrating()) {
    if (n == "off") {
      EXPECT_TRUE(doc_of(n).migration.cold);
    }
    finish_migration(n, true);
  }
  evac_->tick();
  auto done = task(t->id);
  EXPECT_EQ(done.state, "succeeded") << done.message;
  EXPECT_NE(done.message.find("4 VMs moved off h1"), std::string::npos) << done.message;
  EXPECT_NE(done.message.find("stuck: starting (neither running nor stopped"), std::string::npos)
      << done.message;
  auto r = json::parse(done.result);
  EXPECT_EQ(r["moved"].size(), 4u) << r;
  EXPECT_EQ(r["total"], 5);
  EXPECT_EQ(*store_->get_vm_by_name("off")->host_id, h2);
  EXPECT_EQ(*store_->get_vm_by_name("elsewhere")->host_id, h2);  // not touched
  EXPECT_EQ(store_->get_host(h1)->state, "maintenance");         // stays in maintenance
}

// A stopped VM with nothing local (its disks on datastores; here none at all) moves cold
// with the running ones: the host ends empty.
TEST_F(HostEvacuationTest, StoppedVmsWithNothingLocalMoveCold) {
  std::string h1 = add_host("h1", 8, 8192);
  std::string h2 = add_host("h2", 8, 8192);
  add_vm("run", "h1", "running");
  add_vm("off", "h1", "stopped");
  auto t = evac_->evacuate("h1", "token:ops");
  ASSERT_TRUE(t) << t.error().to_string();
  evac_->tick();
  ASSERT_EQ(migrating().size(), 2u);
  EXPECT_TRUE(doc_of("off").migration.cold);
  EXPECT_FALSE(doc_of("run").migration.cold);
  EXPECT_EQ(doc_of("off").migration.target_host_id, h2);
  for (auto& n : migrating()) finish_migration(n, true);
  evac_->tick();
  auto done = task(t->id);
  EXPECT_EQ(done.state, "succeeded") << done.message;
  EXPECT_NE(done.message.find("2 VMs moved off h1"), std::string::npos) << done.message;
  EXPECT_EQ(done.message.find("staying"), std::string::npos) << done.message;
}

TEST_F(HostEvacuationTest, AVmNoHostCanTakeOrThatFailsTwiceStaysAndFailsTheTask) {
  add_host("h1", 8, 8192);
  add_host("h2", 2, 1024);
  add_vm("big", "h1", "running", 4096);  // fits nowhere else
  add_vm("flaky", "h1", "running");
  // Planned first: "big" fits nowhere, so the evacuation is refused with the reason and
  // nothing changes...
  auto refused = evac_->evacuate("h1", "test");
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, ErrorCode::failed_precondition);
  EXPECT_NE(refused.error().message.find("big ("), std::string::npos) << refused.error().message;
  EXPECT_NE(refused.error().message.find("memory"), std::string::npos) << refused.error().message;
  EXPECT_EQ(refused.error().message.find("flaky"), std::string::npos) << "flaky fits";
  EXPECT_EQ(store_->get_host_by_name("h1")->state, "up");
  // ...unless partial: what fits moves, the rest is reported.
  auto t = evac_->evacuate("h1", "test", /*partial=*/true);
  ASSERT_TRUE(t);
  evac_->tick();
  ASSERT_EQ(migrating(), std::vector<std::string>{"flaky"});
  finish_migration("flaky", false, "the target host went away");
  evac_->tick();  // second attempt
  ASSERT_EQ(migrating(), std::vector<std::string>{"flaky"});
  finish_migration("flaky", false, "the target host went away");
  evac_->tick();
  auto done = task(t->id);
  EXPECT_EQ(done.state, "failed") << done.message;
  EXPECT_NE(done.message.find("big: "), std::string::npos) << done.message;
  EXPECT_NE(done.message.find("memory"), std::string::npos) << done.message;  // the filter
  EXPECT_NE(done.message.find("flaky: 2 migrations failed: the target host went away"),
            std::string::npos)
      << done.message;
}

TEST_F(HostEvacuationTest, TurningMaintenanceOffCancelsIt) {
  std::string h1 = add_host("h1", 8, 8192);
  add_host("h2", 8, 8192);
  add_vm("a", "h1", "running");
  auto t = evac_->evacuate("h1", "test");
  ASSERT_TRUE(t);
  auto h = *store_->get_host(h1);
  h.state = "up";
  ASSERT_TRUE(store_->update_host(h));
  evac_->tick();
  EXPECT_EQ(task(t->id).state, "failed");
  EXPECT_NE(task(t->id).message.find("cancelled"), std::string::npos);
  EXPECT_TRUE(migrating().empty());
  EXPECT_FALSE(evac_->evacuate("nope", "test"));
}

// The thread waits for its next pass on the injected clock, and a new evacuation runs one
// at once.
TEST_F(HostEvacuationTest, TheThreadPassesOnTheClock) {
  add_host("h1", 8, 8192);
  add_host("h2", 8, 8192);
  add_vm("a", "h1", "running");
  evac_->start();
  ASSERT_TRUE(evac_->evacuate("h1", "test"));
  auto until = [&](auto pred) {
    for (int i = 0; i < 500 && !pred(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    return pred();
  };
  EXPECT_TRUE(until([&] { return migrating().size() == 1; }));
  finish_migration("a", true);
  // The clock moves on while we wait: a thread still busy with its previous pass when a
  // single advance() came would otherwise wait for a deadline that never arrives (seen
  // once under ASan on a loaded machine).
  EXPECT_TRUE(until([&] {
    clock_->advance(std::chrono::seconds(1));
    auto ts = store_->list_tasks({});
    for (auto& t : *ts)
      if (t.kind == "host.evacuate") return t.state == "succeeded";
    return false;
  }));
  evac_->stop();
}

// A keep-together group moves as one: asking to move one of its VMs moves the group's
// other VMs on that host to the same target, chosen to hold them all (h2 has room for one
// of them only); a named target that cannot hold them all is refused with the reason.
TEST_F(HostEvacuationTest, KeepTogetherGroupMovesAsOne) {
  add_host("h1", 8, 8192);
  add_host("h2", 8, 768);
  std::string h3 = add_host("h3", 8, 8192);
  add_vm("a", "h1", "running", 512, false, "pair");
  add_vm("b", "h1", "running", 512, false, "pair");
  add_vm("solo", "h1", "running", 512);
  // Each alone would fit h2; together they do not.
  auto refused = vms_->migrate("a", VmMigrateOptions{"h2", 0, 0, std::nullopt, false}, "test");
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, ErrorCode::resource_exhausted) << refused.error().to_string();
  EXPECT_NE(refused.error().message.find("no host takes keep-together group pair (2 VMs"),
            std::string::npos)
      << refused.error().message;
  EXPECT_TRUE(migrating().empty());

  auto moved = vms_->migrate("a", VmMigrateOptions{}, "test");
  ASSERT_TRUE(moved) << moved.error().to_string();
  EXPECT_NE(moved->task.message.find("keep-together group pair moves as one: a, b"),
            std::string::npos)
      << moved->task.message;
  auto now = migrating();
  std::sort(now.begin(), now.end());
  ASSERT_EQ(now, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(doc_of("a").migration.target_host_id, h3);
  EXPECT_EQ(doc_of("b").migration.target_host_id, h3);
  EXPECT_NE(doc_of("a").migration.task_id, doc_of("b").migration.task_id);  // a task each
  // The group's other VM is migrating now: asking for it again is the usual conflict.
  EXPECT_EQ(vms_->migrate("b", VmMigrateOptions{}, "test").error().code, ErrorCode::conflict);
  // A VM outside the group moves alone (h2 takes it).
  auto solo = vms_->migrate("solo", VmMigrateOptions{}, "test");
  ASSERT_TRUE(solo) << solo.error().to_string();
  EXPECT_EQ(solo->task.message.find("keep-together"), std::string::npos) << solo->task.message;
  EXPECT_EQ(migrating().size(), 3u);
}

}  // namespace
}  // namespace strata::manager
