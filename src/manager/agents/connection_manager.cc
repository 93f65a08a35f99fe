// Host connections on a fixed set of threads (see connection_manager.h): the Engine (one
// timer thread, `workers` worker threads) and, per host, a HostConnection whose work runs
// as tasks in order (a strand) and whose calls are on gRPC's callback API.
#include "strata/manager/agents/connection_manager.h"

#include <fmt/format.h>
#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <queue>
#include <set>
#include <thread>
#include <utility>

#include "strata/common/clock_wait.h"
#include "strata/common/log.h"
#include "strata/manager/auth/tokens.h"
#include "strata/pki/grpc_tls.h"
#include "strata/wire/api_level.h"

namespace strata::manager {

// Not in an anonymous namespace: HostConnection (a member class of ConnectionManager,
// which has external linkage) holds one.
namespace conn_detail {

// The pinned certificate of one host, shared with the TLS verifiers of its channels (which
// may outlive the connection: clients are handed out). A host enrolled before pins existed
// has none in the store: the first certificate that passes the CA, SAN and CN checks is
// pinned then (trust on first use), in the store (only if still unpinned there) with a
// `host.cert_pinned` audit event, and every later handshake must present that one.
class HostPin {
 public:
  HostPin(store::Store& store, EventLog& events, std::string host_id, std::string name,
          std::string fingerprint)
      : store_(store), events_(events), host_id_(std::move(host_id)), name_(std::move(name)),
        fingerprint_(std::move(fingerprint)) {}

  // The pin for a new channel.
  static pki::PeerPin peer_pin(const std::shared_ptr<HostPin>& self) {
    std::lock_guard lock(self->mu_);
    pki::PeerPin p{self->name_, self->fingerprint_};
    if (p.fingerprint.empty())
      p.pin_first_use = [self](const std::string& fp) { return self->first_use(fp); };
    return p;
  }

 private:
  bool first_use(const std::string& fp) {
    std::lock_guard lock(mu_);
    if (!fingerprint_.empty()) return fingerprint_ == fp;
    for (int attempt = 0; attempt < 3; ++attempt) {
      auto host = store_.get_host(host_id_);
      if (!host) return false;  // deleted: nothing to pin
      if (!host->cert_fingerprint.empty()) {
        fingerprint_ = host->cert_fingerprint;
        return fingerprint_ == fp;
      }
      host->cert_fingerprint = fp;
      auto u = store_.update_host(*host);
      if (u) {
        fingerprint_ = fp;
        logger("manager.agents")->info("host certificate pinned on first use host={} fingerprint={}",
                                       name_, fp);
        events_.append("manager", "host.cert_pinned", "host/" + name_, "ok",
                       "enrolled before certificate pinning: pinned " + fp +
                           ", the certificate presented at the first connection");
        return true;
      }
      if (u.error().code != ErrorCode::conflict) return false;
    }
    return false;
  }

  store::Store& store_;
  EventLog& events_;
  const std::string host_id_;
  const std::string name_;
  std::mutex mu_;
  std::string fingerprint_;
};

}  // namespace conn_detail

using conn_detail::HostPin;

// The fixed threads of all host connections. The timer keeps every host's next beat (and
// a watch stream's restart) in due order, a heap on the manager's clock, and hands each,
// when due, to its host as a task; the workers run the hosts that have tasks queued, each
// host on one worker at a time. Nothing here waits for a host: the calls are gRPC's
// callback API, and their completions only queue a task.
class ConnectionManager::Engine {
 public:
  enum class Due : uint8_t { beat, watch };

  Engine(ClockPtr clock, int workers);
  ~Engine() { stop(); }

  void schedule(Clock::TimePoint at, std::weak_ptr<HostConnection> host, Due what);
  // `host` has tasks queued and is on no worker: run them on one.
  void ready(std::shared_ptr<HostConnection> host);
  // No due time fires after this.
  void stop_timer();
  // Joins every thread; the workers first run what is queued.
  void stop();

 private:
  struct Entry {
    Clock::TimePoint at;
    uint64_t seq;
    std::weak_ptr<HostConnection> host;
    Due what;
  };
  struct Later {
    bool operator()(const Entry& a, const Entry& b) const {
      return a.at != b.at ? a.at > b.at : a.seq > b.seq;
    }
  };
  void timer_loop();
  void worker_loop();

