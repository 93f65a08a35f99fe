// Typed QMP monitor tests: reply validation on QEMU 7.2's recorded replies and on malformed
// ones, and the monitor driven over a socket by the fake monitor replaying recorded
// scenarios (transcripts/*.scenario): typed results, typed events, busy vs gone.
#include "qemu_monitor.h"

#include <gtest/gtest-spi.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <condition_variable>
#include <filesystem>
#include <mutex>

#include "fake_qmp_server.h"

namespace strata::agent::qemu {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using testing::FakeQmpServer;
using testing::load_scenario;
using testing::parse_scenario;

// The reply to the n-th command named `command` in a recorded scenario.
json recorded_reply(const std::string& scenario, const std::string& command, int nth = 0) {
  auto steps = load_scenario(scenario);
  for (size_t i = 0; i < steps.size(); ++i) {
    if (steps[i].kind != testing::ScenarioStep::expect || steps[i].msg["execute"] != command)
      continue;
    if (nth-- > 0) continue;
    for (size_t j = i + 1; j < steps.size(); ++j)
      if (steps[j].msg.contains("return")) return steps[j].msg["return"];
  }
  ADD_FAILURE() << "no reply to " << command << " in " << scenario;
  return nullptr;
}

TEST(QemuMonitorParse, RecordedReplies) {
  auto st = parse_status(recorded_reply("start-7.2.scenario", "query-status"));
  ASSERT_TRUE(st);
  EXPECT_EQ(st->status, "running");
  EXPECT_TRUE(st->running);
  auto paused = parse_status(recorded_reply("start-7.2.scenario", "query-status", 1));
  ASSERT_TRUE(paused);
  EXPECT_EQ(paused->status, "paused");
  EXPECT_FALSE(paused->running);

  auto cpus = parse_cpus_fast(recorded_reply("start-7.2.scenario", "query-cpus-fast"));
  ASSERT_TRUE(cpus) << cpus.error().message;
  ASSERT_EQ(cpus->size(), 1u);
  EXPECT_EQ((*cpus)[0].cpu_index, 0);
  EXPECT_GT((*cpus)[0].thread_id, 0);
  EXPECT_EQ((*cpus)[0].target, "x86_64");

  auto mem =
      parse_memory_size_summary(recorded_reply("start-7.2.scenario", "query-memory-size-summary"));
  ASSERT_TRUE(mem);
  EXPECT_EQ(mem->base_memory, 256u << 20);
  EXPECT_EQ(mem->plugged_memory, 0u);

  auto machines = parse_machines(recorded_reply("machines-7.2.scenario", "query-machines"));
  ASSERT_TRUE(machines) << machines.error().message;
  bool q35 = false;
  for (auto& m : *machines)
    if (m.name == "pc-q35-7.2") {
      q35 = true;
      EXPECT_EQ(m.alias, "q35");
      EXPECT_GT(m.cpu_max, 1);
    }
  EXPECT_TRUE(q35);

  // A recorded reply from a VM with disks (session-7.2.qmp, id c8).
  json bs = json::parse(R"([{"device": "", "node-name": "disk0",
      "stats": {"rd_bytes": 1024, "wr_bytes": 512}}, {"device": "ide0",
      "stats": {"rd_bytes": 1, "wr_bytes": 2}}])");
  auto stats = parse_blockstats(bs);
  ASSERT_TRUE(stats);
  ASSERT_EQ(stats->size(), 2u);
  EXPECT_EQ((*stats)[0].node_name, "disk0");
  EXPECT_EQ((*stats)[0].rd_bytes, 1024u);
  EXPECT_EQ((*stats)[1].device, "ide0");
  EXPECT_EQ((*stats)[1].wr_bytes, 2u);
}

