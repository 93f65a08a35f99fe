// The VM reconcile loop (see vm_controller.h).
#include "strata/manager/controllers/vm_controller.h"
#include "strata/manager/controllers/vm_decision.h"

#include <fmt/format.h>

#include "strata/common/clock_wait.h"
#include "strata/common/log.h"
#include "strata/manager/auth/tokens.h"

namespace strata::manager {


VmController::VmController(store::Store& store, ConnectionManager& agents, TaskTracker& tasks,
                           EventLog& events, PlacementService& placement, ClockPtr clock,
                           ControllerConfig config)
    : store_(store), agents_(agents), tasks_(tasks), events_(events), placement_(placement),
      clock_(std::move(clock)), config_(config), migration_slots_(config.migrations) {}

VmController::~VmController() { stop(); }

void VmController::start() {
  for (int i = 0; i < std::max(1, config_.workers); ++i)
    threads_.emplace_back([this] { worker_loop(); });
  threads_.emplace_back([this] { timer_loop(); });
}

void VmController::stop() {
  {
    std::lock_guard lock(mu_);
    if (stopping_ && threads_.empty()) return;
    stopping_ = true;
  }
  cv_.notify_all();
  for (auto& t : threads_)
    if (t.joinable()) t.join();
  threads_.clear();
  // Migration threads end after their current pass (they see stopping_ before the next).
  std::map<std::string, std::thread> running;
  std::vector<std::thread> finished;
  {
    std::lock_guard lock(migration_mu_);
    running.swap(migration_threads_);
    finished.swap(finished_migrations_);
  }
  for (auto& [id, t] : running)
    if (t.joinable()) t.join();
  for (auto& t : finished)
    if (t.joinable()) t.join();
}

void VmController::enqueue_vm(const std::string& vm_id) {
  std::lock_guard lock(mu_);
  std::string item = "vm:" + vm_id;
  delayed_.erase(item);
  if (queued_.insert(item).second) queue_.push_back(item);
  // notify_all: the timer waits on cv_ too, and a notify_one that woke only the timer would
  // leave the item queued until the next tick (simulated time: until the clock moves).
  cv_.notify_all();
}

void VmController::enqueue_host(const std::string& host_id) {
  std::lock_guard lock(mu_);
  std::string item = "host:" + host_id;
  if (queued_.insert(item).second) queue_.push_back(item);
  cv_.notify_all();  // as in enqueue_vm
}

void VmController::requeue_later(const std::string& item) {
  std::lock_guard lock(mu_);
  int n = ++attempts_[item];
  delayed_[item] = clock_->now() + retry_delay(n, config_.retry_base, config_.retry_max);
  ++delayed_epoch_;
  cv_.notify_all();
}

std::optional<Clock::TimePoint> VmController::retry_due(const std::string& vm_id) {
  std::lock_guard lock(mu_);
  auto it = delayed_.find("vm:" + vm_id);
  if (it == delayed_.end()) return std::nullopt;
  return it->second;
}

void VmController::worker_loop() {
  while (true) {
    std::string item;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] {
        if (stopping_) return true;
        for (const auto& i : queue_)
          if (!in_flight_.count(i)) return true;
        return false;
      });
      if (stopping_) return;
      for (auto it = queue_.begin(); it != queue_.end(); ++it) {
        if (in_flight_.count(*it)) continue;
        item = *it;
        queue_.erase(it);
        break;
      }
      queued_.erase(item);
      in_flight_.insert(item);
    }
    Outcome outcome = Outcome::done;
    if (item.rfind("vm:", 0) == 0) {
      outcome = reconcile_vm(item.substr(3));
    } else if (item.rfind("resync:", 0) == 0) {
      outcome = resync_host(item.substr(7));
    } else {
      outcome = reconcile_host(item.substr(5));
    }
    if (outcome == Outcome::retry) {
      requeue_later(item);
    } else if (outcome == Outcome::done) {
      std::lock_guard lock(mu_);
      attempts_.erase(item);
    }
    {
      std::lock_guard lock(mu_);
      in_flight_.erase(item);
    }
    cv_.notify_all();
  }
}

