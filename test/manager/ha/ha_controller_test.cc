// HA restart with fencing on a real (in-memory SQLite) store and a simulated clock: the
// failure timeline, fencing before any restart, retries of a failed fence, no restart
// without a fence device, priority order, and exactly once across a restarted manager.
// The fencer here is a recording double of the Fencer interface; the real fence-agent
// runner is tested against Debian's fence_dummy in fence_test.cc.
#include "strata/manager/ha/ha_controller.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <set>

#include "strata/common/clock_wait.h"
#include "strata/manager/controllers/vm_document.h"
#include "strata/manager/tasks/task_leases.h"

namespace strata::manager {
namespace {

class RecordingFencer final : public Fencer {
 public:
  std::set<std::string> devices;        // hosts with a fence device
  std::vector<bool> outcomes;           // next results (true: fenced); empty: fenced
  std::vector<std::string> calls;
  bool configured(const std::string& h) const override { return devices.count(h) > 0; }
  Result<FenceOutcome> fence_off(const std::string& h) override {
    calls.push_back(h);
    bool ok = true;
    if (!outcomes.empty()) {
      ok = outcomes.front();
      outcomes.erase(outcomes.begin());
    }
    if (!ok) return unavailable("fence_test: the power controller does not answer");
    return FenceOutcome{"fence_test: off, status confirms off"};
  }
};

class HaControllerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = store::open_store("sqlite::memory:", store::StoreOptions{clock_, 1});
    ASSERT_TRUE(s) << s.error().to_string();
    store_ = std::move(*s);
    events_ = std::make_unique<EventLog>(*store_);
    h1_ = add_host("h1");
    h2_ = add_host("h2");
    fencer_ = std::make_shared<RecordingFencer>();
    fencer_->devices = {"h1", "h2"};
    ha_ = make_controller();
  }
  std::unique_ptr<HaController> make_controller() {
    return std::make_unique<HaController>(
        *store_, *events_, fencer_,
        [this](const std::string& host_id) {
          return down_.count(host_id) ? Liveness::unreachable : Liveness::up;
        },
        [this](const std::string& vm_id) { enqueued_.push_back(store_->get_vm(vm_id)->name); },
        clock_, HaConfig{});
  }
  std::string add_host(const std::string& name) {
    store::HostRecord h;
    h.name = name;
    h.address = "10.0.0." + std::to_string(++hosts_) + ":7700";
    h.state = "up";
    auto c = store_->create_host(h);
    EXPECT_TRUE(c);
    return c ? c->id : "";
  }
  void add_vm(const std::string& name, const std::string& host_id, bool ha, int priority = 0,
              const std::string& desired = "running") {
    VmDocument d;
    d.spec.name = name;
    d.spec.vcpus = 1;
    d.spec.memory_mib = 128;
    d.spec.kernel_boot = model::KernelBoot{"k", "", ""};
    d.ha.enabled = ha;
    d.ha.priority = priority;
    store::VmRecord r;
    r.name = name;
    r.spec = encode(d);
    r.desired_state = desired;
    r.host_id = host_id;
    VmStatusDoc st;
    st.state = "unknown";
    r.status = encode(st);
    ASSERT_TRUE(store_->create_vm(r));
  }
  // The host.fence tasks' ids, oldest first.
  std::vector<std::string> fence_tasks() {
    std::vector<std::string> out;
    auto all = store_->list_tasks({});
    EXPECT_TRUE(all);
    if (all)
      for (const auto& t : *all)
        if (t.kind == "host.fence") out.push_back(t.id);
    return out;
  }
  std::optional<std::string> host_of(const std::string& vm) {
    return store_->get_vm_by_name(vm)->host_id;
  }
  std::vector<std::string> actions() {
    std::vector<std::string> out;
    auto evs = store_->list_events(0, 1000);
    for (const auto& e : *evs)
      if (e.actor == "controller:ha") out.push_back(e.action + " " + e.target);
    return out;
  }
  // Passes over `d` of clock time, one per second, as the controller's thread makes them.
  void run_for(std::chrono::milliseconds d) {
    for (auto t = std::chrono::milliseconds(0); t < d; t += std::chrono::seconds(1)) {
      ha_->tick();
      clock_->advance(std::chrono::seconds(1));
    }
  }

