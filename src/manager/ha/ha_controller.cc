// HA restart with fencing (see ha_controller.h).
#include "strata/manager/ha/ha_controller.h"

#include <algorithm>

#include <fmt/format.h>

#include "strata/common/log.h"
#include "strata/manager/auth/tokens.h"
#include "strata/manager/controllers/vm_decision.h"
#include "strata/manager/controllers/vm_document.h"

namespace strata::manager {

namespace {
int64_t ms_between(Clock::TimePoint a, Clock::TimePoint b) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(b - a).count();
}
}  // namespace

HaController::HaController(store::Store& store, EventLog& events, FencerPtr fencer,
                           LivenessFn liveness, EnqueueFn enqueue_vm, ClockPtr clock,
                           HaConfig config)
    : store_(store), events_(events), fencer_(std::move(fencer)), liveness_(std::move(liveness)),
      enqueue_vm_(std::move(enqueue_vm)), clock_(std::move(clock)), config_(config),
      tasks_(store), thread_(clock_, config_.interval, [this] { tick(); }) {}

HaController::~HaController() { stop(); }

std::string HaController::host_phase(const std::string& host_id) const {
  std::lock_guard lock(mu_);
  auto it = outages_.find(host_id);
  return it == outages_.end() ? "" : it->second.phase;
}

std::vector<store::VmRecord> HaController::ha_vms_on(const std::string& host_id) {
  std::vector<std::pair<int, store::VmRecord>> found;
  store::VmListOptions o;
  o.host_id = host_id;
  auto vms = store_.list_vms(o);
  if (!vms) return {};
  for (auto& vm : *vms) {
    if (vm.deletion_requested || vm.desired_state != "running") continue;
    auto doc = decode_vm_document(vm.spec);
    // A migration in progress is the migration controller's: it ends on one host.
    if (!doc || !doc->ha.enabled || doc->migration.active()) continue;
    found.emplace_back(doc->ha.priority, std::move(vm));
  }
  std::stable_sort(found.begin(), found.end(),
                   [](const auto& a, const auto& b) { return a.first > b.first; });
  std::vector<store::VmRecord> out;
  for (auto& [p, vm] : found) out.push_back(std::move(vm));
  return out;
}

std::vector<std::string> HaController::lease_vms(const std::string& host_id) {
  std::vector<std::string> out;
  auto versions = store_.list_vm_versions(host_id);
  if (!versions) return out;
  std::map<std::string, LeaseEntry> known;
  {
    std::lock_guard lock(lease_mu_);
    auto it = lease_cache_.find(host_id);
    if (it != lease_cache_.end()) known = it->second;
  }
  // The host's VMs now: an entry kept while its version holds, the others read again.
  std::map<std::string, LeaseEntry> now;
  for (const auto& [id, version] : *versions) {
    auto k = known.find(id);
    if (k != known.end() && k->second.version == version) {
      now.emplace(id, k->second);
      continue;
    }
    auto vm = store_.get_vm(id);
    if (!vm) continue;  // deleted since the list: not leased; asked again next beat
    LeaseEntry e;
    e.version = vm->resource_version;
    e.name = vm->name;
    if (!vm->deletion_requested && vm->host_id == host_id) {
      auto doc = decode_vm_document(vm->spec);
      e.leased = doc && doc->ha.enabled;
    }
    now.emplace(id, std::move(e));
  }
  for (const auto& [id, e] : now)
    if (e.leased) out.push_back(e.name);
  std::lock_guard lock(lease_mu_);
  if (now.empty())
    lease_cache_.erase(host_id);
  else
    lease_cache_[host_id] = std::move(now);
  return out;
}