// Moves due retries (backoff) to the queue and queues every VM each resync_interval; all
// deadlines are on the injected clock. Sleeps until the earliest of them (at most a tick),
// or until a new retry is delayed.
void VmController::timer_loop() {
  auto next_resync = clock_->now();
  while (true) {
    std::vector<std::string> resync;
    if (clock_->now() >= next_resync) {
      // Per host (one listing of its VMs each), and the unplaced VMs one by one.
      if (auto vms = store_.list_vms({})) {
        std::set<std::string> hosts;
        for (const auto& vm : *vms) {
          if (vm.host_id)
            hosts.insert(*vm.host_id);
          else
            resync.push_back("vm:" + vm.id);
        }
        for (const auto& h : hosts) resync.push_back("resync:" + h);
      }
      next_resync = clock_->now() + config_.resync_interval;
    }
    {
      std::unique_lock lock(mu_);
      if (stopping_) return;
      const auto now = clock_->now();
      auto wake = std::min(next_resync, now + config_.timer_tick);
      for (auto it = delayed_.begin(); it != delayed_.end();) {
        if (it->second <= now) {
          if (queued_.insert(it->first).second) queue_.push_back(it->first);
          it = delayed_.erase(it);
        } else {
          wake = std::min(wake, it->second);
          ++it;
        }
      }
      for (auto& item : resync)
        if (!delayed_.count(item) && queued_.insert(item).second) queue_.push_back(item);
      cv_.notify_all();
      const uint64_t epoch = delayed_epoch_;
      clock_wait_until(*clock_, lock, cv_, wake,
                       [&] { return stopping_ || delayed_epoch_ != epoch; });
      if (stopping_) return;
    }
  }
}

void VmController::on_host_state(const std::string& host_id, Liveness) { enqueue_host(host_id); }

// The agent's event: the VM's status and the event log entries in one transaction (a crash
// cannot keep one without the other), then a reconcile pass unless the VM, seen through the
// event, is converged (vm_converged: nothing to do and nothing new to record). A create saw
// three events (defined, starting, running), each costing a pass with a GetVm call.
void VmController::on_vm_event(const std::string& host_id, const pb::VmEvent& ev) {
  auto vm = store_.get_vm_by_name(ev.vm());
  if (!vm || !vm->host_id || *vm->host_id != host_id) return;
  const std::string state = vm_state_name(ev.state());
  const bool logged = ev.detail() != "current";
  // The guest's watchdog expired (it hung) and QEMU acted: an event of its own, to alert on.
  const bool watchdog = ev.detail().rfind("WATCHDOG ", 0) == 0;
  std::vector<store::EventRecord> appended;
  for (int attempt = 0; attempt < 5; ++attempt) {
    appended.clear();
    VmStatusDoc st = decode_vm_status(vm->status);
    const bool changed = !(st.agent_state == state && st.state == state);
    if (!changed && !logged) break;
    store::VmRecord next = *vm;
    if (changed) {
      st.agent_state = state;
      if (!vm->deletion_requested) st.state = state;
      st.observed_ms = unix_ms(*clock_);
      next.status = encode(st);
    }
    auto done = store_.transaction([&](store::Store& tx) -> Status {
      if (changed) {
        auto u = tx.update_vm(next);
        if (!u) return tl::unexpected(u.error());
        next = *u;
      }
      if (!logged) return {};
      auto e = EventLog::append_in(tx, "agent:" + host_id, "vm.state", "vm/" + ev.vm(), state,
                                   ev.detail());
      if (!e) return tl::unexpected(e.error());
      appended.push_back(*e);
      if (watchdog) {
        auto w = EventLog::append_in(
            tx, "agent:" + host_id, "vm.watchdog", "vm/" + ev.vm(), ev.detail().substr(9),
            "the guest stopped feeding its watchdog; QEMU's action: " + ev.detail().substr(9));
        if (!w) return tl::unexpected(w.error());
        appended.push_back(*w);
      }
      return {};
    });
    if (done) {
      *vm = next;
      break;
    }
    appended.clear();
    if (done.error().code != ErrorCode::conflict) break;  // the pass below looks again
    vm = store_.get_vm(vm->id);
    if (!vm) return;
  }
  for (const auto& e : appended) events_.published(e);
  if (observed_before(vm->id))
    if (auto doc = decode_vm_document(vm->spec)) {
      const VmStatusDoc st = decode_vm_status(vm->status);
      AgentVmView seen{state, vm->id, st.guest, st.cpu_model};
      if (vm_converged(*vm, *doc, st, seen)) return;
    }
  enqueue_vm(vm->id);
}