TEST(QemuMonitorParse, MalformedRepliesAreErrorsNotExceptions) {
  for (const char* bad : {R"({})", R"({"status": "running"})", R"({"status": 3, "running": true})",
                          R"({"status": "running", "running": "yes"})", R"([])", R"(null)"}) {
    auto r = parse_status(json::parse(bad));
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error().code, ErrorCode::internal);
    EXPECT_NE(r.error().message.find("query-status"), std::string::npos) << r.error().message;
  }
  EXPECT_FALSE(parse_blockstats(json::parse(R"({})")));
  EXPECT_FALSE(parse_blockstats(json::parse(R"([{"device": ""}])")));
  EXPECT_FALSE(parse_blockstats(json::parse(R"([{"stats": {"rd_bytes": -1, "wr_bytes": 0}}])")));
  EXPECT_FALSE(parse_blockstats(json::parse(R"([{"stats": {"rd_bytes": 1.5, "wr_bytes": 0}}])")));
  EXPECT_FALSE(parse_blockstats(json::parse(R"([{"device": 7, "stats": {}}])")));
  EXPECT_FALSE(parse_cpus_fast(json::parse(R"([{"cpu-index": 0}])")));
  EXPECT_FALSE(parse_memory_size_summary(json::parse(R"({"plugged-memory": 0})")));
  EXPECT_FALSE(parse_balloon(json::parse(R"({"actual": "1G"})")));
  EXPECT_TRUE(parse_balloon(json::parse(R"({"actual": 1073741824})")));
  EXPECT_FALSE(parse_machines(json::parse(R"([{"name": "q35"}])")));
  EXPECT_FALSE(parse_greeting(json::parse(R"({"version": {}})")));
  EXPECT_FALSE(parse_greeting(json::parse(R"({"version": {"qemu": {"major": 7}}})")));
}

TEST(QemuMonitorParse, Events) {
  QmpMessage m;
  m.kind = QmpKind::event;
  m.event = "SHUTDOWN";
  m.timestamp_us = 42;
  m.payload = json::parse(R"({"guest": true, "reason": "guest-shutdown"})");
  auto e = parse_monitor_event(m);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->kind, MonitorEventKind::shutdown);
  EXPECT_TRUE(e->guest);
  EXPECT_EQ(e->reason, "guest-shutdown");
  EXPECT_EQ(e->timestamp_us, 42);
  m.payload = json::parse(R"({"guest": true})");
  EXPECT_FALSE(parse_monitor_event(m));  // a SHUTDOWN without a reason
  m.payload = nullptr;
  EXPECT_FALSE(parse_monitor_event(m));
  m.event = "GUEST_PANICKED";
  m.payload = json::parse(R"({"action": "pause"})");
  ASSERT_TRUE(parse_monitor_event(m));
  EXPECT_EQ(parse_monitor_event(m)->action, "pause");
  m.event = "STOP";
  m.payload = nullptr;
  EXPECT_EQ(parse_monitor_event(m)->kind, MonitorEventKind::stop);
  m.event = "NIC_RX_FILTER_CHANGED";
  ASSERT_TRUE(parse_monitor_event(m));
  EXPECT_EQ(parse_monitor_event(m)->kind, MonitorEventKind::other);
  EXPECT_EQ(parse_monitor_event(m)->name, "NIC_RX_FILTER_CHANGED");
}

class QemuMonitorFake : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("stqm-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_);
    sock_ = (dir_ / "qmp.sock").string();
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  Result<std::unique_ptr<QemuMonitor>> connect(std::chrono::milliseconds timeout = 10s) {
    return QemuMonitor::connect(
        sock_, timeout,
        [this](const MonitorEvent& e) {
          std::lock_guard lk(mu_);
          events_.push_back(e);
          cv_.notify_all();
        },
        [this] {
          std::lock_guard lk(mu_);
          eof_ = true;
          cv_.notify_all();
        });
  }
  bool wait_eof() {
    std::unique_lock lk(mu_);
    return cv_.wait_for(lk, 10s, [&] { return eof_; });
  }
  std::vector<std::string> event_names() {
    std::lock_guard lk(mu_);
    std::vector<std::string> out;
    for (auto& e : events_) out.push_back(e.name);
    return out;
  }

  std::filesystem::path dir_;
  std::string sock_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<MonitorEvent> events_;
  bool eof_ = false;
};

// Every command the driver sends, against QEMU 7.2's recorded answers.
TEST_F(QemuMonitorFake, StartScenario) {
  FakeQmpServer fake(sock_, load_scenario("start-7.2.scenario"));
  auto mon = connect();
  ASSERT_TRUE(mon) << mon.error().to_string();
  EXPECT_EQ((*mon)->greeting().major, 7);
  EXPECT_EQ((*mon)->greeting().minor, 2);
  auto st = (*mon)->query_status();
  ASSERT_TRUE(st) << st.error().to_string();
  EXPECT_EQ(st->status, "running");
  auto cpus = (*mon)->query_cpus_fast();
  ASSERT_TRUE(cpus);
  EXPECT_EQ(cpus->size(), 1u);
  ASSERT_TRUE((*mon)->query_memory_size_summary());
  auto balloon = (*mon)->query_balloon();  // no balloon device: QEMU's error, typed
  ASSERT_FALSE(balloon);
  EXPECT_NE(balloon.error().message.find("balloon"), std::string::npos);
  auto bs = (*mon)->query_blockstats();
  ASSERT_TRUE(bs);
  EXPECT_TRUE(bs->empty());
  ASSERT_TRUE((*mon)->stop());
  EXPECT_EQ((*mon)->query_status()->status, "paused");
  ASSERT_TRUE((*mon)->cont());
  ASSERT_TRUE((*mon)->system_reset());
  ASSERT_TRUE((*mon)->quit());
  ASSERT_TRUE(wait_eof());
  EXPECT_TRUE((*mon)->closed());
  EXPECT_EQ(event_names(), (std::vector<std::string>{"STOP", "RESUME", "RESET", "SHUTDOWN"}));
  std::lock_guard lk(mu_);
  EXPECT_EQ(events_[3].kind, MonitorEventKind::shutdown);
  EXPECT_EQ(events_[3].reason, "host-qmp-quit");
  EXPECT_FALSE(events_[3].guest);
  EXPECT_EQ(events_[2].reason, "host-qmp-system-reset");
}