bool HaController::restart_leased(const store::HostRecord& host, Outage& outage,
                                  const std::vector<store::VmRecord>& vms) {
  if (!lease_) return false;
  const HaLeaseView view = lease_(host.id);
  const auto now = clock_->now();
  if (!view.expired_by || now < *view.expired_by) return false;
  std::set<std::string> leased;
  for (const auto& vm : vms)
    if (view.vms.count(vm.name)) leased.insert(vm.name);
  if (leased.empty()) return false;
  const bool all = leased.size() == vms.size();
  logger("manager.ha")->warn("HA leases expired host={} vms={} of {}", host.name, leased.size(),
                             vms.size());
  events_.append("controller:ha", "host.leases_expired", "host/" + host.name, "ok",
                 fmt::format("the HA leases of {} VM(s) ran out {} ms ago (not renewed since the "
                             "host stopped answering): their shims have stopped them; restarting "
                             "them elsewhere{}",
                             leased.size(), ms_between(*view.expired_by, now),
                             all ? std::string()
                                 : fmt::format("; {} other HA VM(s) had no lease in force and "
                                               "wait for a fence",
                                               vms.size() - leased.size())));
  restart(host, "the HA leases on host " + host.name + " ran out", &leased);
  if (all) {
    outage.phase = "leases_expired";
    if (!outage.task_id.empty())
      tasks_.update(outage.task_id, "succeeded", 100,
                    fmt::format("no fence needed: the HA leases ran out; {} HA VM(s) restarting "
                                "elsewhere",
                                vms.size()));
  }
  return all;
}

void HaController::tick() {
  auto hosts = store_.list_hosts({});
  if (!hosts) return;
  for (const auto& host : *hosts) {
    const Liveness live = liveness_(host.id);
    Outage outage;
    std::string open_task;  // the fence task of an outage that ends unfenced
    {
      std::lock_guard lock(mu_);
      auto it = outages_.find(host.id);
      if (live != Liveness::unreachable) {
        if (it != outages_.end()) {
          if (it->second.phase == "fenced" || it->second.phase == "leases_expired")
            events_.append("controller:ha", "host.returned", "host/" + host.name, "ok",
                           "the fenced host answers again; the copies it still holds of VMs "
                           "that restarted elsewhere are removed, not started");
          else
            open_task = it->second.task_id;
          outages_.erase(it);
        }
      } else {
        if (it == outages_.end()) {
          Outage fresh;
          fresh.since = clock_->now();
          it = outages_.emplace(host.id, std::move(fresh)).first;
        }
        outage = it->second;
      }
    }
    if (live != Liveness::unreachable) {
      // Back before it was fenced: the fence is not needed any more (a task left running
      // here would show an operation that is not happening).
      if (!open_task.empty())
        tasks_.update(open_task, "succeeded", 100, "no fence needed: the host answers again");
      continue;
    }
    pass_host(host, outage);
    std::lock_guard lock(mu_);
    if (auto it = outages_.find(host.id); it != outages_.end()) it->second = outage;
  }
}