  std::shared_ptr<SimulatedClock> clock_ = std::make_shared<SimulatedClock>();
  store::StorePtr store_;
  std::unique_ptr<EventLog> events_;
  std::shared_ptr<RecordingFencer> fencer_;
  // Before ha_: its outages hold guards on them.
  RunningTasks running_, old_running_;
  std::unique_ptr<HaController> ha_;
  std::set<std::string> down_;
  std::vector<std::string> enqueued_;
  std::string h1_, h2_;
  int hosts_ = 0;
};

TEST_F(HaControllerTest, FailedHostIsFencedThenItsHaVmsRestartHighestPriorityFirst) {
  add_vm("db", h1_, true, 500);
  add_vm("web", h1_, true, 10);
  add_vm("plain", h1_, false);
  add_vm("off", h1_, true, 900, "stopped");
  add_vm("elsewhere", h2_, true);
  down_ = {h1_};
  run_for(std::chrono::seconds(4));  // the first pass starts the outage clock: 4 s to wait
  EXPECT_TRUE(fencer_->calls.empty()) << "fenced before failed_after";
  EXPECT_EQ(host_of("db"), h1_);
  run_for(std::chrono::seconds(1));
  ASSERT_EQ(fencer_->calls, std::vector<std::string>{"h1"});
  EXPECT_EQ(ha_->host_phase(h1_), "fenced");
  EXPECT_FALSE(host_of("db"));
  EXPECT_FALSE(host_of("web"));
  EXPECT_EQ(host_of("plain"), h1_) << "not HA: stays (unknown) with its host";
  EXPECT_EQ(host_of("off"), h1_) << "desired stopped: nothing to restart";
  EXPECT_EQ(host_of("elsewhere"), h2_);
  EXPECT_EQ(enqueued_, (std::vector<std::string>{"db", "web"}));
  auto st = decode_vm_status(store_->get_vm_by_name("db")->status);
  EXPECT_EQ(st.state, "pending");
  EXPECT_NE(st.last_error.find("fenced"), std::string::npos);
  // A new generation: the restart's agent requests get new ids, so a host that ran db
  // before (an earlier failover) executes them instead of answering from its request log.
  EXPECT_EQ(decode_vm_document(store_->get_vm_by_name("db")->spec)->control.generation, 2);
  EXPECT_EQ(decode_vm_document(store_->get_vm_by_name("plain")->spec)->control.generation, 1);
  EXPECT_EQ(actions(), (std::vector<std::string>{"host.failed host/h1", "host.fencing host/h1",
                                                 "host.fenced host/h1", "vm.ha_restart vm/db",
                                                 "vm.ha_restart vm/web"}));
  store::TaskListOptions o;
  o.target_id = h1_;
  auto tasks = store_->list_tasks(o);
  ASSERT_EQ(tasks->size(), 1u);
  EXPECT_EQ((*tasks)[0].kind, "host.fence");
  EXPECT_EQ((*tasks)[0].state, "succeeded");
  // Later passes do nothing more; the host answering again closes the outage.
  run_for(std::chrono::seconds(5));
  EXPECT_EQ(fencer_->calls.size(), 1u);
  down_.clear();
  run_for(std::chrono::seconds(1));
  EXPECT_EQ(ha_->host_phase(h1_), "");
  EXPECT_EQ(actions().back(), "host.returned host/h1");
}

TEST_F(HaControllerTest, AFailedFenceLeavesTheVmsAndRetriesWithBackoff) {
  add_vm("db", h1_, true);
  fencer_->outcomes = {false, false, true};
  down_ = {h1_};
  run_for(std::chrono::seconds(5));
  ASSERT_EQ(fencer_->calls.size(), 1u);
  EXPECT_EQ(ha_->host_phase(h1_), "fence_failed");
  EXPECT_EQ(host_of("db"), h1_) << "never restarted on a guess";
  run_for(std::chrono::seconds(4));  // first retry after 5 s
  EXPECT_EQ(fencer_->calls.size(), 1u);
  run_for(std::chrono::seconds(1));
  EXPECT_EQ(fencer_->calls.size(), 2u);
  run_for(std::chrono::seconds(9));  // second retry after 10 s
  EXPECT_EQ(fencer_->calls.size(), 2u);
  EXPECT_EQ(host_of("db"), h1_);
  run_for(std::chrono::seconds(1));
  EXPECT_EQ(fencer_->calls.size(), 3u);
  EXPECT_FALSE(host_of("db"));
  auto a = actions();
  EXPECT_EQ(std::count(a.begin(), a.end(), "host.fence_failed host/h1"), 2);
}