// A host holds a VM whose record lives on another host, with no migration between them
// in progress: a copy left behind (its host was fenced and the VM restarted elsewhere by HA,
// or the manager died before a migration's source was cleaned). It must never run: stopped
// (forced: the other copy owns the disks) and removed from the host.
void VmController::remove_stale_copy(const std::string& host_id, AgentClient& client,
                                     const store::VmRecord& rec, const pb::VmStatus& avm) {
  auto doc = decode_vm_document(rec.spec);
  if (!doc) return;
  if (doc->migration.active()) return;  // the migration controller's (vm_migration.cc)
  auto log = logger("manager.controller");
  const std::string name = avm.spec().name();
  // Unique per record version: the same VM can leave a stale copy on the same host again
  // (a second failover), and the agent answers a repeated request id from its log.
  const std::string rid = fmt::format("{}:stale:{}:{}", rec.id, host_id, rec.resource_version);
  const std::string state = vm_state_name(avm.state());
  // The source of a migration that ended on the target (the manager recorded the end, then
  // died or lost the host before confirming): confirm removes it, as the migration would
  // have. Any other copy is not migrating out: the agent refuses (or cannot migrate at
  // all), and it is removed below. Only a host that does not answer is tried again later.
  if (auto c = client.confirm_migration(rid + ":confirm", name); c) {
    events_.append("controller:vm", "vm.stale_copy_removed", "vm/" + name, "ok",
                   fmt::format("host {} held the paused source of a finished migration; the VM "
                               "lives on host {}",
                               host_id, *rec.host_id));
    return;
  } else if (c.error().code == ErrorCode::unavailable ||
             c.error().code == ErrorCode::deadline_exceeded) {
    log->warn("stale copy confirm failed vm={} host={} error={}", name, host_id,
              c.error().to_string());
    return;  // tried again at the host's next reconcile
  }
  if (is_active_state(state)) {
    log->error("stale copy is active vm={} host={} state={}: forcing it off", name, host_id,
               state);
    if (auto s = client.force_off_vm(rid + ":off", name); !s) {
      log->warn("stale copy force off failed vm={} host={} error={}", name, host_id,
                s.error().to_string());
      return;  // tried again at the host's next reconcile
    }
  }
  if (auto s = client.undefine_vm(rid + ":undefine", name); !s) {
    log->warn("stale copy undefine failed vm={} host={} error={}", name, host_id,
              s.error().to_string());
    return;
  }
  events_.append("controller:vm", "vm.stale_copy_removed", "vm/" + name, "ok",
                 fmt::format("host {} held a {} copy; the VM lives on host {}", host_id, state,
                             *rec.host_id));
}