void HaController::pass_host(const store::HostRecord& host, Outage& outage) {
  auto log = logger("manager.ha");
  const auto now = clock_->now();
  const std::string target = "host/" + host.name;
  if (outage.phase == "fenced") {
    restart(host, "host " + host.name + " failed and was fenced");  // what a conflict left
    return;
  }
  auto vms = ha_vms_on(host.id);
  if (vms.empty()) return;  // nothing to restart: no reason to power the host off
  if (now - outage.since < config_.failed_after) return;
  if (outage.phase == "leases_expired") {
    (void)restart_leased(host, outage, vms);  // what a conflict left behind
    return;
  }
  if (outage.phase.empty()) {
    outage.phase = "failed";
    log->warn("host failed host={} ha_vms={}", host.name, vms.size());
    events_.append("controller:ha", "host.failed", target, "warning",
                   fmt::format("unreachable for {} ms after its missed heartbeats; {} HA VM(s) "
                               "to restart once it is fenced",
                               ms_between(outage.since, now), vms.size()));
    if (auto t = tasks_.create(TaskKind::host_fence, "host", host.id,
                               "fencing " + host.name + " to restart its HA VMs")) {
      outage.task_id = t->id;
      outage.lease = std::make_shared<RunningTasks::Guard>(
          RunningTasks::enter(running_, TaskKind::host_fence, t->id));
    }
  }
  // Leases first: once they have run out, no power fence is needed for those VMs (nor
  // possible, maybe: the power controller may have died with the host).
  if (restart_leased(host, outage, vms)) return;
  if (now < outage.next_try) return;
  if (!fencer_ || !fencer_->configured(host.name)) {
    if (outage.phase != "fence_unconfigured") {
      outage.phase = "fence_unconfigured";
      log->error("host failed and has no fence device host={}", host.name);
      events_.append("controller:ha", "host.fence_unconfigured", target, "error",
                     fmt::format("{} HA VM(s) stay unknown: the host has no fence device in "
                                 "stratad's --fence-config, so it cannot be proven off",
                                 vms.size()));
      if (!outage.task_id.empty())
        tasks_.update(outage.task_id, "running", 10, "no fence device configured for the host");
    }
    outage.next_try = now + config_.retry_max;
    return;
  }
  events_.append("controller:ha", "host.fencing", target, "ok",
                 fmt::format("attempt {}", outage.attempts + 1));
  if (!outage.task_id.empty())
    tasks_.update(outage.task_id, "running", 30,
                  fmt::format("fence attempt {}", outage.attempts + 1));
  const auto fence_start = clock_->now();
  auto fenced = fencer_->fence_off(host.name);  // seconds, with no lock held
  const int64_t fence_ms = ms_between(fence_start, clock_->now());
  if (!fenced) {
    ++outage.attempts;
    outage.phase = "fence_failed";
    auto delay = retry_delay(outage.attempts, config_.retry_base, config_.retry_max);
    outage.next_try = clock_->now() + delay;
    log->error("fence failed host={} attempt={} error={}", host.name, outage.attempts,
               fenced.error().message);
    events_.append("controller:ha", "host.fence_failed", target, "error",
                   fmt::format("{}; its HA VMs stay unknown; retry in {} s",
                               fenced.error().message,
                               std::chrono::duration_cast<std::chrono::seconds>(delay).count()));
    if (!outage.task_id.empty())
      tasks_.update(outage.task_id, "running", 30,
                    fmt::format("fence attempt {} failed: {}", outage.attempts,
                                fenced.error().message));
    return;
  }
  outage.phase = "fenced";
  log->info("host fenced host={} fence_ms={}", host.name, fence_ms);
  events_.append("controller:ha", "host.fenced", target, "ok",
                 fmt::format("{} ({} ms)", fenced->detail, fence_ms));
  restart(host, "host " + host.name + " failed and was fenced");
  if (!outage.task_id.empty())
    tasks_.update(outage.task_id, "succeeded", 100,
                  fmt::format("fenced; {} HA VM(s) restarting elsewhere", vms.size()),
                  nlohmann::json{{"fence", fenced->detail},
                                 {"fence_ms", fence_ms},
                                 {"declared_failed_after_ms", ms_between(outage.since, now)}});
}

void HaController::restart(const store::HostRecord& host, const std::string& why,
                           const std::set<std::string>* only) {
  // Each VM leaves the host in one compare-and-swap write: whoever moves it first (this
  // pass, or a restarted manager's) wins, and the controller starts it once, elsewhere.
  for (auto vm : ha_vms_on(host.id)) {
    if (only && !only->count(vm.name)) continue;
    for (int attempt = 0; attempt < 5; ++attempt) {
      if (!vm.host_id || *vm.host_id != host.id) break;
      VmStatusDoc st = decode_vm_status(vm.status);
      st.state = "pending";
      st.agent_state.clear();
      st.last_error = "restarting: " + why;
      st.observed_ms = unix_ms(*clock_);
      store::VmRecord next = vm;
      next.host_id.reset();
      next.status = encode(st);
      // A new intent: run it again, elsewhere. The new generation gives the agent requests
      // of this restart new ids, so a host that ran the VM before (an earlier failover)
      // executes them instead of answering from its request log.
      if (auto doc = decode_vm_document(vm.spec)) {
        doc->control.generation += 1;
        next.spec = encode(*doc);
      }
      auto u = store_.update_vm(next);
      if (u) {
        events_.append("controller:ha", "vm.ha_restart", "vm/" + vm.name, "ok",
                       why + "; restarting elsewhere");
        if (enqueue_vm_) enqueue_vm_(vm.id);
        break;
      }
      if (u.error().code != ErrorCode::conflict) break;
      auto fresh = store_.get_vm(vm.id);
      if (!fresh) break;
      vm = *fresh;
    }
  }
}

void HaController::start() { thread_.start(); }

void HaController::stop() { thread_.stop(); }

}  // namespace strata::manager