TEST_F(HaControllerTest, NoFenceDeviceMeansNoRestartEver) {
  add_vm("db", h2_, true);
  down_ = {h2_};
  fencer_->devices = {"h1"};
  run_for(std::chrono::seconds(120));
  EXPECT_TRUE(fencer_->calls.empty());
  EXPECT_EQ(host_of("db"), h2_);
  EXPECT_EQ(ha_->host_phase(h2_), "fence_unconfigured");
  auto a = actions();
  EXPECT_EQ(std::count(a.begin(), a.end(), "host.fence_unconfigured host/h2"), 1)
      << "said once per outage";
}

TEST_F(HaControllerTest, AHostWithoutHaVmsIsNeverFenced) {
  add_vm("plain", h1_, false);
  down_ = {h1_};
  run_for(std::chrono::seconds(60));
  EXPECT_TRUE(fencer_->calls.empty());
  EXPECT_TRUE(actions().empty());
}

TEST_F(HaControllerTest, ARestartedManagerDoesNotRestartAVmTwice) {
  add_vm("db", h1_, true);
  down_ = {h1_};
  run_for(std::chrono::seconds(5));
  ASSERT_FALSE(host_of("db"));
  // The controller placed it on h2; then the manager restarts while h1 is still down.
  auto vm = *store_->get_vm_by_name("db");
  vm.host_id = h2_;
  ASSERT_TRUE(store_->update_vm(vm));
  ha_ = make_controller();
  enqueued_.clear();
  run_for(std::chrono::seconds(30));
  EXPECT_EQ(host_of("db"), h2_);
  EXPECT_TRUE(enqueued_.empty());
  EXPECT_EQ(fencer_->calls.size(), 1u) << "nothing left on h1 to restart: no second fence";
}

// Leases (docs/internals/ha.md, "Leases"): a host without a fence device, whose leases
// the manager stopped renewing when it went unreachable. Only the VMs whose leases the
// host confirmed restart, and only once the view says every lease has run out.
TEST_F(HaControllerTest, ExpiredLeasesRestartTheLeasedVmsWithoutAFence) {
  add_vm("db", h2_, true, 500);
  add_vm("web", h2_, true, 10);
  add_vm("old-shim", h2_, true, 900);  // its QEMU runs under a shim that enforces no lease
  add_vm("plain", h2_, false);
  fencer_->devices = {"h1"};
  down_ = {h2_};
  const auto expired_by = clock_->now() + std::chrono::seconds(30);
  ha_->set_lease_view([&](const std::string& host_id) {
    HaLeaseView v;
    if (host_id == h2_) {
      v.expired_by = expired_by;
      v.vms = {"db", "web"};
    }
    return v;
  });
  run_for(std::chrono::seconds(29));
  EXPECT_EQ(host_of("db"), h2_) << "restarted before its lease ran out";
  EXPECT_EQ(ha_->host_phase(h2_), "fence_unconfigured");
  run_for(std::chrono::seconds(2));
  EXPECT_FALSE(host_of("db"));
  EXPECT_FALSE(host_of("web"));
  EXPECT_EQ(host_of("old-shim"), h2_) << "no lease in force: it may still run; it waits";
  EXPECT_EQ(host_of("plain"), h2_);
  EXPECT_EQ(enqueued_, (std::vector<std::string>{"db", "web"}));
  EXPECT_TRUE(fencer_->calls.empty());
  auto st = decode_vm_status(store_->get_vm_by_name("db")->status);
  EXPECT_NE(st.last_error.find("leases on host h2 ran out"), std::string::npos) << st.last_error;
  auto a = actions();
  EXPECT_EQ(std::count(a.begin(), a.end(), "host.leases_expired host/h2"), 1);
  EXPECT_EQ(std::count(a.begin(), a.end(), "vm.ha_restart vm/db"), 1);
  // Later passes restart nothing twice; "old-shim" keeps waiting for a fence.
  run_for(std::chrono::seconds(30));
  EXPECT_EQ(enqueued_.size(), 2u);
  EXPECT_EQ(host_of("old-shim"), h2_);
}

