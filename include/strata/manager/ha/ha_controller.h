// HA restart with fencing (vSphere HA, oVirt's fencing, Proxmox HA): when a host stops
// answering, its HA VMs restart on other hosts, exactly once, and only after the host is
// known to be off. The timeline (docs/internals/ha.md), with stratad's defaults:
//   t0         the host fails (last successful heartbeat; heartbeats every 2 s)
//   t0 + ~6 s  three heartbeats missed: the host is `unreachable` (event host.unreachable);
//              its VMs' state is `unknown` (they may well still run)
//   + 4 s      still unreachable and it has HA VMs: declared failed (event host.failed, a
//              host.fence task)
//   then       fenced: its fence agent powers it off and `status` confirms off (events
//              host.fencing, host.fenced); a fence that fails is retried with backoff
//              (5 s .. 60 s, event host.fence_failed each time) and the VMs stay `unknown`:
//              never a guess. A host without a fence device is never fenced and its HA VMs
//              never restart (event host.fence_unconfigured, once per outage).
//   or         the host's HA leases have run out (docs/internals/ha.md, "Leases"): the
//              manager stopped renewing them when the host went unreachable, and each HA
//              VM's shim stops its QEMU when its lease runs out, agent alive or not. Once
//              the last grant + lease + margin has passed, the VMs whose leases the host
//              had confirmed restart without a fence (event host.leases_expired); the
//              others still wait for a fence.
//   then       each HA VM (highest priority first) is moved off the host in one store
//              write (compare-and-swap: exactly once, even against a restarted manager)
//              and the controller places and starts it elsewhere (event vm.ha_restart).
// When the host answers again, the VM controller removes the copies it still holds of
// VMs that now live elsewhere, without starting them (vm_controller.cc).
// State: only the outage clock is in memory; a restarted manager sees the host unreachable
// again, waits the same timeline, fences again (powering off an off host is harmless) and
// restarts what is still on the host.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>

#include "strata/common/clock.h"
#include "strata/common/periodic.h"
#include "strata/manager/agents/connection_manager.h"
#include "strata/manager/agents/heartbeat.h"
#include "strata/manager/events/event_log.h"
#include "strata/manager/ha/fence.h"
#include "strata/manager/tasks/running_tasks.h"
#include "strata/manager/tasks/task_tracker.h"
#include "strata/store/store.h"

namespace strata::manager {

struct HaConfig {
  // How long a host stays unreachable (after the heartbeats' own misses) before it is
  // declared failed and fenced.
  std::chrono::milliseconds failed_after{4000};
  std::chrono::milliseconds interval{1000};  // between passes (clock time)
  std::chrono::milliseconds retry_base{5000};
  std::chrono::milliseconds retry_max{60000};
};

class HaController {
 public:
  using LivenessFn = std::function<Liveness(const std::string& host_id)>;
  using EnqueueFn = std::function<void(const std::string& vm_id)>;
  using LeaseFn = std::function<HaLeaseView(const std::string& host_id)>;

  // `fencer` may be null (no --fence-config): hosts are then never fenced.
  HaController(store::Store& store, EventLog& events, FencerPtr fencer, LivenessFn liveness,
               EnqueueFn enqueue_vm, ClockPtr clock, HaConfig config = {});
  ~HaController();
  HaController(const HaController&) = delete;
  HaController& operator=(const HaController&) = delete;

  // One pass over every host (the thread's body; tests call it on a ManualClock).
  void tick();
  void start();
  void stop();

  // The host's HA phase for display: "" (nothing to do), "failed", "fence_unconfigured",
  // "fence_failed", "fenced", "leases_expired".
  std::string host_phase(const std::string& host_id) const;

  // The HA leases granted to each host (ConnectionManager::ha_lease); unset: no leases are
  // relied on. Set before start().
  void set_lease_view(LeaseFn lease) { lease_ = std::move(lease); }
  // The manager's registry of in-process tasks: an outage's host.fence task is registered
  // for as long as the outage is kept here (in memory), so its lease is renewed and a
  // restarted manager's sweep fails the one its previous run left open. Set before start().
  void set_running_tasks(RunningTasks* running) { running_ = running; }
  // The VMs whose leases a heartbeat to `host_id` grants: its HA VMs (the store's view).
  // Asked on every heartbeat of every host: it reads only the host's VM ids and versions
  // and decodes only the VMs written since its last answer for that host.
  std::vector<std::string> lease_vms(const std::string& host_id);

 private:
  struct Outage {
    Clock::TimePoint since;     // first pass that saw the host unreachable
    std::string phase;          // as host_phase()
    int attempts = 0;           // fence attempts
    Clock::TimePoint next_try;  // after a failed fence
    std::string task_id;        // the host.fence task
    // Registers task_id while the outage is kept (shared by the copies a pass makes).
    std::shared_ptr<RunningTasks::Guard> lease;
  };
  void pass_host(const store::HostRecord& host, Outage& outage);
  // The host's VMs that HA restarts, highest priority first.
  std::vector<store::VmRecord> ha_vms_on(const std::string& host_id);
  // Moves the host's HA VMs (only those named in `only`, when given) off it; `why` ends
  // the VMs' last_error and events.
  void restart(const store::HostRecord& host, const std::string& why,
               const std::set<std::string>* only = nullptr);
  // Restarts the VMs whose leases have run out; true when that was every HA VM of the host.
  bool restart_leased(const store::HostRecord& host, Outage& outage,
                      const std::vector<store::VmRecord>& vms);

  store::Store& store_;
  EventLog& events_;
  FencerPtr fencer_;
  LivenessFn liveness_;
  EnqueueFn enqueue_vm_;
  LeaseFn lease_;
  ClockPtr clock_;
  HaConfig config_;
  TaskTracker tasks_;
  RunningTasks* running_ = nullptr;  // not owned; null: nothing registered

  // Guards outages_ (written by tick(), read by host_phase()). Fence agents run with mu_
  // released.
  mutable std::mutex mu_;
  std::map<std::string, Outage> outages_;  // by host id

  // What lease_vms() decoded of each VM, per host: a VM's entry holds while its
  // resource_version does. Guards lease_cache_ only: taken alone, never with mu_, and never
  // across a store call (heartbeats of different hosts ask at once).
  struct LeaseEntry {
    int64_t version = 0;
    std::string name;
    bool leased = false;  // HA and not being deleted
  };
  std::mutex lease_mu_;
  std::map<std::string, std::map<std::string, LeaseEntry>> lease_cache_;  // host id -> vm id ->
  // Calls tick() every interval. Declared last: stopped before what its passes use goes.
  PeriodicThread thread_;
};

}  // namespace strata::manager
