// The controller's backoff and the agents' heartbeats on a SimulatedClock: retries come due
// when simulated time reaches them (base, 2x, 4x ...), and a host that stops answering is
// declared unreachable (its VMs "unknown") after miss_threshold heartbeats of simulated
// time. Real time spent: milliseconds, not the seconds these intervals stand for.
#include "strata/manager/controllers/vm_controller.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <thread>

#include "strata/common/clock_wait.h"
#include "strata/manager/agents/connection_manager.h"

namespace strata::manager {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

// A hang guard in real time (the test waits for another thread), never a timing assertion.
template <typename F>
bool eventually(F f) {
  for (int i = 0; i < 10000 && !f(); ++i) std::this_thread::sleep_for(1ms);
  return f();
}

class ControllerClockTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/strata-ctl-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    auto s = store::open_store("sqlite::memory:", store::StoreOptions{clock_, 1});
    ASSERT_TRUE(s) << s.error().to_string();
    store_ = std::move(*s);
    events_ = std::make_unique<EventLog>(*store_);
    tasks_ = std::make_unique<TaskTracker>(*store_);
    ConnectionConfig cc;
    cc.heartbeat.interval = 2s;
    cc.heartbeat.miss_threshold = 3;
    cc.heartbeat.rpc_timeout = 50ms;  // gRPC deadlines are real time: keep the misses short
    cc.startup_wait = 0ms;
    agents_ = std::make_unique<ConnectionManager>(*store_, *events_, clock_, cc);
    auto sched = sched::Scheduler::create({});
    ASSERT_TRUE(sched);
    placement_ = std::make_unique<PlacementService>(*store_, std::move(*sched));
    ControllerConfig cfg;
    cfg.workers = 1;
    cfg.resync_interval = std::chrono::hours(1);
    cfg.retry_base = 1s;
    cfg.retry_max = 30s;
    controller_ = std::make_unique<VmController>(*store_, *agents_, *tasks_, *events_,
                                                 *placement_, clock_, cfg);
    agents_->set_callbacks(
        {[this](const std::string& h, Liveness l) { controller_->on_host_state(h, l); },
         [this](const std::string& h, const pb::VmEvent& e) { controller_->on_vm_event(h, e); },
         nullptr, nullptr});
  }
  void TearDown() override {
    if (controller_) controller_->stop();
    if (agents_) agents_->stop();
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  // A host nobody serves (the socket does not exist) and a VM placed on it, meant to run.
  std::pair<std::string, std::string> silent_host_with_vm() {
    store::HostRecord h;
    h.name = "h1";
    h.address = "unix:" + (dir_ / "nobody.sock").string();
    h.state = "up";
    h.accelerator = "tcg";
    h.cpu_threads = 4;
    h.memory_mib = 4096;
    auto host = store_->create_host(h);
    EXPECT_TRUE(host);
    VmDocument doc;
    doc.spec.name = "web";
    doc.spec.vcpus = 1;
    doc.spec.memory_mib = 256;
    model::DiskSpec disk;
    disk.name = "root";
    disk.base_image = "base";
    disk.boot = true;
    doc.spec.disks.push_back(disk);
    store::VmRecord vm;
    vm.name = "web";
    vm.host_id = host->id;
    vm.desired_state = "running";
    vm.spec = encode(doc);
    vm.status = encode(VmStatusDoc{});
    auto stored = store_->create_vm(vm);
    EXPECT_TRUE(stored);
    return {host ? host->id : "", stored ? stored->id : ""};
  }
  VmStatusDoc status(const std::string& vm_id) {
    auto vm = store_->get_vm(vm_id);
    return vm ? decode_vm_status(vm->status) : VmStatusDoc{};
  }
  Clock::TimePoint at(Clock::Duration d) { return Clock::TimePoint(d); }

  // Advances simulated time in `step`s until done(), each step only once `threads` threads
  // are parked on the clock (every one of them has seen the current time and waits for a
  // later one), so time never runs ahead of a thread that has not caught up. False when
  // done() did not come: a real-time hang guard (~10 s), not a timing assertion. Code that
  // waited in real time instead of on the clock never parks: the guard fails the test.
  template <typename F>
  bool advance_until(size_t threads, Clock::Duration step, F done) {
    for (int i = 0; i < 10000; ++i) {
      if (done()) return true;
      if (clock_->parked() >= threads)
        clock_->advance(step);
      else
        std::this_thread::sleep_for(1ms);
    }
    return done();
  }

  fs::path dir_;
  std::shared_ptr<SimulatedClock> clock_ = std::make_shared<SimulatedClock>();
  store::StorePtr store_;
  std::unique_ptr<EventLog> events_;
  std::unique_ptr<TaskTracker> tasks_;
  std::unique_ptr<ConnectionManager> agents_;
  std::unique_ptr<PlacementService> placement_;
  std::unique_ptr<VmController> controller_;
};