TEST_F(HaControllerTest, LeasesAllRunOutMeansNoFenceAtAll) {
  add_vm("db", h1_, true);
  fencer_->outcomes = {false, false, false, false};  // the power controller died with the host
  down_ = {h1_};
  ha_->set_lease_view([&](const std::string& host_id) {
    HaLeaseView v;
    if (host_id == h1_) {
      v.expired_by = clock_->now() - std::chrono::seconds(1);
      v.vms = {"db"};
    }
    return v;
  });
  run_for(std::chrono::seconds(5));
  EXPECT_FALSE(host_of("db"));
  EXPECT_EQ(ha_->host_phase(h1_), "leases_expired");
  EXPECT_TRUE(fencer_->calls.empty()) << "the leases made the fence unnecessary";
  store::TaskListOptions o;
  o.target_id = h1_;
  auto tasks = store_->list_tasks(o);
  ASSERT_EQ(tasks->size(), 1u);
  EXPECT_EQ((*tasks)[0].state, "succeeded");
  down_.clear();
  run_for(std::chrono::seconds(1));
  EXPECT_EQ(actions().back(), "host.returned host/h1");
}

TEST_F(HaControllerTest, NoLeaseGrantedMeansNoRestartWithoutAFence) {
  add_vm("db", h2_, true);
  fencer_->devices = {"h1"};
  down_ = {h2_};
  // A manager that never granted this host a lease (restarted during the outage) vouches
  // for nothing, whatever the agent confirmed to an earlier manager.
  ha_->set_lease_view([](const std::string&) { return HaLeaseView{}; });
  run_for(std::chrono::seconds(300));
  EXPECT_EQ(host_of("db"), h2_);
}

TEST_F(HaControllerTest, LeaseVmsAreTheHostsHaVms) {
  add_vm("db", h1_, true);
  add_vm("stopped-ha", h1_, true, 0, "stopped");
  add_vm("plain", h1_, false);
  add_vm("other", h2_, true);
  auto vms = ha_->lease_vms(h1_);
  std::sort(vms.begin(), vms.end());
  EXPECT_EQ(vms, (std::vector<std::string>{"db", "stopped-ha"}));
}

// lease_vms() keeps what it decoded per VM version (it is asked on every heartbeat): every
// kind of write after its first answer reaches the next one.
TEST_F(HaControllerTest, LeaseVmsFollowEveryWriteOfTheHostsVms) {
  add_vm("db", h1_, true);
  add_vm("stopped-ha", h1_, true, 0, "stopped");
  add_vm("plain", h1_, false);
  add_vm("other", h2_, true);
  auto leased = [&](const std::string& host) {
    auto vms = ha_->lease_vms(host);
    std::sort(vms.begin(), vms.end());
    return vms;
  };
  ASSERT_EQ(leased(h1_), (std::vector<std::string>{"db", "stopped-ha"}));
  ASSERT_EQ(leased(h2_), (std::vector<std::string>{"other"}));
  auto rewrite = [&](const std::string& name, const std::function<void(store::VmRecord&)>& f) {
    auto vm = store_->get_vm_by_name(name);
    ASSERT_TRUE(vm);
    f(*vm);
    ASSERT_TRUE(store_->update_vm(*vm)) << name;
  };
  rewrite("plain", [](store::VmRecord& r) {  // HA turned on
    auto d = decode_vm_document(r.spec);
    ASSERT_TRUE(d);
    d->ha.enabled = true;
    r.spec = encode(*d);
  });
  rewrite("db", [](store::VmRecord& r) { r.deletion_requested = true; });
  rewrite("other", [&](store::VmRecord& r) { r.host_id = h1_; });  // moved h2 -> h1
  auto gone = store_->get_vm_by_name("stopped-ha");
  ASSERT_TRUE(gone);
  ASSERT_TRUE(store_->delete_vm(gone->id, std::nullopt));
  EXPECT_EQ(leased(h1_), (std::vector<std::string>{"other", "plain"}));
  EXPECT_EQ(leased(h2_), (std::vector<std::string>{}));
  rewrite("plain", [](store::VmRecord& r) {  // HA turned off again
    auto d = decode_vm_document(r.spec);
    ASSERT_TRUE(d);
    d->ha.enabled = false;
    r.spec = encode(*d);
  });
  EXPECT_EQ(leased(h1_), (std::vector<std::string>{"other"}));
}

