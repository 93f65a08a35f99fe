// Per-host heartbeat and watch threads (see connection_manager.h).
#include "strata/manager/agents/connection_manager.h"

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <thread>

#include <fmt/format.h>
#include <google/protobuf/util/json_util.h>

#include "strata/common/clock_wait.h"
#include "strata/common/log.h"
#include "strata/manager/auth/tokens.h"
#include "strata/pki/grpc_tls.h"

namespace strata::manager {

namespace {

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

}  // namespace

class ConnectionManager::HostConnection {
 public:
  HostConnection(ConnectionManager& mgr, store::HostRecord host)
      : mgr_(mgr), host_id_(host.id), host_name_(host.name), address_(host.address),
        pin_(std::make_shared<HostPin>(mgr.store_, mgr.events_, host.id, host.name,
                                       host.cert_fingerprint)),
        client_(std::make_shared<AgentClient>(host.address, HostPin::peer_pin(pin_))),
        tracker_(mgr.config_.heartbeat, mgr.clock_) {
    heartbeat_thread_ = std::thread([this] { heartbeat_loop(); });
    watch_thread_ = std::thread([this] { watch_loop(); });
  }
  ~HostConnection() { stop(); }

  void stop() {
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
      cancel_.cancel();
    }
    cv_.notify_all();
    if (heartbeat_thread_.joinable()) heartbeat_thread_.join();
    if (watch_thread_.joinable()) watch_thread_.join();
  }

  AgentClientPtr client() const {
    std::lock_guard lock(client_mu_);
    return client_;
  }
  Liveness liveness() const { return liveness_; }
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

 private:
  // Sleeps up to d on the manager's clock (simulated time in tests); false when stopping.
  bool wait(std::chrono::milliseconds d) {
    std::unique_lock lock(mu_);
    clock_wait_for(*mgr_.clock_, lock, cv_, d, [&] { return stopping_; });
    return !stopping_;
  }

  void heartbeat_loop() {
    auto log = logger("manager.agents");
    int beats = 0;
    while (true) {
      bool changed = false;
      if (tracker_.due()) {
        const pb::HealthRequest grant = lease_grant();
        auto h = client()->health(mgr_.config_.heartbeat.rpc_timeout, grant);
        if (h && h->serving()) {
          if (grant.ha_lease_ms() > 0) lease_confirmed(grant, *h);
          changed = tracker_.on_success();
          int64_t now_ms = unix_ms(*mgr_.clock_);
          last_ok_ms_ = now_ms;
          record_metrics();
          if (beats++ % mgr_.config_.inventory_every == 0) refresh_inventory();
          write_state(now_ms);
        } else {
          changed = tracker_.on_failure();
          if (tracker_.consecutive_misses() == 1)
            log->warn("heartbeat failed host={} error={}", host_name_,
                      h ? std::string("not serving") : h.error().to_string());
          // A channel that keeps failing is replaced by a fresh one, so a host whose first
          // dial was refused (the manager can dial right after enrollment, before the agent
          // serves) is not left behind a channel stuck in its failure state.
          if (tracker_.consecutive_misses() % mgr_.config_.heartbeat.miss_threshold == 0) {
            // Said at a falling rate (3, 6, 12, 24, ... misses) so a long outage is visible in
            // the log with its latest cause, without a line per heartbeat.
            int n = tracker_.consecutive_misses() / mgr_.config_.heartbeat.miss_threshold;
            if ((n & (n - 1)) == 0)
              log->warn("host still unreachable host={} misses={} error={}; dialling afresh",
                        host_name_, tracker_.consecutive_misses(),
                        h ? std::string("not serving") : h.error().to_string());
            auto fresh = std::make_shared<AgentClient>(address_, HostPin::peer_pin(pin_));
            std::lock_guard lock(client_mu_);
            client_ = std::move(fresh);
          }
        }
      }
      changed = tracker_.check() || changed;
      if (changed) on_transition();
      first_done_ = true;
      auto until = tracker_.next_due() - mgr_.clock_->now();
      auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(until);
      if (!wait(std::clamp(ms, std::chrono::milliseconds(50), mgr_.config_.heartbeat.interval)))
        return;
    }
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
  }

  void cancel_watch() { cancel_.cancel(); }