  ClockPtr clock_;
  // Guards heap_, seq_ and timer_stop_; never held while a host's code runs. The timer
  // waits on timer_cv_: on the clock while an entry is ahead, plainly while the heap is
  // empty (so on a SimulatedClock it counts as parked only when a due time really waits
  // for the clock, not while every host's call is out).
  std::mutex timer_mu_;
  std::condition_variable_any timer_cv_;
  std::priority_queue<Entry, std::vector<Entry>, Later> heap_;
  uint64_t seq_ = 0;  // entries pushed so far: a change wakes the timer
  bool timer_stop_ = false;
  // Guards ready_ and work_stop_; never held while a task runs.
  std::mutex work_mu_;
  std::condition_variable work_cv_;
  std::deque<std::shared_ptr<HostConnection>> ready_;
  bool work_stop_ = false;
  std::thread timer_;
  std::vector<std::thread> workers_;
};

// One host: its channel, liveness, leases and watch stream. Its work runs as tasks, one at
// a time and in order (a strand) on the Engine's workers: heartbeat outcomes, metrics,
// inventory, VM events and the watch's end. Its calls are on gRPC's callback API; their
// completions (on gRPC's threads) only queue a task. Owned by shared_ptr: the manager's map
// (or whoever stops it) and the worker running it; never by a call's completion.
//
// Lifetime rule: gRPC's threads never let go of the last reference to a host, an
// AgentClient or a channel. A completion holds a CallHold, not the host: it counts in
// pending_ until gRPC destroyed the completion (after the call's context: AgentClient's
// release order), and it hands the AgentClient the call ran on to retired_, which the
// strand (or the host's destructor) empties. Whoever stops a host waits for pending_ to be 0
// (wait_stopped) before letting go of it, so when ConnectionManager::stop() returns gRPC
// holds nothing of any host. It used to: a completion held the host (so its AgentClient and
// channel), and stop() returned once the callback had run but before gRPC destroyed it, so
// the last reference to a channel could go on gRPC's thread, after the manager (and in a
// test, the whole fixture) was gone: an ASan double free in grpc_cq_internal_unref at a
// test's teardown, on a gRPC thread, and "Subprocess aborted" at exit.
class ConnectionManager::HostConnection : public std::enable_shared_from_this<HostConnection> {
 public:
  HostConnection(ConnectionManager& mgr, const store::HostRecord& host)
      : mgr_(mgr),
        host_id_(host.id),
        host_name_(host.name),
        address_(host.address),
        pin_(std::make_shared<HostPin>(mgr.store_, mgr.events_, host.id, host.name,
                                       host.cert_fingerprint)),
        client_(std::make_shared<AgentClient>(host.address, HostPin::peer_pin(pin_))),
        offset_(beat_offset(host.id, mgr.config_.heartbeat.interval)),
        tracker_(mgr.config_.heartbeat, mgr.clock_),
        due_(mgr.clock_->now()) {}

  // The first heartbeat: at once for a host just enrolled or re-addressed; spread when the
  // manager starts on a whole fleet, so that a restarted manager does not dial every host
  // in the same instant (1 000 TLS handshakes at once missed their deadline on a loaded
  // 2-core machine and 987 hosts went unreachable together).
  // `window`: start()'s spread (0: at once); the first beat goes at the offset scaled into
  // it, the second an interval plus the offset after the start, as any host's.
  void begin(std::chrono::milliseconds window) {
    offset_pending_ = true;
    const auto interval = mgr_.config_.heartbeat.interval;
    if (window.count() > 0 && interval.count() > 0) {
      auto first = std::chrono::milliseconds(offset_.count() * window.count() / interval.count());
      mgr_.engine_->schedule(due_ + first, weak_from_this(), Engine::Due::beat);
    } else {
      post([this] { send_beat(); });
    }
  }

