// Keeps one gRPC channel per enrolled host and watches it: heartbeats (Health every
// interval, GetMetrics every `metrics_every` beats), liveness via HeartbeatTracker, bounded
// metrics history and periodic inventory refresh in the store, and a WatchEvents stream
// whose VM transitions are handed to the controller.
// Threads: a fixed few whatever the number of hosts (docs/internals/agents.md, "Threads"):
// one timer thread that keeps every host's next beat in due order on the manager's clock,
// the calls themselves on gRPC's callback API (a host that does not answer costs an
// outstanding call, not a thread), and `workers` threads that run each host's work (store
// writes, liveness transitions, callbacks) one task at a time, in order.
// Spread: each host's first beat goes at once (start() waits for it), the second one an
// interval plus the host's own offset later (beat_offset: a hash of its id, within the
// interval), and every later one an interval after the one before: the fleet's beats are
// spread over the interval instead of coming in bursts.
// Restart: start() heartbeats every known host at once and waits (bounded) for those first
// answers, so the API does not begin with every host "not confirmed". Until a host's
// liveness is known the store keeps its last known state (what the scheduler reads), so a
// manager restart alone never turns hosts away; only missed heartbeats do.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "strata/common/clock.h"
#include "strata/common/json.h"
#include "strata/manager/agents/agent_client.h"
#include "strata/manager/agents/heartbeat.h"
#include "strata/manager/events/event_log.h"
#include "strata/store/store.h"

namespace strata::manager {

// An agent's inventory (JSON text) is shown by GET /api/v1/hosts/{name} and read by the
// summary: the manager stores it only if the strict parser accepts it within these bounds
// (as deep as enrollment allows, and at most this many values), so no host can make a
// later recursive walk (dump, copy) overflow a stack; otherwise the last good one stays.
inline constexpr JsonLimits kInventoryJsonLimits{.max_depth = 16, .max_values = 200000};

struct ConnectionConfig {
  HeartbeatConfig heartbeat;
  int metrics_keep_last = 300;   // samples kept per host (50 min at one per 10 s)
  int metrics_every = 5;         // GetMetrics every N successful heartbeats (10 s at 2 s)
  int inventory_every = 30;      // refresh inventory every N successful heartbeats
  // The host's last_heartbeat_ms goes to the store every N successful heartbeats (and on
  // every liveness change): one commit per beat was 500 commits/s at 1 000 hosts. Liveness
  // itself is in memory; the stored time is for people and freshness comparisons (at most
  // interval * N old: 10 s at 2 s).
  int heartbeat_write_every = 5;
  // Threads that run the hosts' work (heartbeat outcomes, store writes, VM events); each
  // host's work runs on one of them at a time, in order.
  int workers = 4;
  // start() waits at most this long for the first heartbeat of every known host.
  std::chrono::milliseconds startup_wait{2500};
  // start()'s first round dials at most about this many hosts per second (each host at its
  // beat offset, scaled into a window of hosts / rate, at most one interval): a restarted
  // manager's 1 000 TLS handshakes at once missed their deadline on a loaded 2-core machine.
  int start_dials_per_s = 500;
  // HA leases (docs/internals/ha.md, "Leases"): every heartbeat to a host that is up
  // grants its HA VMs (AgentCallbacks::ha_lease_vms) a lease this long; 0 grants none.
  std::chrono::milliseconds ha_lease{0};
};

// What a host's HA leases allow (ConnectionManager::ha_lease).
struct HaLeaseView {
  // From this time on (manager clock) every lease this manager granted the host has run
  // out, and the shims have stopped those QEMUs: the last grant's send time + the lease +
  // the heartbeat deadline (the agent takes no grant later than that) + a margin for the
  // shim's check. nullopt: no lease granted to the host by this manager process.
  std::optional<Clock::TimePoint> expired_by;
  // The VMs whose leases the host confirmed in force (HealthResponse.leased_vms) and that
  // the last grant sent named: the only VMs this view vouches for.
  std::set<std::string> vms;
};

// What a host's agent said of itself in its last answered heartbeat (HealthResponse).
struct AgentVersionView {
  std::string version;     // the agent's build ("0.9.0"); empty: not heard from yet
  uint32_t api_level = 0;  // the level it speaks (wire::effective_api_level); 0: not heard
};

struct AgentCallbacks {
  // Host liveness changed (up <-> unreachable).
  std::function<void(const std::string& host_id, Liveness)> on_host_state;
  // A VM on that host changed state (from WatchEvents, include_current on reconnect).
  std::function<void(const std::string& host_id, const pb::VmEvent&)> on_vm_event;
  // A metrics sample of that host was recorded (time, the sample's JSON): live charts.
  std::function<void(const std::string& host_id, int64_t time_ms, const std::string& data)>
      on_metrics;
  // The HA VMs placed on that host, whose leases each heartbeat grants (ha_lease > 0).
  std::function<std::vector<std::string>(const std::string& host_id)> ha_lease_vms;
};

class ConnectionManager {
 public:
  ConnectionManager(store::Store& store, EventLog& events, ClockPtr clock, ConnectionConfig config);
  ~ConnectionManager();