  void write_state(int64_t heartbeat_ms) {
    auto host = mgr_.store_.get_host(host_id_);
    if (!host) return;
    std::string state = host->state == "maintenance" ? "maintenance"
                                                      : std::string(to_string(tracker_.state()));
    if (state == "unknown") state = "enrolling";
    mgr_.store_.touch_host_heartbeat(host_id_, heartbeat_ms, state);
  }

  void record_metrics() {
    auto m = client()->metrics(mgr_.config_.heartbeat.rpc_timeout);
    if (!m) return;
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

  void refresh_inventory() {
    auto inv = client()->inventory();
    if (!inv) return;
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

  void watch_loop() {
    while (true) {
      bool up = false;
      {
        std::unique_lock lock(mu_);
        if (stopping_) return;
        up = liveness_ == Liveness::up;
        if (up) cancel_.reset();
      }
      if (up) {
        client()->watch_events(true, cancel_, [this](const pb::VmEvent& ev) {
          if (mgr_.callbacks_.on_vm_event) mgr_.callbacks_.on_vm_event(host_id_, ev);
        });
      }
      if (!wait(std::chrono::milliseconds(1000))) return;
    }
  }

  ConnectionManager& mgr_;
  std::string host_id_;
  std::string host_name_;
  std::string address_;
  // The host's name and enrolled (or first-use) certificate, checked on every dial.
  std::shared_ptr<HostPin> pin_;
  mutable std::mutex client_mu_;
  AgentClientPtr client_;
  HeartbeatTracker tracker_;  // heartbeat thread only
  std::atomic<Liveness> liveness_{Liveness::unknown};
  std::atomic<bool> first_done_{false};
  int64_t last_ok_ms_ = 0;
  // HA leases: guards last_grant_ and leased_ (written by the heartbeat thread, read by the
  // HA controller through ha_lease()).
  mutable std::mutex lease_mu_;
  std::optional<Clock::TimePoint> last_grant_;
  std::set<std::string> leased_;
  StreamCancel cancel_;
  std::mutex mu_;
  std::condition_variable_any cv_;
  bool stopping_ = false;
  std::thread heartbeat_thread_;
  std::thread watch_thread_;
};

ConnectionManager::ConnectionManager(store::Store& store, EventLog& events, ClockPtr clock,
                                     ConnectionConfig config)
    : store_(store), events_(events), clock_(std::move(clock)), config_(config) {}

ConnectionManager::~ConnectionManager() { stop(); }

void ConnectionManager::set_callbacks(AgentCallbacks callbacks) {
  callbacks_ = std::move(callbacks);
}

Status ConnectionManager::start() {
  auto hosts = store_.list_hosts({});
  if (!hosts) return tl::unexpected(hosts.error());
  for (const auto& h : *hosts) add_host(h);
  // Every connection heartbeats at once on its own thread; wait for those first answers
  // (an unreachable host costs at most one rpc_timeout, all in parallel).
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
  std::map<std::string, std::unique_ptr<HostConnection>> hosts;
  {
    std::lock_guard lock(mu_);
    stopped_ = true;
    hosts.swap(hosts_);
  }
  for (auto& [id, c] : hosts) c->stop();
}

void ConnectionManager::add_host(const store::HostRecord& host) {
  std::unique_ptr<HostConnection> old;
  {
    std::lock_guard lock(mu_);
    if (stopped_) return;
    auto it = hosts_.find(host.id);
    if (it != hosts_.end()) {
      if (it->second->client()->address() == host.address) return;
      old = std::move(it->second);
      hosts_.erase(it);
    }
  }
  if (old) old->stop();
  auto conn = std::make_unique<HostConnection>(*this, host);
  std::lock_guard lock(mu_);
  hosts_[host.id] = std::move(conn);
}

void ConnectionManager::remove_host(const std::string& host_id) {
  std::unique_ptr<HostConnection> old;
  {
    std::lock_guard lock(mu_);
    auto it = hosts_.find(host_id);
    if (it == hosts_.end()) return;
    old = std::move(it->second);
    hosts_.erase(it);
  }
  old->stop();
}

AgentClientPtr ConnectionManager::client(const std::string& host_id) const {
  std::lock_guard lock(mu_);
  auto it = hosts_.find(host_id);
  return it == hosts_.end() ? nullptr : it->second->client();
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

}  // namespace strata::manager