  // Stopping is two steps so that a fleet stops in parallel: begin_stop() cancels every
  // outstanding call and lets no new work start; wait_stopped() returns once no call is
  // outstanding and no task is queued or running (gRPC is done with everything of this host).
  void begin_stop() {
    std::vector<PendingCallPtr> calls;
    std::vector<ConsoleStreamPtr> consoles;
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
      calls = {health_call_, metrics_call_, inventory_call_, watch_};
      for (auto& w : consoles_)
        if (auto c = w.lock()) consoles.push_back(std::move(c));
      consoles_.clear();
    }
    for (auto& c : calls)
      if (c) c->cancel();
    for (auto& c : consoles) c->cancel();
  }
  void wait_stopped() {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return pending_ == 0; });
  }

  AgentClientPtr client() const {
    std::lock_guard lock(client_mu_);
    return client_;
  }

  // A VM's serial console or display on this host, on the current client. Its calls are
  // this host's (CallHold): begin_stop() cancels them, and wait_stopped() waits until gRPC
  // is done with them. nullptr once stopping.
  ConsoleStreamPtr open_console(const std::string& vm, std::optional<uint32_t> serial_tail,
                                std::string request_prefix) {
    auto c = client();
    {
      std::lock_guard lock(mu_);
      if (stopping_) return nullptr;
      ++pending_;  // the host stays until the stream's first hold is out
    }
    CallKeeper keeper = [this, c] { return std::make_shared<CallHold>(*this, c); };
    auto stream = serial_tail ? c->open_console(vm, *serial_tail, std::move(request_prefix),
                                                std::move(keeper))
                              : c->open_display(vm, std::move(keeper));
    bool cancel = false;
    {
      std::lock_guard lock(mu_);
      std::erase_if(consoles_, [](const std::weak_ptr<ConsoleStream>& w) { return w.expired(); });
      consoles_.push_back(stream);
      cancel = stopping_;  // begin_stop() came meanwhile and did not see it
    }
    if (cancel) stream->cancel();
    done_one();
    return stream;
  }
  Liveness liveness() const { return liveness_; }
  AgentVersionView agent_version() const {
    std::lock_guard lock(version_mu_);
    return version_;
  }
  bool first_heartbeat_done() const { return first_done_; }
  HaLeaseView ha_lease() const {
    std::lock_guard lock(lease_mu_);
    HaLeaseView v;
    if (last_grant_)
      v.expired_by = *last_grant_ + mgr_.config_.ha_lease + mgr_.config_.heartbeat.rpc_timeout +
                     kLeaseMargin;
    v.vms = leased_;
    return v;
  }

  // The timer: a due time of this host came.
  void on_due(Engine::Due what) {
    if (what == Engine::Due::beat)
      post([this] { send_beat(); });
    else
      post([this] { start_watch(); });
  }

  // A worker: runs queued tasks (a bounded batch, then the host queues again behind the
  // others, so one busy host does not hold a worker).
  void run_tasks() {
    for (int n = 0; n < 16; ++n) {
      std::function<void()> task;
      std::vector<std::shared_ptr<void>> retired;  // let go of here, on a worker
      {
        std::lock_guard lock(mu_);
        retired.swap(retired_);
        if (tasks_.empty()) {
          queued_ = false;
          return;
        }
        task = std::move(tasks_.front());
        tasks_.pop_front();
      }
      task();
      task = nullptr;
      done_one();
    }
    {
      std::lock_guard lock(mu_);
      if (tasks_.empty()) {
        queued_ = false;
        return;
      }
    }
    mgr_.engine_->ready(shared_from_this());
  }

 private:
  // What gRPC holds of one outstanding call of this host, in the call's completion functions
  // (shared by their copies): counted in pending_ from the start of the call until gRPC
  // destroyed its completion, which is after the call's context (AgentClient::health_async).
  // It keeps the AgentClient the call runs on and hands it to retired_ instead of letting go
  // of it on gRPC's thread. The host outlives it: whoever stops the host waits for pending_.
  // A console's calls also give it what their callbacks would let go of (CallKeep::keep).
  class CallHold final : public CallKeep {
   public:
    CallHold(HostConnection& host, AgentClientPtr client)
        : host_(host), client_(std::move(client)) {
      host_.call_started();
    }
    ~CallHold() override { host_.call_released(std::move(client_), std::move(kept_)); }
    CallHold(const CallHold&) = delete;
    CallHold& operator=(const CallHold&) = delete;
    HostConnection& host() const { return host_; }
    void keep(std::shared_ptr<void> what) override { kept_.push_back(std::move(what)); }

   private:
    HostConnection& host_;
    AgentClientPtr client_;
    std::vector<std::shared_ptr<void>> kept_;  // one thread at a time (CallKeep)
  };

  // Queues a task. Work that starts something (a beat, a watch) is refused once stopping;
  // what a call's completion queues (`always`) is not: it runs (and looks at stopping()
  // itself), since a watch's next read and the call's end are owed to gRPC.
  void post(std::function<void()> task, bool always = false) {
    bool wake = false;
    {
      std::lock_guard lock(mu_);
      if (stopping_ && !always) return;
      tasks_.push_back(std::move(task));
      ++pending_;
      if (!queued_) queued_ = wake = true;
    }
    if (wake) mgr_.engine_->ready(shared_from_this());
  }
  void call_started() {
    std::lock_guard lock(mu_);
    ++pending_;
  }
  // gRPC destroyed a call's completion (~CallHold). The last thing done with this host on
  // gRPC's thread: the notify is under the lock, so wait_stopped() returns (and the host
  // may be destroyed) only once this let go of mu_.
  void call_released(AgentClientPtr client, std::vector<std::shared_ptr<void>> kept) {
    std::lock_guard lock(mu_);
    retired_.push_back(std::move(client));
    for (auto& k : kept) retired_.push_back(std::move(k));
    --pending_;
    cv_.notify_all();
  }
  // A task, once it ran.
  void done_one() {
    {
      std::lock_guard lock(mu_);
      --pending_;
    }
    cv_.notify_all();
  }
  bool stopping() const {
    std::lock_guard lock(mu_);
    return stopping_;
  }
  // Remembers a started call so that begin_stop() can cancel it; cancels it at once when
  // stopping began meanwhile.
  // The call it replaces goes outside mu_: a watch holds a CallHold, whose end takes mu_.
  void keep(PendingCallPtr& slot, PendingCallPtr call) {
    bool cancel = false;
    PendingCallPtr old;
    {
      std::lock_guard lock(mu_);
      old = std::exchange(slot, call);
      cancel = stopping_;
    }
    if (cancel) call->cancel();
  }

  // --- Tasks (the strand: one at a time, in order) ---

  void send_beat() {
    if (stopping()) return;
    const pb::HealthRequest grant = lease_grant();
    sent_ = mgr_.clock_->now();
    auto c = client();
    auto hold = std::make_shared<CallHold>(*this, c);
    auto call = c->health_async(
        mgr_.config_.heartbeat.rpc_timeout, grant, [hold, grant](Result<pb::HealthResponse> h) {
          auto* s = &hold->host();
          s->post([s, grant, h = std::move(h)] { s->on_health(grant, h); }, true);
        });
    keep(health_call_, std::move(call));
  }

  void on_health(const pb::HealthRequest& grant, const Result<pb::HealthResponse>& h) {
    if (stopping()) return;
    auto log = logger("manager.agents");
    bool changed = false;
    if (h && h->serving()) {
      if (grant.ha_lease_ms() > 0) lease_confirmed(grant, *h);
      // A restarted agent (an upgrade, say) may bring a new level, QEMU or CPU models: its
      // inventory is read again now, not at the next inventory_every beat.
      if (agent_restarted(*h)) fetch_inventory();
      note_agent_version(*h);
      changed = tracker_.on_success();
      int64_t now_ms = unix_ms(*mgr_.clock_);
      last_ok_ms_ = now_ms;
      if (beats_ % std::max(1, mgr_.config_.metrics_every) == 0) fetch_metrics();
      if (beats_ % std::max(1, mgr_.config_.inventory_every) == 0) fetch_inventory();
      if (beats_ % std::max(1, mgr_.config_.heartbeat_write_every) == 0) write_state(now_ms);
      ++beats_;
    } else {
      changed = tracker_.on_failure();
      if (tracker_.consecutive_misses() == 1)
        log->warn("heartbeat failed host={} error={}", host_name_,
                  h ? std::string("not serving") : h.error().to_string());
      // A channel that keeps failing is replaced by a fresh one, so a host whose first
      // dial was refused (the manager can dial right after enrollment, before the agent
      // serves) is not left behind a channel stuck in its failure state. Only a channel
      // gRPC itself reports failed: one that is connected (or connecting) to a host too
      // busy to answer in time is kept. Replacing those too added connections to every
      // slow host every few seconds: at 1 000 simulated hosts on a loaded machine the
      // manager and the simulator each reached the open-files limit (19 000 descriptors,
      // about 20 connections per host) and no host came back.
      if (tracker_.consecutive_misses() % mgr_.config_.heartbeat.miss_threshold == 0) {
        const bool redial = client()->connection_failed();
        // Said at a falling rate (3, 6, 12, 24, ... misses) so a long outage is visible in
        // the log with its latest cause, without a line per heartbeat.
        int n = tracker_.consecutive_misses() / mgr_.config_.heartbeat.miss_threshold;
        if ((n & (n - 1)) == 0)
          log->warn("host still unreachable host={} misses={} error={}{}", host_name_,
                    tracker_.consecutive_misses(),
                    h ? std::string("not serving") : h.error().to_string(),
                    redial ? "; dialling afresh" : "");
        if (redial) {
          auto fresh = std::make_shared<AgentClient>(address_, HostPin::peer_pin(pin_));
          std::lock_guard lock(client_mu_);
          client_ = std::move(fresh);
        }
      }
    }
    // Silence is judged at the latest moment this beat could have been answered, not when
    // the workers got to its answer: a manager that is behind (a restart's first round, a
    // loaded machine) must not blame the hosts for its own delay.
    changed =
        tracker_.check(std::min(mgr_.clock_->now(), sent_ + mgr_.config_.heartbeat.rpc_timeout)) ||
        changed;
    if (changed) on_transition();
    first_done_ = true;
    schedule_next_beat();
  }

  // The next beat: the second one an interval plus this host's offset after the first,
  // every later one an interval after the one before (its due time, not its answer, so the
  // host keeps its place in the interval). A beat that could not go in time (its answer
  // came late, or the workers were behind) is skipped to the next place, never sent twice.
  void schedule_next_beat() {
    const auto interval = mgr_.config_.heartbeat.interval;
    Clock::TimePoint next = due_ + interval;
    if (offset_pending_) next += offset_;
    offset_pending_ = false;
    const auto now = mgr_.clock_->now();
    if (next < now && interval.count() > 0) next += ((now - next) / interval + 1) * interval;
    due_ = next;
    mgr_.engine_->schedule(next, weak_from_this(), Engine::Due::beat);
  }

  // The lease grant of the next heartbeat: only to a host that is up (one that missed its
  // heartbeats gets no renewal: its leases run out, which is what the manager may then
  // rely on). The send time is recorded before the request goes: the agent's expiry counts
  // from when it receives it, later.
  pb::HealthRequest lease_grant() {
    pb::HealthRequest req;
    if (mgr_.config_.ha_lease.count() <= 0 || !mgr_.callbacks_.ha_lease_vms ||
        tracker_.state() != Liveness::up)
      return req;
    auto vms = mgr_.callbacks_.ha_lease_vms(host_id_);
    req.set_ha_lease_ms(mgr_.config_.ha_lease.count());
    for (auto& v : vms) req.add_ha_vms(std::move(v));
    std::lock_guard lock(lease_mu_);
    last_grant_ = mgr_.clock_->now();
    // A VM the grant does not name loses its lease on the host: stop vouching for it now,
    // whether or not the answer arrives.
    std::set<std::string> named(req.ha_vms().begin(), req.ha_vms().end());
    for (auto it = leased_.begin(); it != leased_.end();)
      it = named.count(*it) ? std::next(it) : leased_.erase(it);
    return req;
  }

  // Records the agent's version and level; says when the level changed (an agent restarted
  // after an upgrade) and when it is one this manager does not work with.
  void note_agent_version(const pb::HealthResponse& h) {
    const uint32_t level = wire::effective_api_level(h.api_level());
    uint32_t before = 0;
    {
      std::lock_guard lock(version_mu_);
      before = version_.api_level;
      version_.version = h.agent_version();
      version_.api_level = level;
    }
    if (before == level) return;
    auto log = logger("manager.agents");
    if (before != 0) {
      log->info("agent API level changed host={} from={} to={} version={}", host_name_, before,
                level, h.agent_version());
      mgr_.events_.append(
          "agent:" + host_name_, "host.agent_level", "host/" + host_name_, "ok",
          fmt::format("agent {} speaks API level {} (was {})", h.agent_version(), level, before));
    }
    if (auto st = wire::check_agent_api_level(level, "api_level"); !st) {
      log->warn("unsupported agent host={} version={} error=\"{}\"", host_name_, h.agent_version(),
                st.error().message);
      mgr_.events_.append("agent:" + host_name_, "host.agent_unsupported", "host/" + host_name_,
                          "error",
                          st.error().message +
                              "; its VMs keep running, but operations that "
                              "need a newer agent are refused");
    }
  }
  // Whether the agent process changed since the last answered heartbeat (its start time).
  bool agent_restarted(const pb::HealthResponse& h) {
    const int64_t before = agent_started_ms_;
    agent_started_ms_ = h.started_unix_ms();
    return before != 0 && before != agent_started_ms_;
  }

  void lease_confirmed(const pb::HealthRequest& grant, const pb::HealthResponse& resp) {
    std::set<std::string> named(grant.ha_vms().begin(), grant.ha_vms().end());
    std::lock_guard lock(lease_mu_);
    leased_.clear();
    for (const auto& v : resp.leased_vms())
      if (named.count(v)) leased_.insert(v);
  }

  void on_transition() {
    Liveness l = tracker_.state();
    liveness_ = l;
    logger("manager.agents")->info("host state host={} state={}", host_name_, to_string(l));
    write_state(last_ok_ms_);
    mgr_.events_.append("agent:" + host_name_, std::string("host.") + std::string(to_string(l)),
                        "host/" + host_name_, "ok");
    if (l == Liveness::unreachable) cancel_watch();
    if (mgr_.callbacks_.on_host_state) mgr_.callbacks_.on_host_state(host_id_, l);
    if (l == Liveness::up) start_watch();
  }

  void write_state(int64_t heartbeat_ms) {
    auto host = mgr_.store_.get_host(host_id_);
    if (!host) return;
    std::string state = host->state == "maintenance" ? "maintenance"
                                                      : std::string(to_string(tracker_.state()));
    if (state == "unknown") state = "enrolling";
    mgr_.store_.touch_host_heartbeat(host_id_, heartbeat_ms, state);
  }

  // GetMetrics (every metrics_every beats), at most one at a time.
  void fetch_metrics() {
    if (metrics_busy_) return;
    metrics_busy_ = true;
    auto c = client();
    auto hold = std::make_shared<CallHold>(*this, c);
    auto call = c->metrics_async(mgr_.config_.heartbeat.rpc_timeout,
                                 [hold](Result<pb::GetMetricsResponse> m) {
                                   auto* s = &hold->host();
                                   s->post([s, m = std::move(m)] { s->record_metrics(m); }, true);
                                 });
    keep(metrics_call_, std::move(call));
  }

  void record_metrics(const Result<pb::GetMetricsResponse>& m) {
    metrics_busy_ = false;
    if (!m || stopping()) return;
    std::string json;
    google::protobuf::util::JsonPrintOptions opts;
    opts.preserve_proto_field_names = true;
    if (!google::protobuf::util::MessageToJsonString(*m, &json, opts).ok()) return;
    store::HostMetricSample s;
    s.host_id = host_id_;
    s.data = json;
    s.time_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                    mgr_.clock_->wall().time_since_epoch())
                    .count();
    if (!mgr_.store_.append_host_metric(s, mgr_.config_.metrics_keep_last)) return;
    if (mgr_.callbacks_.on_metrics) mgr_.callbacks_.on_metrics(host_id_, s.time_ms, s.data);
  }

  // GetInventory (every inventory_every beats), at most one at a time.
  void fetch_inventory() {
    if (inventory_busy_) return;
    inventory_busy_ = true;
    auto c = client();
    auto hold = std::make_shared<CallHold>(*this, c);
    auto call = c->inventory_async([hold](Result<pb::HostInventory> inv) {
      auto* s = &hold->host();
      s->post([s, inv = std::move(inv)] { s->store_inventory(inv); }, true);
    });
    keep(inventory_call_, std::move(call));
  }

  void store_inventory(const Result<pb::HostInventory>& inv) {
    inventory_busy_ = false;
    if (!inv || stopping()) return;
    std::optional<std::string> inventory;
    if (inv->inventory_json().empty()) {
      inventory = "{}";
    } else if (auto j = parse_json(inv->inventory_json(), kInventoryJsonLimits);
               j && j->is_object()) {
      inventory = inv->inventory_json();
    } else {
      logger("manager.agents")
          ->warn("host inventory refused, the last one is kept host_id={} error=\"{}\"", host_id_,
                 j ? std::string("not a JSON object") : j.error().message);
    }
    for (int attempt = 0; attempt < 3; ++attempt) {
      auto host = mgr_.store_.get_host(host_id_);
      if (!host) return;
      if (inventory) host->inventory = *inventory;
      host->accelerator = inv->accelerator();
      host->cpu_threads = inv->cpu_threads();
      host->memory_mib = static_cast<int64_t>(inv->memory_total_bytes() >> 20);
      auto u = mgr_.store_.update_host(*host);
      if (u || u.error().code != ErrorCode::conflict) return;
    }
  }

  // The WatchEvents stream (include_current, so a new stream replays the VMs' states), open
  // while the host is up: started when it comes up, cancelled when it goes unreachable,
  // started again a second after it ended while the host is still up.
  void start_watch() {
    if (watching_ || stopping() || liveness_ != Liveness::up) return;
    watching_ = true;
    auto c = client();
    auto hold = std::make_shared<CallHold>(*this, c);
    auto w = c->watch_events_async(
        true,
        [hold](EventWatch& watch, pb::VmEvent ev) {
          // The watch lives until its end, which waits for this next(): a plain pointer.
          auto* s = &hold->host();
          s->post([s, watch = &watch, ev = std::move(ev)] { s->deliver(*watch, ev); }, true);
        },
        [hold](Status st) {
          auto* s = &hold->host();
          s->post([s, st] { s->on_watch_done(st); }, true);
        });
    keep(watch_, std::move(w));
  }

  // Events reach the controller in the stream's order (this host's strand), and the next
  // one is read only after this one was handled.
  void deliver(EventWatch& watch, const pb::VmEvent& ev) {
    if (!stopping() && mgr_.callbacks_.on_vm_event) mgr_.callbacks_.on_vm_event(host_id_, ev);
    watch.next();
  }

  void on_watch_done(const Status& st) {
    watching_ = false;
    PendingCallPtr ended;  // goes outside mu_ (its CallHold takes it)
    {
      std::lock_guard lock(mu_);
      ended = std::move(watch_);
    }
    ended.reset();
    if (stopping() || liveness_ != Liveness::up) return;
    if (!st)
      logger("manager.agents")
          ->debug("event stream ended host={} error={}", host_name_, st.error().to_string());
    mgr_.engine_->schedule(mgr_.clock_->now() + std::chrono::seconds(1), weak_from_this(),
                           Engine::Due::watch);
  }

  void cancel_watch() {
    PendingCallPtr w;
    {
      std::lock_guard lock(mu_);
      w = watch_;
    }
    if (w) w->cancel();
  }

  ConnectionManager& mgr_;
  const std::string host_id_;
  const std::string host_name_;
  const std::string address_;
  // The host's name and enrolled (or first-use) certificate, checked on every dial.
  std::shared_ptr<HostPin> pin_;
  // Guards client_ (replaced by the strand after misses, read by anyone through client()).
  mutable std::mutex client_mu_;
  AgentClientPtr client_;
  const std::chrono::milliseconds offset_;
  std::atomic<Liveness> liveness_{Liveness::unknown};
  std::atomic<bool> first_done_{false};
  // HA leases: guards last_grant_ and leased_ (written by the strand, read by the HA
  // controller through ha_lease()).
  mutable std::mutex lease_mu_;
  std::optional<Clock::TimePoint> last_grant_;
  std::set<std::string> leased_;
  // Guards version_ (written by the strand, read by anyone through agent_version()).
  mutable std::mutex version_mu_;
  AgentVersionView version_;

  // The strand's own state: only tasks touch it (one at a time, so no lock).
  HeartbeatTracker tracker_;
  Clock::TimePoint due_;         // when the last beat was due
  Clock::TimePoint sent_;        // when the last beat went out (strand only)
  bool offset_pending_ = false;  // the next beat is the second: it adds the offset
  int beats_ = 0;         // successful beats
  int64_t last_ok_ms_ = 0;
  int64_t agent_started_ms_ = 0;  // HealthResponse.started_unix_ms, last answered beat
  bool metrics_busy_ = false;
  bool inventory_busy_ = false;
  bool watching_ = false;  // a watch stream is open, or its end not yet handled

  // Guards the queue (tasks_, queued_), the count of what is outstanding (pending_: calls
  // whose completion gRPC has not destroyed yet, see CallHold, plus tasks queued or
  // running), retired_, stopping_ and the started calls kept for cancelling. Held only
  // briefly: never across a task, a call's start or a cancel (gRPC may run a completion
  // inline there, and completions take it). cv_: pending_ reached 0.
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> tasks_;
  bool queued_ = false;  // on the Engine's ready queue or on a worker
  int pending_ = 0;
  // The clients of calls gRPC is done with (CallHold), and what a console's calls kept, let
  // go of by the strand or with the host: not on gRPC's threads, where the last reference
  // to a channel must not go.
  std::vector<std::shared_ptr<void>> retired_;
  // The open consoles, for begin_stop() to cancel.
  std::vector<std::weak_ptr<ConsoleStream>> consoles_;
  bool stopping_ = false;
  PendingCallPtr health_call_;
  PendingCallPtr metrics_call_;
  PendingCallPtr inventory_call_;
  PendingCallPtr watch_;
};

