// ConnectionManager at (re)start, against a real AgentService on a UNIX socket (in-memory
// driver): start() returns only after every known host's first heartbeat (bounded), so a
// restarted manager serves with hosts already confirmed; a host that does not answer keeps
// its last known store state until it really misses `miss_threshold` heartbeats, so the
// scheduler does not turn work away just because the manager restarted.
#include "strata/manager/agents/connection_manager.h"

#include <fmt/format.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "../../agent/service/memory_hypervisor.h"
#include "../../agent/service/served_agent.h"
#include "strata/agent/service/agent_service.h"
#include "strata/common/clock_wait.h"
#include "strata/manager/controllers/placement.h"

namespace strata::manager {
namespace {

namespace fs = std::filesystem;

class ConnectionStartTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/strata-conn-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    auto s = store::open_store("sqlite::memory:", store::StoreOptions{system_clock(), 1});
    ASSERT_TRUE(s) << s.error().to_string();
    store_ = std::move(*s);
    events_ = std::make_unique<EventLog>(*store_);
  }
  void TearDown() override {
    agent_.reset();
    fs::remove_all(dir_);
  }

  std::string serve_agent() {
    agent::service::AgentServiceOptions opts;
    opts.state_dir = (dir_ / "state").string();
    opts.agent_version = "test";
    opts.api_level = agent_api_level_;
    opts.hostname = "h1";
    opts.accelerator = "tcg";
    opts.inventory = [this] {
      pb::HostInventory inv;
      inv.set_hostname("h1");
      inv.set_accelerator("tcg");
      inv.set_cpu_threads(agent_cpu_threads_);
      inv.set_memory_total_bytes(4096ull << 20);
      inv.set_inventory_json(agent_inventory_json_);
      return Result<pb::HostInventory>(inv);
    };
    auto served = agent::testing::ServedAgent::start(hv_, opts, (dir_ / "agent.sock").string());
    EXPECT_TRUE(served) << served.error().to_string();
    if (!served) return "";
    agent_ = std::move(*served);
    return agent_->address();
  }

  // A host as a previous manager left it in the store: last known state "up".
  store::HostRecord add_host(const std::string& name, const std::string& address) {
    store::HostRecord h;
    h.name = name;
    h.address = address;
    h.state = "up";
    h.accelerator = "tcg";
    h.cpu_threads = 4;
    h.memory_mib = 4096;
    auto c = store_->create_host(h);
    EXPECT_TRUE(c);
    return *c;
  }

  // Long interval: only the first heartbeat happens during a test.
  static ConnectionConfig config() {
    ConnectionConfig c;
    c.heartbeat.interval = std::chrono::seconds(60);
    c.heartbeat.rpc_timeout = std::chrono::milliseconds(500);
    c.heartbeat.miss_threshold = 3;
    c.startup_wait = std::chrono::seconds(20);
    return c;
  }

  // What the served agent reports as its inventory.
  std::string agent_inventory_json_ = "{}";
  int agent_cpu_threads_ = 4;
  uint32_t agent_api_level_ = wire::kApiLevel;  // the level the served agent speaks
  fs::path dir_;
  store::StorePtr store_;
  std::unique_ptr<EventLog> events_;
  agent::testing::MemoryHypervisor hv_;
  std::unique_ptr<agent::testing::ServedAgent> agent_;
};

TEST_F(ConnectionStartTest, StartReturnsWithReachableHostsConfirmedUp) {
  auto h = add_host("h1", serve_agent());
  ConnectionManager cm(*store_, *events_, system_clock(), config());
  std::vector<Liveness> seen;
  cm.set_callbacks({[&](const std::string&, Liveness l) { seen.push_back(l); }, nullptr, nullptr, nullptr});
  ASSERT_TRUE(cm.start());
  // No sleeping or polling here: start() itself waited for the first heartbeat.
  EXPECT_EQ(cm.hosts_awaiting_first_heartbeat(), 0u);
  EXPECT_EQ(cm.liveness(h.id), Liveness::up);
  EXPECT_EQ(seen, std::vector<Liveness>{Liveness::up});
  auto stored = store_->get_host(h.id);
  ASSERT_TRUE(stored);
  EXPECT_EQ(stored->state, "up");
  EXPECT_GT(stored->last_heartbeat_ms, 0);
  cm.stop();
}