TEST_F(QemuMonitorFake, PowerdownScenario) {
  FakeQmpServer fake(sock_, load_scenario("powerdown-7.2.scenario"));
  auto mon = connect();
  ASSERT_TRUE(mon) << mon.error().to_string();
  ASSERT_TRUE((*mon)->query_status());
  ASSERT_TRUE((*mon)->system_powerdown());
  ASSERT_TRUE(wait_eof());
  EXPECT_EQ(event_names(), (std::vector<std::string>{"POWERDOWN", "SHUTDOWN"}));
  std::lock_guard lk(mu_);
  EXPECT_TRUE(events_[1].guest);
  EXPECT_EQ(events_[1].reason, "guest-shutdown");
}

// QEMU's monitor serves one client: a second one waits for a greeting that never comes.
// That is "busy", a deadline, not "gone".
TEST_F(QemuMonitorFake, BusyMonitorIsDeadlineNotGone) {
  FakeQmpServer fake(sock_, parse_scenario("! stall\n", "busy"));
  auto mon = connect(500ms);
  ASSERT_FALSE(mon);
  EXPECT_EQ(mon.error().code, ErrorCode::deadline_exceeded) << mon.error().to_string();
}

// QEMU dies in the middle of a command: unavailable, and the monitor reports EOF.
TEST_F(QemuMonitorFake, QemuGoneMidCommandIsUnavailable) {
  FakeQmpServer fake(
      sock_,
      parse_scenario(
          R"(< {"QMP": {"version": {"qemu": {"major": 7, "minor": 2, "micro": 0}, "package": ""}, "capabilities": []}}
> {"execute": "qmp_capabilities"}
< {"return": {}}
> {"execute": "query-status"}
! hangup
)",
          "gone"));
  auto mon = connect();
  ASSERT_TRUE(mon) << mon.error().to_string();
  auto st = (*mon)->query_status();
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code, ErrorCode::unavailable) << st.error().to_string();
  EXPECT_TRUE(wait_eof());
  auto again = (*mon)->cont();
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code, ErrorCode::unavailable);
}

// A reply of the wrong shape is an error naming the command, never an exception.
TEST_F(QemuMonitorFake, MalformedReplyIsAnError) {
  FakeQmpServer fake(
      sock_,
      parse_scenario(
          R"(< {"QMP": {"version": {"qemu": {"major": 7, "minor": 2, "micro": 0}}, "capabilities": []}}
> {"execute": "qmp_capabilities"}
< {"return": {}}
> {"execute": "query-status"}
< {"return": {"status": "running"}}
> {"execute": "stop"}
< {"return": {"unexpected": 1}}
)",
          "malformed"));
  auto mon = connect();
  ASSERT_TRUE(mon) << mon.error().to_string();
  auto st = (*mon)->query_status();
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code, ErrorCode::internal);
  EXPECT_NE(st.error().message.find("running"), std::string::npos) << st.error().message;
  EXPECT_FALSE((*mon)->stop());
}

// The fake fails the test when the client sends a command the scenario does not expect.
TEST_F(QemuMonitorFake, FakeFailsOnUnexpectedCommand) {
  FakeQmpServer fake(sock_, load_scenario("quit-7.2.scenario"));
  auto mon = connect();
  ASSERT_TRUE(mon) << mon.error().to_string();
  EXPECT_FALSE((*mon)->stop());  // the scenario expects quit
  ASSERT_TRUE(fake.wait_done(10s));
  EXPECT_NONFATAL_FAILURE(fake.check(), "unexpected command");
}

}  // namespace
}  // namespace strata::agent::qemu