ConnectionManager::Engine::Engine(ClockPtr clock, int workers) : clock_(std::move(clock)) {
  timer_ = std::thread([this] { timer_loop(); });
  for (int i = 0; i < std::max(1, workers); ++i) workers_.emplace_back([this] { worker_loop(); });
}

void ConnectionManager::Engine::schedule(Clock::TimePoint at, std::weak_ptr<HostConnection> host,
                                         Due what) {
  {
    std::lock_guard lock(timer_mu_);
    if (timer_stop_) return;
    heap_.push(Entry{at, seq_++, std::move(host), what});
  }
  timer_cv_.notify_all();
}

void ConnectionManager::Engine::ready(std::shared_ptr<HostConnection> host) {
  {
    std::lock_guard lock(work_mu_);
    ready_.push_back(std::move(host));
  }
  work_cv_.notify_one();
}

void ConnectionManager::Engine::timer_loop() {
  std::unique_lock lock(timer_mu_);
  while (!timer_stop_) {
    if (heap_.empty()) {
      timer_cv_.wait(lock, [&] { return timer_stop_ || !heap_.empty(); });
      continue;
    }
    const uint64_t seen = seq_;
    const auto at = heap_.top().at;
    if (clock_->now() < at) {
      clock_wait_until(*clock_, lock, timer_cv_, at, [&] { return timer_stop_ || seq_ != seen; });
      continue;
    }
    std::vector<Entry> due;
    const auto now = clock_->now();
    while (!heap_.empty() && heap_.top().at <= now) {
      due.push_back(heap_.top());
      heap_.pop();
    }
    lock.unlock();
    for (auto& e : due)
      if (auto h = e.host.lock()) h->on_due(e.what);
    due.clear();
    lock.lock();
  }
}