// An agent's inventory is JSON text the manager stores and later renders (GET /hosts/{name}
// dumps it recursively): one nested past the bounds — what a compromised host could send —
// is refused and the last good inventory kept; the host's other facts still refresh.
TEST_F(ConnectionStartTest, ADeepInventoryFromAnAgentIsRefusedAndTheLastOneKept) {
  agent_inventory_json_ = "{\"a\":" + std::string(100000, '[') + std::string(100000, ']') + "}";
  agent_cpu_threads_ = 8;
  auto h = add_host("h1", serve_agent());
  store::HostRecord before = *store_->get_host(h.id);
  before.inventory = R"({"cpu":{"model":"kept"}})";
  ASSERT_TRUE(store_->update_host(before));
  ConnectionManager cm(*store_, *events_, system_clock(), config());
  ASSERT_TRUE(cm.start());
  // The first heartbeat refreshes the inventory (after start() returns): bounded wait for
  // the new thread count, which comes in the same refresh.
  for (int i = 0; i < 400 && store_->get_host(h.id)->cpu_threads != 8; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
  auto after = store_->get_host(h.id);
  ASSERT_TRUE(after);
  EXPECT_EQ(after->cpu_threads, 8) << "the inventory was never refreshed";
  EXPECT_EQ(after->inventory, R"({"cpu":{"model":"kept"}})");
  cm.stop();
}

TEST_F(ConnectionStartTest, AnInventoryWithinTheBoundsIsStored) {
  agent_inventory_json_ = R"({"cpu":{"model":"new","flags":["a","b"]},"datastores":[]})";
  agent_cpu_threads_ = 8;
  auto h = add_host("h1", serve_agent());
  ConnectionManager cm(*store_, *events_, system_clock(), config());
  ASSERT_TRUE(cm.start());
  for (int i = 0; i < 400 && store_->get_host(h.id)->cpu_threads != 8; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
  EXPECT_EQ(store_->get_host(h.id)->inventory, agent_inventory_json_);
  cm.stop();
}

// The agent's version and API level as its heartbeats say (docs/internals/versions.md): an
// agent one version behind is up like any other; upgraded in place (a restart at this
// build's level) its next heartbeat says so (event host.agent_level); one out of the
// window is reported (host.agent_unsupported) and stays up: its VMs are not touched.
TEST_F(ConnectionStartTest, HeartbeatsSayTheAgentLevelAndAnUnsupportedOneIsReportedNotCut) {
  agent_api_level_ = 1;
  auto h = add_host("h1", serve_agent());
  ConnectionConfig c = config();
  c.heartbeat.interval = std::chrono::milliseconds(200);
  ConnectionManager cm(*store_, *events_, system_clock(), c);
  EXPECT_EQ(cm.agent_version(h.id).api_level, 0u) << "not heard from yet";
  ASSERT_TRUE(cm.start());
  EXPECT_EQ(cm.liveness(h.id), Liveness::up);
  EXPECT_EQ(cm.agent_version(h.id).version, "test");
  EXPECT_EQ(cm.agent_version(h.id).api_level, 1u) << "reported 0: from before levels";
  auto events = [&](const std::string& action) {
    std::vector<store::EventRecord> out;
    if (auto all = store_->list_events(0, 0))
      for (auto& e : *all)
        if (e.action == action) out.push_back(e);
    return out;
  };
  EXPECT_TRUE(events("host.agent_level").empty());
  EXPECT_TRUE(events("host.agent_unsupported").empty()) << "one version behind is supported";

  auto level_becomes = [&](uint32_t level) {
    for (int i = 0; i < 800 && cm.agent_version(h.id).api_level != level; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(25));
    return cm.agent_version(h.id).api_level == level;
  };
  agent_.reset();  // the upgrade: the agent restarts at this build's level
  agent_api_level_ = wire::kApiLevel;
  serve_agent();
  // The event is appended just after the level is recorded: wait for it (a hang guard).
  auto events_reach = [&](const std::string& action, size_t n) {
    for (int i = 0; i < 400 && events(action).size() < n; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(25));
    return events(action);
  };
  ASSERT_TRUE(level_becomes(wire::kApiLevel));
  auto changed = events_reach("host.agent_level", 1);
  ASSERT_EQ(changed.size(), 1u);
  EXPECT_EQ(changed[0].target, "host/h1");
  EXPECT_NE(changed[0].message.find("API level 2 (was 1)"), std::string::npos)
      << changed[0].message;

  agent_.reset();  // an agent two levels ahead of this manager
  agent_api_level_ = wire::kApiLevel + 2;
  serve_agent();
  ASSERT_TRUE(level_becomes(wire::kApiLevel + 2));
  auto unsupported = events_reach("host.agent_unsupported", 1);
  ASSERT_EQ(unsupported.size(), 1u);
  EXPECT_EQ(unsupported[0].result, "error");
  EXPECT_NE(unsupported[0].message.find("upgrade the manager first"), std::string::npos)
      << unsupported[0].message;
  EXPECT_EQ(cm.liveness(h.id), Liveness::up) << "reported, not cut off";
  cm.stop();
}

TEST_F(ConnectionStartTest, SilentHostKeepsLastKnownStateSoPlacementStillWorks) {
  auto up = add_host("h1", serve_agent());
  auto silent = add_host("h2", "unix:" + (dir_ / "nobody-listens.sock").string());
  ConnectionManager cm(*store_, *events_, system_clock(), config());
  ASSERT_TRUE(cm.start());
  // The silent host's first heartbeat failed (one miss of three): not up, not yet
  // unreachable, and its store state is still the last known "up".
  EXPECT_EQ(cm.hosts_awaiting_first_heartbeat(), 0u);
  EXPECT_EQ(cm.liveness(up.id), Liveness::up);
  EXPECT_EQ(cm.liveness(silent.id), Liveness::unknown);
  EXPECT_EQ(store_->get_host(silent.id)->state, "up");

  // What the restarted manager's scheduler sees: both hosts are candidates.
  PlacementService placement(*store_, *sched::Scheduler::create({}));
  ASSERT_TRUE(placement.load());
  auto snap = placement.snapshot();
  ASSERT_TRUE(snap);
  ASSERT_EQ(snap->size(), 2u);
  for (uint32_t i = 0; i < snap->size(); ++i)
    EXPECT_EQ(snap->host(i).state, sched::HostState::up) << snap->host(i).name;
  cm.stop();
}

TEST_F(ConnectionStartTest, HostDialledBeforeItServesComesUpOnceItServes) {
  // Enrollment adds the host before its agent serves, so the first dials are refused; the
  // host must come up once the agent serves, whatever state the first channel was left in.
  // Heartbeats run on a SimulatedClock: the test advances time instead of sleeping through
  // heartbeat intervals (real time only lets the heartbeat thread run between steps).
  auto h = add_host("h1", "unix:" + (dir_ / "agent.sock").string());
  auto cfg = config();
  cfg.heartbeat.interval = std::chrono::seconds(2);
  cfg.startup_wait = std::chrono::milliseconds(0);
  auto clock = std::make_shared<SimulatedClock>();
  ConnectionManager cm(*store_, *events_, clock, cfg);
  ASSERT_TRUE(cm.start());
  // Steps of simulated time until `state`, each once the connections' timer is parked on
  // the clock (it is not while the host's heartbeat is out: then nothing is due but its
  // answer). Bounded in real time: a hang guard.
  auto run_until = [&](Liveness state) {
    for (int i = 0; i < 10000 && cm.liveness(h.id) != state; ++i) {
      if (clock->parked() >= 1)
        clock->advance(std::chrono::milliseconds(500));
      else
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return cm.liveness(h.id);
  };
  ASSERT_EQ(run_until(Liveness::unreachable), Liveness::unreachable);
  ASSERT_EQ(serve_agent(), h.address);
  EXPECT_EQ(run_until(Liveness::up), Liveness::up);
  cm.stop();
}

// HA leases (docs/internals/ha.md, "Leases"): heartbeats to a host that is up grant its HA
// VMs' leases and record what the agent confirmed; a host that stops answering gets no
// more grants, so the view's expiry stays at the last grant + lease + deadline + margin.
TEST_F(ConnectionStartTest, HeartbeatsGrantLeasesOnlyWhileTheHostIsUp) {
  model::VmSpec spec;
  spec.name = "web-1";
  spec.kernel_boot = model::KernelBoot{"vmlinuz", "", ""};
  ASSERT_TRUE(hv_.define(spec));
  auto h = add_host("h1", serve_agent());
  auto cfg = config();
  cfg.heartbeat.interval = std::chrono::seconds(2);
  cfg.startup_wait = std::chrono::milliseconds(0);
  cfg.ha_lease = std::chrono::seconds(4);
  cfg.heartbeat.rpc_timeout = std::chrono::milliseconds(200);  // real time, per failed beat
  auto clock = std::make_shared<SimulatedClock>();
  ConnectionManager cm(*store_, *events_, clock, cfg);
  AgentCallbacks cb;
  cb.ha_lease_vms = [](const std::string&) {
    return std::vector<std::string>{"web-1", "not-defined"};
  };
  cm.set_callbacks(cb);
  EXPECT_FALSE(cm.ha_lease(h.id).expired_by) << "nothing granted yet";
  ASSERT_TRUE(cm.start());
  // Step whenever the connections' timer is parked (a beat due later, none out).
  auto step_until = [&](const std::function<bool()>& done) {
    for (int i = 0; i < 10000 && !done(); ++i) {
      if (clock->parked() >= 1)
        clock->advance(std::chrono::milliseconds(500));
      else
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return done();
  };
  ASSERT_TRUE(step_until([&] { return hv_.count("renew_ha_leases") >= 2; }));
  auto view = cm.ha_lease(h.id);
  ASSERT_TRUE(view.expired_by);
  EXPECT_EQ(view.vms, std::set<std::string>{"web-1"}) << "only what the agent confirmed";
  EXPECT_GE(*view.expired_by, clock->now() + std::chrono::seconds(4) - cfg.heartbeat.interval);
  EXPECT_LE(*view.expired_by, clock->now() + std::chrono::seconds(4) + cfg.heartbeat.rpc_timeout +
                                  ConnectionManager::kLeaseMargin);

  // The host goes silent: unreachable, and no grant is sent to it after that.
  agent_.reset();
  ASSERT_TRUE(step_until([&] { return cm.liveness(h.id) == Liveness::unreachable; }));
  const auto last = cm.ha_lease(h.id);
  const int grants = hv_.count("renew_ha_leases");
  const auto later = clock->now() + std::chrono::seconds(10);  // past every lease granted
  ASSERT_TRUE(step_until([&] { return clock->now() >= later; }));
  EXPECT_EQ(cm.ha_lease(h.id).expired_by, last.expired_by);
  EXPECT_EQ(cm.ha_lease(h.id).vms, last.vms);
  EXPECT_EQ(hv_.count("renew_ha_leases"), grants);
  EXPECT_LT(*last.expired_by, clock->now()) << "the view says the leases have run out";
  cm.stop();
}

// The watch stream opens once the host is up (replaying the VMs it has) and hands the
// agent's events to the callback one at a time, in the agent's order, even when the
// callback is slow (the next event is read only after it returned).
TEST_F(ConnectionStartTest, VmEventsReachTheCallbackInTheAgentsOrder) {
  auto define = [&](const std::string& name) {
    model::VmSpec spec;
    spec.name = name;
    spec.kernel_boot = model::KernelBoot{"vmlinuz", "", ""};
    return bool(hv_.define(spec));
  };
  ASSERT_TRUE(define("before"));
  auto h = add_host("h1", serve_agent());
  std::mutex mu;
  std::vector<std::string> seen;
  auto seen_copy = [&] {
    std::lock_guard lock(mu);
    return seen;
  };
  AgentCallbacks cb;
  cb.on_vm_event = [&](const std::string& host_id, const pb::VmEvent& ev) {
    EXPECT_EQ(host_id, h.id);
    std::this_thread::sleep_for(std::chrono::milliseconds(2));  // a slow consumer
    std::lock_guard lock(mu);
    seen.push_back(ev.vm());
  };
  ConnectionManager cm(*store_, *events_, system_clock(), config());
  cm.set_callbacks(cb);
  ASSERT_TRUE(cm.start());
  ASSERT_EQ(cm.liveness(h.id), Liveness::up);
  // Bounded waits in real time (hang guards).
  for (int i = 0; i < 2000 && seen_copy().empty(); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  ASSERT_EQ(seen_copy(), std::vector<std::string>{"before"}) << "the stream's replay";
  std::vector<std::string> want;
  for (int i = 0; i < 40; ++i) {
    want.push_back(fmt::format("vm-{:02}", i));
    ASSERT_TRUE(define(want.back()));
  }
  for (int i = 0; i < 2000 && seen_copy().size() < 41; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  auto got = seen_copy();
  got.erase(got.begin());
  EXPECT_EQ(got, want);
  cm.stop();
}

// Heartbeats are spread over the interval: each host's offset is a stable hash of its id,
// within [0, interval), and a fleet's offsets cover the interval rather than bunching up.
TEST(BeatOffsetTest, StableWithinTheIntervalAndSpread) {
  const std::chrono::milliseconds interval(2000);
  std::set<int64_t> quarters;
  for (int i = 0; i < 200; ++i) {
    const std::string id = "host-" + std::to_string(i);
    auto off = ConnectionManager::beat_offset(id, interval);
    EXPECT_EQ(off, ConnectionManager::beat_offset(id, interval)) << id;
    EXPECT_GE(off.count(), 0) << id;
    EXPECT_LT(off, interval) << id;
    quarters.insert(off.count() / 500);
  }
  EXPECT_EQ(quarters, (std::set<int64_t>{0, 1, 2, 3})) << "offsets bunched in part of the interval";
  EXPECT_EQ(ConnectionManager::beat_offset("x", std::chrono::milliseconds(0)).count(), 0);
}

// A UNIX socket that accepts connections (the kernel's backlog) and never answers: the
// HTTP/2 handshake never completes, so every call to it waits for its deadline.
class SilentListener {
 public:
  explicit SilentListener(const std::string& path) {
    fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", path.c_str());
    ok_ = fd_ >= 0 && ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
          ::listen(fd_, 64) == 0;
  }
  ~SilentListener() {
    if (fd_ >= 0) ::close(fd_);
  }
  bool ok() const { return ok_; }

 private:
  int fd_ = -1;
  bool ok_ = false;
};

// A host whose heartbeat hangs costs an outstanding call, not the others' beats: on
// simulated time the answering host beats every interval while the silent host's first
// heartbeat is still out (its deadline is a minute of real time away); stop() cancels it.
TEST_F(ConnectionStartTest, AHostThatDoesNotAnswerDoesNotDelayTheOthers) {
  SilentListener silent_listener((dir_ / "silent.sock").string());
  ASSERT_TRUE(silent_listener.ok());
  auto silent = add_host("silent", "unix:" + (dir_ / "silent.sock").string());
  auto good = add_host("h1", serve_agent());
  auto cfg = config();
  cfg.heartbeat.interval = std::chrono::seconds(2);
  cfg.heartbeat.rpc_timeout = std::chrono::seconds(60);  // real time: never reached here
  cfg.startup_wait = std::chrono::milliseconds(0);
  auto clock = std::make_shared<SimulatedClock>();
  ConnectionManager cm(*store_, *events_, clock, cfg);
  ASSERT_TRUE(cm.start());
  auto beat_at = [&] { return store_->get_host(good.id)->last_heartbeat_ms; };
  // Steps of simulated time whenever the timer is parked (the answering host's next beat is
  // due later and none of its calls is out); the silent host's call stays out throughout.
  for (int i = 0; i < 10000 && beat_at() < 20000; ++i) {
    if (clock->parked() >= 1)
      clock->advance(std::chrono::milliseconds(500));
    else
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  EXPECT_GE(beat_at(), 20000) << "the answering host stopped beating";
  EXPECT_EQ(cm.liveness(good.id), Liveness::up);
  EXPECT_EQ(cm.hosts_awaiting_first_heartbeat(), 1u) << "the silent host answered?";
  EXPECT_EQ(cm.liveness(silent.id), Liveness::unknown);
  cm.stop();  // cancels the silent host's call instead of waiting a minute for it
}

// Once stop() returned, gRPC holds nothing of the manager's hosts: their clients (and
// channels) went with the hosts, on the thread that stopped them, not later on one of
// gRPC's threads (where the last channel reference must not go: an ASan double free in
// grpc_cq_internal_unref at a test's teardown). Hosts with every kind of call out: one
// answering (its event stream open), one that never answers (its heartbeat out when stop()
// cancels it) and one nobody serves.
TEST_F(ConnectionStartTest, StopLeavesNothingOfItsHostsToGrpc) {
  SilentListener silent_listener((dir_ / "quiet.sock").string());
  ASSERT_TRUE(silent_listener.ok());
  std::vector<store::HostRecord> hosts{add_host("h1", serve_agent()),
                                       add_host("quiet", "unix:" + (dir_ / "quiet.sock").string()),
                                       add_host("gone", "unix:" + (dir_ / "gone.sock").string())};
  auto cfg = config();
  cfg.heartbeat.rpc_timeout = std::chrono::seconds(60);  // the silent host's call stays out
  cfg.startup_wait = std::chrono::milliseconds(0);
  ConnectionManager cm(*store_, *events_, system_clock(), cfg);
  std::atomic<int> events{0};
  AgentCallbacks cb;
  cb.on_vm_event = [&](const std::string&, const pb::VmEvent&) { ++events; };
  cm.set_callbacks(cb);
  model::VmSpec spec;
  spec.name = "vm1";
  spec.kernel_boot = model::KernelBoot{"vmlinuz", "", ""};
  ASSERT_TRUE(bool(hv_.define(spec)));
  ASSERT_TRUE(cm.start());
  // Bounded wait (a hang guard): the answering host is up and its event stream open.
  for (int i = 0; i < 2000 && (cm.liveness(hosts[0].id) != Liveness::up || events == 0); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  ASSERT_EQ(cm.liveness(hosts[0].id), Liveness::up);
  ASSERT_GT(events.load(), 0);
  std::vector<std::weak_ptr<AgentClient>> clients;
  for (const auto& h : hosts) {
    auto c = cm.client(h.id);
    ASSERT_NE(c, nullptr) << h.name;
    clients.push_back(c);
  }
  cm.stop();
  for (size_t i = 0; i < hosts.size(); ++i)
    EXPECT_TRUE(clients[i].expired()) << hosts[i].name << ": its client outlived stop()";
}

// A console open when the manager stops (as a viewer's WebSocket keeps it open): stop()
// cancels it and waits until gRPC is done with its calls, and what they held (the stream,
// with its stub, context and channel, and the viewer's session its reader's callback keeps)
// is let go of by the manager's threads, not later by gRPC's: nothing of it outlives stop().
TEST_F(ConnectionStartTest, StopEndsOpenConsolesAndLeavesNothingOfThemToGrpc) {
  auto h = add_host("h1", serve_agent());
  auto cfg = config();
  cfg.startup_wait = std::chrono::milliseconds(0);
  model::VmSpec spec;
  spec.name = "vm1";
  spec.kernel_boot = model::KernelBoot{"vmlinuz", "", ""};
  ASSERT_TRUE(bool(hv_.define(spec)));
  ConnectionManager cm(*store_, *events_, system_clock(), cfg);
  ASSERT_TRUE(cm.start());
  for (int i = 0; i < 2000 && cm.liveness(h.id) != Liveness::up; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  ASSERT_EQ(cm.liveness(h.id), Liveness::up);
  EXPECT_EQ(cm.open_console("no-such-host", "vm1", 0, "vm1:console:1"), nullptr);

  // The viewer's side, shaped like the API's relay: it reads until the call is over.
  struct Session : std::enable_shared_from_this<Session> {
    ConsoleStreamPtr stream;
    std::mutex mu;
    std::string got;
    std::atomic<bool> ended{false};
    std::atomic<bool>* destroyed = nullptr;
    ~Session() { *destroyed = true; }
    void pump() {
      stream->read([self = shared_from_this()](std::optional<std::string> chunk) {
        if (!chunk) {
          self->ended = true;
          return;
        }
        {
          std::lock_guard lock(self->mu);
          self->got += *chunk;
        }
        self->pump();
      });
    }
    std::string seen() {
      std::lock_guard lock(mu);
      return got;
    }
  };
  std::atomic<bool> destroyed{false};
  std::weak_ptr<ConsoleStream> weak_stream;
  std::weak_ptr<Session> weak_session;
  {
    auto session = std::make_shared<Session>();
    session->destroyed = &destroyed;
    session->stream = cm.open_console(h.id, "vm1", 0, "vm1:console:1");
    ASSERT_NE(session->stream, nullptr);
    session->pump();
    std::atomic<int> wrote{-1};
    session->stream->write("hello\n", [&wrote](bool ok) { wrote = ok ? 1 : 0; });
    for (int i = 0; i < 2000 && session->seen().find("hello") == std::string::npos; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    ASSERT_NE(session->seen().find("hello"), std::string::npos) << "the echo never came";
    for (int i = 0; i < 2000 && wrote < 0; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    EXPECT_EQ(wrote.load(), 1);
    weak_stream = session->stream;
    weak_session = session;
    // The session now lives as long as the console's calls keep it (the pending read).
    session->stream.reset();
  }
  ASSERT_FALSE(weak_session.expired()) << "the console's pending read should keep the session";
  auto client = std::weak_ptr<AgentClient>(cm.client(h.id));
  cm.stop();
  EXPECT_TRUE(weak_stream.expired()) << "the console stream outlived stop()";
  EXPECT_TRUE(destroyed.load()) << "the viewer's session outlived stop()";
  EXPECT_TRUE(client.expired()) << "the host's client outlived stop()";
  EXPECT_EQ(cm.open_console(h.id, "vm1", 0, "vm1:console:2"), nullptr)
      << "a stopped manager opened a console";
}

// A restarted manager does not dial its whole fleet in one instant: start() spreads the
// first heartbeats over a window of hosts / start_dials_per_s (here 40 / 10 = 4 s of
// simulated time), each host at its beat offset scaled into it. The hosts point at a socket
// nobody serves, so each first beat fails at once when it goes (a refused dial is an
// answer); what is counted is which hosts have had their first beat.
TEST_F(ConnectionStartTest, StartSpreadsTheFirstHeartbeatsOverAWindow) {
  auto cfg = config();
  cfg.heartbeat.interval = std::chrono::seconds(10);
  cfg.heartbeat.rpc_timeout = std::chrono::seconds(1);
  cfg.startup_wait = std::chrono::milliseconds(0);
  cfg.start_dials_per_s = 10;
  std::vector<int64_t> first_ms;  // each host's first beat, ms after start()
  for (int i = 0; i < 40; ++i) {
    auto h =
        add_host(fmt::format("s{}", i), "unix:" + (dir_ / fmt::format("none{}.sock", i)).string());
    auto off = ConnectionManager::beat_offset(h.id, cfg.heartbeat.interval);
    first_ms.push_back(off.count() * 4000 / cfg.heartbeat.interval.count());
  }
  auto due_by = [&](int64_t ms) {
    return static_cast<size_t>(
        std::count_if(first_ms.begin(), first_ms.end(), [&](int64_t f) { return f <= ms; }));
  };
  ASSERT_GT(due_by(1999), 5u) << "offsets bunched: the test would prove nothing";
  ASSERT_LT(due_by(1999), 35u) << "offsets bunched: the test would prove nothing";
  auto clock = std::make_shared<SimulatedClock>();
  ConnectionManager cm(*store_, *events_, clock, cfg);
  ASSERT_TRUE(cm.start());
  auto done = [&] { return 40 - cm.hosts_awaiting_first_heartbeat(); };
  // Waits (real time, bounded: a hang guard) until `n` hosts have had their first beat.
  auto reaches = [&](size_t n) {
    for (int i = 0; i < 5000 && done() < n; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    return done();
  };
  EXPECT_EQ(reaches(due_by(0)), due_by(0));
  clock->advance(std::chrono::milliseconds(1999));
  EXPECT_EQ(reaches(due_by(1999)), due_by(1999)) << "not the hosts due in the first half";
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_EQ(done(), due_by(1999)) << "hosts dialled before their place in the window";
  clock->advance(std::chrono::milliseconds(2001));
  EXPECT_EQ(reaches(40), 40u);
  cm.stop();
}

// A UNIX socket that accepts every connection, counts it and keeps it open without ever
// answering: a host that is connected but too busy to answer in time.
class CountingSilentListener {
 public:
  explicit CountingSilentListener(const std::string& path) {
    fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", path.c_str());
    ok_ = fd_ >= 0 && ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
          ::listen(fd_, 64) == 0;
    if (ok_) thread_ = std::thread([this] { run(); });
  }
  ~CountingSilentListener() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
    for (int c : accepted_fds_) ::close(c);
    if (fd_ >= 0) ::close(fd_);
  }
  bool ok() const { return ok_; }
  int accepted() const { return accepted_.load(); }

 private:
  void run() {
    while (!stop_) {
      int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c >= 0) {
        accepted_fds_.push_back(c);
        ++accepted_;
      } else {
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
      }
    }
  }
  int fd_ = -1;
  bool ok_ = false;
  std::atomic<bool> stop_{false};
  std::atomic<int> accepted_{0};
  std::vector<int> accepted_fds_;  // the listener thread's until it is joined
  std::thread thread_;
};

// A host that is connected but does not answer in time is unreachable, yet its connection
// is kept: only a channel gRPC reports failed is replaced (a refused dial:
// HostDialledBeforeItServesComesUpOnceItServes). Replacing a connected one every
// miss_threshold misses added a connection per slow host every few seconds; at 1 000
// simulated hosts on a loaded machine both ends ran out of descriptors.
TEST_F(ConnectionStartTest, AConnectedHostThatIsTooSlowKeepsItsOneConnection) {
  CountingSilentListener listener((dir_ / "slow.sock").string());
  ASSERT_TRUE(listener.ok());
  auto h = add_host("slow", "unix:" + (dir_ / "slow.sock").string());
  auto cfg = config();
  cfg.heartbeat.interval = std::chrono::seconds(2);
  cfg.heartbeat.rpc_timeout = std::chrono::milliseconds(150);  // real time
  cfg.heartbeat.miss_threshold = 3;
  cfg.startup_wait = std::chrono::milliseconds(0);
  auto clock = std::make_shared<SimulatedClock>();
  ConnectionManager cm(*store_, *events_, clock, cfg);
  ASSERT_TRUE(cm.start());
  const AgentClientPtr first = cm.client(h.id);
  // 12 beats of simulated time (4 x miss_threshold), each step once the timer is parked
  // (not while a beat waits out its real-time deadline). Bounded in real time.
  const auto start = clock->now();
  for (int i = 0; i < 20000 && clock->now() - start < std::chrono::seconds(24); ++i) {
    if (clock->parked() >= 1)
      clock->advance(std::chrono::milliseconds(500));
    else
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ASSERT_GE(clock->now() - start, std::chrono::seconds(24)) << "the beats did not go on";
  EXPECT_EQ(cm.liveness(h.id), Liveness::unreachable);
  EXPECT_EQ(cm.client(h.id).get(), first.get()) << "a connected channel was replaced";
  EXPECT_EQ(listener.accepted(), 1) << "connections opened to one slow host";
  cm.stop();
}

size_t thread_count() {
  size_t n = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator("/proc/self/task")) ++n;
  return n;
}

// The manager's threads do not grow with its hosts: 50 more hosts (pointed at an address
// nobody serves, so each call fails and is retried every interval) add no thread of their
// own. The first 50 let gRPC start whatever pool it keeps (it is bounded by the machine,
// not by the calls); the next 50 are the measurement. Before the callback API each host
// took two threads (100 more here).
TEST_F(ConnectionStartTest, ThreadsDoNotGrowWithTheNumberOfHosts) {
  auto cfg = config();
  cfg.heartbeat.interval = std::chrono::milliseconds(200);
  cfg.heartbeat.rpc_timeout = std::chrono::milliseconds(100);
  cfg.startup_wait = std::chrono::milliseconds(0);
  ConnectionManager cm(*store_, *events_, system_clock(), cfg);
  ASSERT_TRUE(cm.start());
  auto add = [&](int from, int to) {
    for (int i = from; i < to; ++i) {
      store::HostRecord h;
      h.id = "dead-" + std::to_string(i);
      h.name = h.id;
      h.address = "unix:" + (dir_ / ("dead-" + std::to_string(i) + ".sock")).string();
      cm.add_host(h);
    }
    // Bounded in real time (a hang guard): every host has tried its first heartbeat.
    for (int i = 0; i < 2000 && cm.hosts_awaiting_first_heartbeat() > 0; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    EXPECT_EQ(cm.hosts_awaiting_first_heartbeat(), 0u);
  };
  add(0, 50);
  const size_t with_50 = thread_count();
  add(50, 100);
  const size_t with_100 = thread_count();
  EXPECT_LT(with_100, with_50 + 10)
      << "threads: " << with_50 << " with 50 hosts, " << with_100 << " with 100";
  cm.stop();
}

}  // namespace
}  // namespace strata::manager