// Host came up: adopt what the agent runs, then reconcile its VMs. Host unreachable: its
// VMs' state becomes "unknown" (they are not lost; the agent keeps running them).
VmController::Outcome VmController::reconcile_host(const std::string& host_id) {
  store::VmListOptions opts;
  opts.host_id = host_id;
  Liveness live = agents_.liveness(host_id);
  // A host still counted up whose agent did not list its VMs (restarting within its
  // heartbeats, so no liveness change will queue it again): tried again after a backoff.
  // Without it, a migration source whose confirm failed while its agent restarted kept its
  // paused copy for good (MigrationMatrix: Finish_SourceKilled, Confirm_SourceKilled).
  bool listed_ok = live != Liveness::up;
  if (live == Liveness::up) {
    if (auto client = agents_.client(host_id)) {
      if (auto listed = client->list_vms()) {
        listed_ok = true;
        for (const auto& avm : *listed) {
          auto lbl = avm.spec().labels().find(kVmIdLabel);
          auto rec = lbl != avm.spec().labels().end() ? store_.get_vm(lbl->second)
                                                      : store_.get_vm_by_name(avm.spec().name());
          const Adoption adoption =
              decide_adoption(rec ? std::optional(*rec) : std::nullopt, avm.spec().name());
          if (adoption == Adoption::ignore) {
            // Made by Strata for a record that no longer exists: never adopted nor deleted
            // here (a store restored from an old backup must not destroy newer VMs), but
            // said, so an operator can see it and remove it.
            if (lbl != avm.spec().labels().end() && !rec &&
                rec.error().code == ErrorCode::not_found) {
              logger("manager.controller")
                  ->warn("VM on host {} has no record name={} vm-id={}", host_id,
                         avm.spec().name(), lbl->second);
              events_.append("controller:vm", "vm.orphan", "vm/" + avm.spec().name(), "warning",
                             "on host " + host_id + " with strata.vm-id " + lbl->second +
                                 ", which has no record");
            }
            continue;
          }
          if (adoption == Adoption::known && rec->host_id && *rec->host_id != host_id) {
            remove_stale_copy(host_id, *client, *rec, avm);
            continue;
          }
          if (adoption == Adoption::adopt) {
            rec->host_id = host_id;
            if (store_.update_vm(*rec)) {
              placement_.record(*rec);
              events_.append("controller:vm", "vm.adopt", "vm/" + rec->name, "ok",
                             "found on host " + host_id);
            }
          }
          enqueue_vm(rec->id);
        }
      }
    }
  }
  auto vms = store_.list_vms(opts);
  if (!vms) return Outcome::retry;
  for (auto vm : *vms) {
    if (live == Liveness::unreachable) {
      VmStatusDoc st = decode_vm_status(vm.status);
      if (st.state != "unknown") {
        st.state = "unknown";
        st.last_error = "host unreachable";
        vm.status = encode(st);
        store_.update_vm(vm);
      }
    }
    enqueue_vm(vm.id);
  }
  return listed_ok ? Outcome::done : Outcome::retry;
}

VmController::Outcome VmController::resync_host(const std::string& host_id) {
  store::VmListOptions opts;
  opts.host_id = host_id;
  auto vms = store_.list_vms(opts);
  if (!vms) return Outcome::retry;
  std::map<std::string, AgentVmView> on_host;
  bool listed = false;
  if (agents_.liveness(host_id) == Liveness::up) {
    if (auto client = agents_.client(host_id)) {
      if (auto l = client->list_vms()) {
        listed = true;
        for (const auto& a : *l) {
          AgentVmView v;
          v.state = vm_state_name(a.state());
          auto lbl = a.spec().labels().find(kVmIdLabel);
          if (lbl != a.spec().labels().end()) v.vm_id_label = lbl->second;
          v.guest = guest_facts_of(a);
          v.cpu_model = a.cpu_model();
          on_host.emplace(a.spec().name(), std::move(v));
        }
      }
    }
  }
  for (const auto& vm : *vms) {
    if (listed && observed_before(vm.id)) {
      auto it = on_host.find(vm.name);
      auto doc = decode_vm_document(vm.spec);
      if (it != on_host.end() && doc &&
          vm_converged(vm, *doc, decode_vm_status(vm.status), it->second))
        continue;
    }
    enqueue_vm(vm.id);
  }
  return Outcome::done;
}

}  // namespace strata::manager