TEST(VmHaValidationTest, HaNeedsNoLocalWritableDiskAndNoPin) {
  VmDocument d;
  d.spec.name = "v";
  d.ha.enabled = true;
  EXPECT_TRUE(validate_ha(d));
  d.spec.disks.push_back(model::DiskSpec{"root", "debian", 0, true, false, "", ""});
  auto r = validate_ha(d);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().field, "ha");
  EXPECT_NE(r.error().message.find("datastore"), std::string::npos);
  d.spec.disks[0].readonly = true;
  EXPECT_TRUE(validate_ha(d));
  // A writable disk on a datastore (shared storage) survives its host: HA is allowed.
  d.spec.disks.push_back(model::DiskSpec{"data", "", 1 << 20, false, false, "shared", ""});
  EXPECT_TRUE(validate_ha(d));
  d.placement.host = "h1";
  ASSERT_FALSE(validate_ha(d));
  d.placement.host.clear();
  d.ha.priority = 1001;
  ASSERT_FALSE(validate_ha(d));
  EXPECT_EQ(validate_ha(d).error().field, "ha.priority");
}

// The host.fence task lives with the outage (in memory): registered while it lasts, so its
// lease is renewed; ended when the host answers again before a fence ("no fence needed")
// instead of being left running.
TEST_F(HaControllerTest, AFenceTaskIsRegisteredWhileItsOutageLastsAndEndsWhenTheHostReturns) {
  RunningTasks& running = running_;
  ha_->set_running_tasks(&running);
  add_vm("db", h2_, true);
  down_ = {h2_};
  fencer_->devices = {"h1"};  // none for h2: the outage lasts
  run_for(std::chrono::seconds(60));
  ASSERT_EQ(ha_->host_phase(h2_), "fence_unconfigured");
  ASSERT_EQ(fence_tasks().size(), 1u);
  const std::string id = fence_tasks().front();
  EXPECT_TRUE(running.contains(id));
  TaskLeases leases(*store_, clock_, running, TaskLeaseConfig{});
  clock_->advance(std::chrono::minutes(10));
  EXPECT_EQ(leases.renew(), 1);
  down_.clear();
  ha_->tick();
  EXPECT_FALSE(running.contains(id));
  auto t = store_->get_task(id);
  EXPECT_EQ(t->state, "succeeded");
  EXPECT_EQ(t->message, "no fence needed: the host answers again");
  EXPECT_EQ(ha_->host_phase(h2_), "");
}

// A manager restarted during an outage opens a new one (and task); the previous run's
// task, no longer registered nor renewed, is failed by the sweep, the new one is not.
TEST_F(HaControllerTest, ARestartedManagersOpenFenceTaskIsSwept) {
  ha_->set_running_tasks(&old_running_);
  add_vm("db", h2_, true);
  down_ = {h2_};
  fencer_->devices = {"h1"};
  run_for(std::chrono::seconds(60));
  ASSERT_EQ(fence_tasks().size(), 1u);
  const std::string old_id = fence_tasks().front();
  ha_.reset();  // the manager "dies" (its registry with it)
  EXPECT_FALSE(old_running_.contains(old_id));
  ha_ = make_controller();
  ha_->set_running_tasks(&running_);
  run_for(std::chrono::seconds(60));
  ASSERT_EQ(fence_tasks().size(), 2u);
  const std::string new_id = fence_tasks().back();
  TaskLeases leases(*store_, clock_, running_, TaskLeaseConfig{});
  clock_->advance(std::chrono::minutes(6));
  EXPECT_EQ(leases.renew(), 1);
  auto swept = leases.sweep();
  ASSERT_TRUE(swept) << swept.error().to_string();
  ASSERT_EQ(swept->size(), 1u);
  EXPECT_EQ(swept->front().id, old_id);
  EXPECT_EQ(store_->get_task(new_id)->state, "running");
}

}  // namespace
}  // namespace strata::manager