// The host never connected (no connection at all): each attempt fails and is retried after
// base, 2*base, 4*base of simulated time, and not earlier.
TEST_F(ControllerClockTest, BackoffRetriesComeDueOnTheClock) {
  auto [host, vm] = silent_host_with_vm();
  controller_->start();  // the first resync reconciles the VM at t=0
  ASSERT_TRUE(eventually([&] { return controller_->retry_due(vm) == at(1s); }));
  EXPECT_EQ(status(vm).last_error, "waiting for the host to connect");
  EXPECT_EQ(status(vm).observed_ms, 0);

  // Just before the retry is due: once the timer has looked at t=999ms (it parks again),
  // nothing has run.
  clock_->advance(999ms);
  ASSERT_TRUE(eventually([&] { return clock_->parked() == 1; }));
  EXPECT_EQ(controller_->retry_due(vm), at(1s)) << "retried before its backoff ended";
  EXPECT_EQ(status(vm).observed_ms, 0);

  // The attempts find what the first one recorded (the same error): they write nothing (a
  // status is written when it changes, and once per manager process), so the record and its
  // resource_version stay as the first attempt left them.
  const int64_t version = store_->get_vm(vm)->resource_version;
  clock_->advance(1ms);  // t=1s: second attempt, next one 2 s later
  ASSERT_TRUE(eventually([&] { return controller_->retry_due(vm) == at(3s); }));
  EXPECT_EQ(status(vm).observed_ms, 0);
  clock_->advance(2s);  // t=3s: third attempt, next one 4 s later
  ASSERT_TRUE(eventually([&] { return controller_->retry_due(vm) == at(7s); }));
  EXPECT_EQ(status(vm).observed_ms, 0);
  EXPECT_EQ(store_->get_vm(vm)->resource_version, version) << "an unchanged status was rewritten";
  // Then 8, 16 and retry_max (30) s apart.
  for (auto next : {15s, 31s, 61s, 91s, 121s}) {
    auto due = controller_->retry_due(vm);
    ASSERT_TRUE(due);
    clock_->advance(*due - clock_->now());
    ASSERT_TRUE(eventually([&] { return controller_->retry_due(vm) == at(next); }))
        << "next retry expected at " << next.count() << " s";
  }
}

// Heartbeats on the clock: a host that does not answer is unreachable after 3 missed
// heartbeats (6 s of simulated time) and its VM shows "unknown"; no real 6 s pass.
TEST_F(ControllerClockTest, SilentHostBecomesUnreachableInSimulatedTime) {
  auto [host, vm] = silent_host_with_vm();
  controller_->start();
  ASSERT_TRUE(agents_->start());
  EXPECT_NE(agents_->liveness(host), Liveness::unreachable) << "one miss is not enough";
  // Parked on the clock: the controller's timer and the connections' timer (the latter
  // only while no heartbeat is out: a miss takes 50 ms of real time).
  ASSERT_TRUE(
      advance_until(2, 500ms, [&] { return agents_->liveness(host) == Liveness::unreachable; }))
      << "not unreachable; simulated time " << clock_->now().time_since_epoch().count() << " ns";
  // Misses at t=0, 2 s + the host's offset (0..2 s) and 2 s later: the third one declares
  // it.
  EXPECT_GE(clock_->now(), at(4s)) << "declared unreachable before 3 heartbeats were missed";
  EXPECT_LE(clock_->now(), at(6s)) << "declared unreachable late";
  ASSERT_TRUE(eventually([&] { return status(vm).state == "unknown"; }));
  EXPECT_EQ(status(vm).last_error, "host unreachable");
  auto h = store_->get_host(host);
  ASSERT_TRUE(h);
  EXPECT_EQ(h->state, "unreachable");
  bool event = false;
  if (auto all = store_->list_events(0, 0))
    for (const auto& e : *all) event = event || e.action == "host.unreachable";
  EXPECT_TRUE(event);
}

// An agent's WATCHDOG event (the guest hung; QEMU acted) is recorded as the VM's state
// change and as a vm.watchdog event of its own, naming the action; a plain state change is
// not one.
TEST_F(ControllerClockTest, AWatchdogEventIsRecordedAsVmWatchdog) {
  auto [host, vm] = silent_host_with_vm();
  pb::VmEvent ev;
  ev.set_vm("web");
  ev.set_state(pb::VM_STATE_RUNNING);
  ev.set_detail("RESUME");
  controller_->on_vm_event(host, ev);
  ev.set_detail("WATCHDOG reset");
  controller_->on_vm_event(host, ev);
  std::vector<store::EventRecord> watchdog;
  size_t states = 0;
  if (auto all = store_->list_events(0, 0))
    for (const auto& e : *all) {
      if (e.action == "vm.watchdog") watchdog.push_back(e);
      states += e.action == "vm.state";
    }
  ASSERT_EQ(watchdog.size(), 1u);
  EXPECT_EQ(watchdog[0].target, "vm/web");
  EXPECT_EQ(watchdog[0].result, "reset");
  EXPECT_EQ(watchdog[0].actor, "agent:" + host);
  EXPECT_EQ(states, 2u);
  // From a host the VM is not on: ignored (a stale copy's events say nothing of the VM).
  controller_->on_vm_event("other-host", ev);
  size_t after = 0;
  if (auto all = store_->list_events(0, 0))
    for (const auto& e : *all) after += e.action == "vm.watchdog";
  EXPECT_EQ(after, 1u);
}

}  // namespace
}  // namespace strata::manager