void ConnectionManager::Engine::worker_loop() {
  while (true) {
    std::shared_ptr<HostConnection> h;
    {
      std::unique_lock lock(work_mu_);
      work_cv_.wait(lock, [&] { return work_stop_ || !ready_.empty(); });
      if (ready_.empty()) return;
      h = std::move(ready_.front());
      ready_.pop_front();
    }
    h->run_tasks();
  }
}

void ConnectionManager::Engine::stop_timer() {
  {
    std::lock_guard lock(timer_mu_);
    timer_stop_ = true;
    heap_ = {};
  }
  timer_cv_.notify_all();
  if (timer_.joinable()) timer_.join();
}

void ConnectionManager::Engine::stop() {
  stop_timer();
  {
    std::lock_guard lock(work_mu_);
    work_stop_ = true;
  }
  work_cv_.notify_all();
  for (auto& w : workers_)
    if (w.joinable()) w.join();
  workers_.clear();
}

std::chrono::milliseconds ConnectionManager::beat_offset(std::string_view host_id,
                                                         std::chrono::milliseconds interval) {
  if (interval.count() <= 0) return std::chrono::milliseconds(0);
  // FNV-1a: the same offset for the same id in every process and build.
  uint64_t h = 14695981039346656037ull;
  for (unsigned char c : host_id) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return std::chrono::milliseconds(
      static_cast<int64_t>(h % static_cast<uint64_t>(interval.count())));
}