  void set_callbacks(AgentCallbacks callbacks);
  // Starts watching every host in the store and waits (up to startup_wait) until each has
  // answered or failed its first heartbeat.
  Status start();
  // Hosts whose first heartbeat has not completed yet (0 once all have been tried).
  size_t hosts_awaiting_first_heartbeat() const;
  void stop();

  // Adds a host (enrollment) or replaces its address; its first heartbeat goes at once.
  void add_host(const store::HostRecord& host);
  void remove_host(const std::string& host_id);

  // The client for a host; nullptr when the host is not connected.
  AgentClientPtr client(const std::string& host_id) const;
  // A VM's serial console (AgentClient::open_console) or display on a host, its calls
  // counted with the host's: stop() (or the host's removal) cancels them and waits until
  // gRPC is done with them, and nothing of them is let go of on gRPC's threads. nullptr
  // when the host is not connected or stopping.
  ConsoleStreamPtr open_console(const std::string& host_id, const std::string& vm,
                                uint32_t tail_bytes, std::string request_prefix);
  ConsoleStreamPtr open_display(const std::string& host_id, const std::string& vm);
  Liveness liveness(const std::string& host_id) const;
  // The host's agent version and API level as its last heartbeat answered (empty view for
  // an unknown host or one not heard from since this manager started). A change of level
  // (an agent upgraded or downgraded in place) is an event, host.agent_level; one outside
  // the levels this manager works with (wire::api_level_in_window) a warning event,
  // host.agent_unsupported. Neither disconnects the host: its VMs keep running.
  AgentVersionView agent_version(const std::string& host_id) const;
  // The host's HA leases as this manager granted them (empty view for an unknown host).
  HaLeaseView ha_lease(const std::string& host_id) const;
  // Added to each lease beyond the heartbeat deadline (the shim checks twice a second).
  static constexpr std::chrono::milliseconds kLeaseMargin{3000};

  // The host's place in the heartbeat interval: its second beat comes interval + this after
  // it was added (its first at once, or spread in start()'s round). Stable (a hash of the
  // id), in [0, interval).
  static std::chrono::milliseconds beat_offset(std::string_view host_id,
                                               std::chrono::milliseconds interval);

 private:
  class HostConnection;
  class Engine;
  // `window` > 0: the first heartbeat at the host's offset scaled into it (start()'s round).
  void add_host(const store::HostRecord& host, std::chrono::milliseconds window);
  // Stops a host taken out of hosts_ (counted in detached_).
  void stop_detached(const std::shared_ptr<HostConnection>& host);
  store::Store& store_;
  EventLog& events_;
  ClockPtr clock_;
  ConnectionConfig config_;
  AgentCallbacks callbacks_;
  // Guards hosts_ and stopped_ only: never held while a host stops, a call starts or a
  // callback runs (a host's work calls client() and liveness(), which take it).
  mutable std::mutex mu_;
  std::map<std::string, std::shared_ptr<HostConnection>> hosts_;
  bool stopped_ = false;
  // Hosts add_host() or remove_host() took out of hosts_ and is still stopping (guarded by
  // mu_): stop() waits for them (detached_cv_) before it stops the workers they need.
  int detached_ = 0;
  std::condition_variable detached_cv_;
  // The timer and worker threads; made by the constructor, stopped by stop() once no
  // host has work left.
  std::unique_ptr<Engine> engine_;
};

}  // namespace strata::manager
