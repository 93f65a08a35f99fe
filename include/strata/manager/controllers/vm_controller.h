// Reconciles every VM's desired state (store) with what its host's agent runs: places
// unplaced VMs, defines/starts/stops/pauses/reboots/deletes through the agent with request
// ids "<vm id>:<op>:<generation>" (idempotent retries), records observed status, retries
// with backoff while a host is unavailable, marks VMs of unreachable hosts "unknown", and
// on (re)connection adopts VMs an agent already runs (matched by the strata.vm-id label or
// name) instead of defining them again. A periodic resync covers anything missed.
#pragma once

#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>

#include "strata/common/clock.h"
#include "strata/manager/agents/connection_manager.h"
#include "strata/manager/controllers/clusters.h"
#include "strata/manager/controllers/image_distribution.h"
#include "strata/manager/controllers/migration_slots.h"
#include "strata/manager/controllers/placement.h"
#include "strata/manager/events/event_log.h"
#include "strata/manager/tasks/task_tracker.h"
#include "strata/store/store.h"

namespace strata::manager {

struct ControllerConfig {
  // Reconciles at once. Each spends most of its time waiting (agent RPCs, store commits),
  // so more workers than cores: a create storm's define/start round trips overlap.
  int workers = 16;
  std::chrono::milliseconds resync_interval{10000};
  std::chrono::milliseconds retry_base{1000};
  std::chrono::milliseconds retry_max{30000};
  // How often the timer looks at due retries when none is due sooner (clock time).
  std::chrono::milliseconds timer_tick{250};
  // Live migrations at once, per host and in all (migration_slots.h). Each runs on its own
  // thread, so a long copy never holds one of the `workers`.
  MigrationLimits migrations;
};

class VmController {
 public:
  VmController(store::Store& store, ConnectionManager& agents, TaskTracker& tasks,
               EventLog& events, PlacementService& placement, ClockPtr clock,
               ControllerConfig config);
  ~VmController();

  void start();
  void stop();

  void enqueue_vm(const std::string& vm_id);
  void enqueue_host(const std::string& host_id);

  // Catalog images are pushed to a host before a VM is defined there (null: no catalog,
  // hosts must already hold the images). Set before start().
  void set_image_distributor(ImageDistributor* images) { images_ = images; }
  // Clusters give VMs whose spec names no CPU model their host's cluster baseline (null:
  // the host's own default). Set before start().
  void set_clusters(ClusterService* clusters) { clusters_ = clusters; }

  // When the VM's next retry (backoff) is due on the clock; nullopt: none pending.
  // (Tests and diagnostics.)
  std::optional<Clock::TimePoint> retry_due(const std::string& vm_id);

  // ConnectionManager callbacks.
  void on_host_state(const std::string& host_id, Liveness liveness);
  void on_vm_event(const std::string& host_id, const pb::VmEvent& event);

 private:
  // handed_off: a migration thread owns the VM now and requeues it itself.
  enum class Outcome { done, retry, handed_off };
  Outcome reconcile_vm(const std::string& vm_id);
  // A VM with a live migration asked for: starts its thread when the limits allow, or
  // leaves it queued with the reason in its task (vm_migration.cc).
  Outcome dispatch_migration(const store::VmRecord& vm, const VmDocument& doc);
  // The migration thread: one pass of migrate_vm; then the VM goes back to the queue (at
  // once when the migration ended, after its backoff when it must wait).
  void run_migration(const std::string& vm_id);
  // The VM's queued migration is no longer wanted (cancelled, VM deleted): leaves the line.
  void forget_queued_migration(const std::string& vm_id);
  // One pass of a live migration in progress (vm_migration.cc).
  Outcome migrate_vm(store::VmRecord& vm, const VmDocument& doc);
  // retry: the host counts as up but its agent did not answer the listing.
  Outcome reconcile_host(const std::string& host_id);
  // The periodic resync of one host's VMs: one ListVms call instead of a GetVm per VM; the
  // VMs that are not vm_converged (or that this process has not reconciled yet) are queued
  // for reconcile_vm. Items "resync:<host id>".
  Outcome resync_host(const std::string& host_id);
  void remove_stale_copy(const std::string& host_id, AgentClient& client,
                         const store::VmRecord& rec, const pb::VmStatus& avm);
  void worker_loop();
  void timer_loop();
  void requeue_later(const std::string& item);

  store::Store& store_;
  ConnectionManager& agents_;
  TaskTracker& tasks_;
  EventLog& events_;
  PlacementService& placement_;
  ClockPtr clock_;
  ControllerConfig config_;
  ImageDistributor* images_ = nullptr;
  ClusterService* clusters_ = nullptr;

  // Guards the queue below. Workers and the timer wait on cv_; the timer waits through the
  // injected clock (backoff and resync deadlines are clock time: a SimulatedClock's
  // advance() wakes it).
  std::mutex mu_;
  std::condition_variable_any cv_;
  std::vector<std::string> queue_;     // ready items ("vm:<id>", "host:<id>")
  std::set<std::string> queued_;       // dedupe
  std::set<std::string> in_flight_;
  std::map<std::string, Clock::TimePoint> delayed_;  // item -> when its retry is due
  std::map<std::string, int> attempts_;
  uint64_t delayed_epoch_ = 0;  // bumped when delayed_ gains an entry (the timer re-plans)
  bool stopping_ = false;
  std::vector<std::thread> threads_;

  // Guards the migration slots and threads. Taken alone or before mu_ (enqueue_vm and
  // requeue_later take mu_), never while holding mu_; never held across a call to an agent
  // or the store.
  std::mutex migration_mu_;
  MigrationSlots migration_slots_;
  std::map<std::string, std::thread> migration_threads_;  // vm id -> its running thread
  std::vector<std::thread> finished_migrations_;          // ended threads, to join

  // The VMs whose status this manager process has recorded at least once. A reconcile that
  // observes nothing new writes nothing (each VM is reconciled every resync_interval: a
  // write each would be 20 000 commits/s at rest for 200 000 VMs), except the first time
  // after a start, so that observed_ms says this process has seen the VM. Guards observed_
  // only; taken alone, never across a call.
  bool observed_before(const std::string& vm_id);
  void mark_observed(const std::string& vm_id, bool observed);
  std::mutex observed_mu_;
  std::unordered_set<std::string> observed_;
};

}  // namespace strata::manager