ConnectionManager::ConnectionManager(store::Store& store, EventLog& events, ClockPtr clock,
                                     ConnectionConfig config)
    : store_(store),
      events_(events),
      clock_(std::move(clock)),
      config_(config),
      engine_(std::make_unique<Engine>(clock_, config_.workers)) {}

ConnectionManager::~ConnectionManager() { stop(); }

void ConnectionManager::set_callbacks(AgentCallbacks callbacks) {
  callbacks_ = std::move(callbacks);
}

Status ConnectionManager::start() {
  auto hosts = store_.list_hosts({});
  if (!hosts) return tl::unexpected(hosts.error());
  // The hosts' first heartbeats go out over a window of about one second per
  // start_dials_per_s hosts (at most an interval), each at its offset scaled into it
  // (outstanding calls, no thread each); wait for those first answers (an unreachable host
  // costs at most one rpc_timeout, all in parallel).
  const auto interval = config_.heartbeat.interval;
  auto window = std::chrono::milliseconds(static_cast<int64_t>(hosts->size()) * 1000 /
                                          std::max(1, config_.start_dials_per_s));
  window = std::min(window, interval);
  for (const auto& h : *hosts) add_host(h, window);
  auto deadline = std::chrono::steady_clock::now() + config_.startup_wait;
  while (hosts_awaiting_first_heartbeat() > 0 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  if (size_t n = hosts_awaiting_first_heartbeat(); n > 0)
    logger("manager.agents")->warn("first heartbeat still pending hosts={} waited_ms={}", n,
                                   config_.startup_wait.count());
  return {};
}

size_t ConnectionManager::hosts_awaiting_first_heartbeat() const {
  std::lock_guard lock(mu_);
  size_t n = 0;
  for (const auto& [id, c] : hosts_) n += c->first_heartbeat_done() ? 0 : 1;
  return n;
}

void ConnectionManager::stop() {
  std::map<std::string, std::shared_ptr<HostConnection>> hosts;
  {
    std::lock_guard lock(mu_);
    stopped_ = true;
    hosts.swap(hosts_);
  }
  engine_->stop_timer();
  for (auto& [id, c] : hosts) c->begin_stop();
  for (auto& [id, c] : hosts) c->wait_stopped();
  // A host that add_host() or remove_host() is stopping still needs the workers.
  {
    std::unique_lock lock(mu_);
    detached_cv_.wait(lock, [&] { return detached_ == 0; });
  }
  engine_->stop();
}

void ConnectionManager::stop_detached(const std::shared_ptr<HostConnection>& host) {
  host->begin_stop();
  host->wait_stopped();
  {
    std::lock_guard lock(mu_);
    --detached_;
  }
  detached_cv_.notify_all();
}

void ConnectionManager::add_host(const store::HostRecord& host) {
  add_host(host, std::chrono::milliseconds(0));
}

void ConnectionManager::add_host(const store::HostRecord& host, std::chrono::milliseconds window) {
  std::shared_ptr<HostConnection> old;
  {
    std::lock_guard lock(mu_);
    if (stopped_) return;
    auto it = hosts_.find(host.id);
    if (it != hosts_.end()) {
      if (it->second->client()->address() == host.address) return;
      old = std::move(it->second);
      hosts_.erase(it);
      ++detached_;
    }
  }
  if (old) stop_detached(old);
  auto conn = std::make_shared<HostConnection>(*this, host);
  {
    std::lock_guard lock(mu_);
    if (stopped_) return;
    hosts_[host.id] = conn;
  }
  conn->begin(window);
}

void ConnectionManager::remove_host(const std::string& host_id) {
  std::shared_ptr<HostConnection> old;
  {
    std::lock_guard lock(mu_);
    auto it = hosts_.find(host_id);
    if (it == hosts_.end()) return;
    old = std::move(it->second);
    hosts_.erase(it);
    ++detached_;
  }
  stop_detached(old);
}

AgentClientPtr ConnectionManager::client(const std::string& host_id) const {
  std::lock_guard lock(mu_);
  auto it = hosts_.find(host_id);
  return it == hosts_.end() ? nullptr : it->second->client();
}

ConsoleStreamPtr ConnectionManager::open_console(const std::string& host_id, const std::string& vm,
                                                 uint32_t tail_bytes, std::string request_prefix) {
  std::shared_ptr<HostConnection> host;
  {
    std::lock_guard lock(mu_);
    auto it = hosts_.find(host_id);
    if (it == hosts_.end()) return nullptr;
    host = it->second;
  }
  return host->open_console(vm, tail_bytes, std::move(request_prefix));
}

ConsoleStreamPtr ConnectionManager::open_display(const std::string& host_id,
                                                 const std::string& vm) {
  std::shared_ptr<HostConnection> host;
  {
    std::lock_guard lock(mu_);
    auto it = hosts_.find(host_id);
    if (it == hosts_.end()) return nullptr;
    host = it->second;
  }
  return host->open_console(vm, std::nullopt, "");
}

HaLeaseView ConnectionManager::ha_lease(const std::string& host_id) const {
  std::lock_guard lock(mu_);
  auto it = hosts_.find(host_id);
  return it == hosts_.end() ? HaLeaseView{} : it->second->ha_lease();
}

Liveness ConnectionManager::liveness(const std::string& host_id) const {
  std::lock_guard lock(mu_);
  auto it = hosts_.find(host_id);
  return it == hosts_.end() ? Liveness::unknown : it->second->liveness();
}

AgentVersionView ConnectionManager::agent_version(const std::string& host_id) const {
  std::shared_ptr<HostConnection> host;
  {
    std::lock_guard lock(mu_);
    auto it = hosts_.find(host_id);
    if (it == hosts_.end()) return {};
    host = it->second;
  }
  return host->agent_version();
}

}  // namespace strata::manager
