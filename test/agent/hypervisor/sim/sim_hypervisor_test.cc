// The sim driver (src/agent/hypervisor/sim/) on a ManualClock: its state machine, the
// timed boot and shutdown, metrics, failure injection and what it refuses to pretend.
#include "strata/agent/sim_hypervisor.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

namespace strata::agent {
namespace {

using namespace std::chrono_literals;
using model::VmState;

model::VmSpec spec(const std::string& name, uint32_t vcpus = 2, uint64_t memory_mib = 512) {
  model::VmSpec s;
  s.name = name;
  s.vcpus = vcpus;
  s.memory_mib = memory_mib;
  model::DiskSpec d;
  d.name = "root";
  d.size_bytes = 1ull << 30;
  d.boot = true;
  s.disks.push_back(d);
  return s;
}

struct SimHypervisorTest : ::testing::Test {
  std::shared_ptr<ManualClock> clock = std::make_shared<ManualClock>();
  std::vector<VmEvent> events;
  SimHypervisorPtr make(SimOptions o) {
    o.clock = clock;
    auto hv = make_sim_hypervisor(std::move(o));
    EXPECT_TRUE(hv) << hv.error().to_string();
    (*hv)->watch([this](const VmEvent& e) { events.push_back(e); });
    return std::move(*hv);
  }
  VmState state(SimHypervisor& hv, const std::string& name) {
    auto s = hv.status(name);
    EXPECT_TRUE(s) << s.error().to_string();
    return s ? s->state : VmState::crashed;
  }
};

TEST_F(SimHypervisorTest, BootAndShutdownCompleteOnTheClockNotBefore) {
  SimOptions o;
  o.boot_time = 3s;
  o.shutdown_time = 2s;
  auto hv = make(o);
  auto defined = hv->define(spec("web"));
  ASSERT_TRUE(defined) << defined.error().to_string();
  EXPECT_EQ(defined->state, VmState::defined);
  EXPECT_FALSE(defined->spec.uuid.empty());  // completed like the QEMU driver's
  ASSERT_TRUE(hv->start("web"));
  EXPECT_EQ(state(*hv, "web"), VmState::starting);
  clock->advance(2999ms);
  hv->tick();
  EXPECT_EQ(state(*hv, "web"), VmState::starting);
  clock->advance(1ms);
  hv->tick();
  EXPECT_EQ(state(*hv, "web"), VmState::running);

  ASSERT_TRUE(hv->shutdown("web", 30s));
  EXPECT_EQ(state(*hv, "web"), VmState::shutting_down);
  ASSERT_TRUE(hv->shutdown("web", 30s));  // a second stop joins the first
  clock->advance(2s);
  auto st = hv->status("web");
  ASSERT_TRUE(st);
  EXPECT_EQ(st->state, VmState::stopped);
  ASSERT_TRUE(st->last_exit);
  EXPECT_EQ(st->last_exit->reason, "guest-shutdown");

  std::vector<VmState> seen;
  for (const auto& e : events) seen.push_back(e.state);
  EXPECT_EQ(seen, (std::vector<VmState>{VmState::defined, VmState::starting, VmState::running,
                                        VmState::shutting_down, VmState::stopped}));
}

TEST_F(SimHypervisorTest, AShutdownLongerThanItsTimeoutIsForcedOffAtTheTimeout) {
  SimOptions o;
  o.shutdown_time = 10s;
  auto hv = make(o);
  ASSERT_TRUE(hv->define(spec("slow")));
  ASSERT_TRUE(hv->start("slow"));
  EXPECT_EQ(state(*hv, "slow"), VmState::running);  // boot_time 0: at once
  ASSERT_TRUE(hv->shutdown("slow", 4s));
  clock->advance(4s);
  auto st = hv->status("slow");
  ASSERT_TRUE(st);
  EXPECT_EQ(st->state, VmState::stopped);
  ASSERT_TRUE(st->last_exit);
  EXPECT_EQ(st->last_exit->reason, "killed");
}

TEST_F(SimHypervisorTest, TransitionsRefusedInTheWrongState) {
  auto hv = make({});
  EXPECT_EQ(hv->start("nope").error().code, ErrorCode::not_found);
  ASSERT_TRUE(hv->define(spec("a")));
  EXPECT_EQ(hv->define(spec("a")).error().code, ErrorCode::already_exists);
  EXPECT_EQ(hv->pause("a").error().code, ErrorCode::failed_precondition);
  EXPECT_EQ(hv->force_off("a").error().code, ErrorCode::failed_precondition);
  EXPECT_EQ(hv->reboot("a").error().code, ErrorCode::failed_precondition);
  ASSERT_TRUE(hv->start("a"));
  EXPECT_EQ(hv->start("a").error().code, ErrorCode::failed_precondition);
  EXPECT_EQ(hv->undefine("a").error().code, ErrorCode::failed_precondition);
  ASSERT_TRUE(hv->pause("a"));
  EXPECT_EQ(state(*hv, "a"), VmState::paused);
  EXPECT_EQ(hv->resume("a").has_value(), true);
  EXPECT_EQ(state(*hv, "a"), VmState::running);
  ASSERT_TRUE(hv->reboot("a"));
  EXPECT_EQ(events.back().detail, "reset");
  ASSERT_TRUE(hv->force_off("a"));
  EXPECT_EQ(state(*hv, "a"), VmState::stopped);
  ASSERT_TRUE(hv->undefine("a"));
  EXPECT_EQ(hv->status("a").error().code, ErrorCode::not_found);
  EXPECT_TRUE(hv->list().empty());
}

TEST_F(SimHypervisorTest, ADuplicateUuidIsRefused) {
  auto hv = make({});
  auto a = hv->define(spec("a"));
  ASSERT_TRUE(a);
  auto b = spec("b");
  b.uuid = a->spec.uuid;
  EXPECT_EQ(hv->define(b).error().code, ErrorCode::already_exists);
}

TEST_F(SimHypervisorTest, AnInvalidSpecIsRefusedBeforeItIsStored) {
  auto hv = make({});
  auto bad = spec("Bad Name");
  auto r = hv->define(bad);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::invalid_argument);
  EXPECT_TRUE(hv->list().empty());
}

TEST_F(SimHypervisorTest, MetricsFollowRunningTimeAndMemory) {
  SimOptions o;
  o.cpu_busy = 0.25;
  o.memory_resident = 0.5;
  auto hv = make(o);
  ASSERT_TRUE(hv->define(spec("m", 4, 1024)));
  auto idle = hv->stats("m");
  ASSERT_TRUE(idle);
  EXPECT_EQ(idle->rss_bytes, 0u);
  EXPECT_EQ(idle->cpu_time_ns, 0u);
  ASSERT_TRUE(hv->start("m"));
  clock->advance(10s);
  auto s = hv->stats("m");
  ASSERT_TRUE(s);
  // 4 vCPUs x 25 % x 10 s = 10 s of CPU time.
  EXPECT_EQ(s->cpu_time_ns, 10'000'000'000ull);
  EXPECT_EQ(s->rss_bytes, 512ull << 20);
  auto u = hv->usage();
  EXPECT_EQ(u.vms, 1u);
  EXPECT_EQ(u.active, 1u);
  EXPECT_EQ(u.vcpus, 4u);
  EXPECT_DOUBLE_EQ(u.cpus_busy, 1.0);
  // Paused: no CPU accrues.
  ASSERT_TRUE(hv->pause("m"));
  clock->advance(10s);
  EXPECT_EQ(hv->stats("m")->cpu_time_ns, 10'000'000'000ull);
  EXPECT_DOUBLE_EQ(hv->usage().cpus_busy, 0.0);
}

TEST_F(SimHypervisorTest, ANamedVmFailsToStartAndIsReportedCrashed) {
  SimOptions o;
  o.fail_start = {"doomed"};
  auto hv = make(o);
  ASSERT_TRUE(hv->define(spec("doomed")));
  ASSERT_TRUE(hv->define(spec("fine")));
  auto r = hv->start("doomed");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::internal);
  EXPECT_NE(r.error().message.find("injected"), std::string::npos);
  auto st = hv->status("doomed");
  ASSERT_TRUE(st);
  EXPECT_EQ(st->state, VmState::crashed);
  EXPECT_TRUE(hv->start("fine"));
}

TEST_F(SimHypervisorTest, AStartFailureRateFailsSomeStartsReproducibly) {
  auto run = [&](uint64_t seed) {
    SimOptions o;
    o.start_failure_rate = 0.5;
    o.seed = seed;
    auto hv = make(o);
    std::string failed;
    for (int i = 0; i < 40; ++i) {
      auto n = "vm" + std::to_string(i);
      EXPECT_TRUE(hv->define(spec(n)));
      failed += hv->start(n) ? '.' : 'x';
    }
    return failed;
  };
  auto a = run(7);
  EXPECT_EQ(a, run(7));
  EXPECT_NE(a.find('x'), std::string::npos);
  EXPECT_NE(a.find('.'), std::string::npos);
}

TEST_F(SimHypervisorTest, WhatTheSimDoesNotModelIsAnErrorNotASuccess) {
  auto hv = make({});
  ASSERT_TRUE(hv->define(spec("a")));
  EXPECT_EQ(hv->console_tail("a", 100).error().code, ErrorCode::failed_precondition);
  EXPECT_EQ(hv->console_write("a", "x").error().code, ErrorCode::failed_precondition);
  EXPECT_EQ(hv->guest_agent("a", "{}", 1s).error().code, ErrorCode::failed_precondition);
  EXPECT_EQ(hv->snapshot_create("a", "s").error().code, ErrorCode::failed_precondition);
  EXPECT_EQ(hv->clone("a", spec("b"), true).error().code, ErrorCode::failed_precondition);
  EXPECT_EQ(hv->backup("a", {}).error().code, ErrorCode::failed_precondition);
  EXPECT_EQ(hv->migration(), nullptr);
}

TEST(SimOptionsTest, BadOptionsNameTheirField) {
  auto field = [](SimOptions o) {
    auto st = validate(o);
    return st ? std::string() : st.error().field;
  };
  SimOptions o;
  EXPECT_EQ(field(o), "clock");
  o.clock = std::make_shared<ManualClock>();
  EXPECT_EQ(field(o), "");
  auto b = o;
  b.boot_time = -1ms;
  EXPECT_EQ(field(b), "boot_time");
  b = o;
  b.shutdown_time = -1ms;
  EXPECT_EQ(field(b), "shutdown_time");
  b = o;
  b.start_failure_rate = 1.5;
  EXPECT_EQ(field(b), "start_failure_rate");
  b.start_failure_rate = std::numeric_limits<double>::quiet_NaN();
  EXPECT_EQ(field(b), "start_failure_rate");
  b = o;
  b.cpu_busy = -0.1;
  EXPECT_EQ(field(b), "cpu_busy");
  b = o;
  b.memory_resident = 2;
  EXPECT_EQ(field(b), "memory_resident");
  b = o;
  b.fail_start = {"Not A Name"};
  EXPECT_EQ(field(b), "fail_start");
  EXPECT_FALSE(make_sim_hypervisor(b));
}

}  // namespace
}  // namespace strata::agent
