// Maintenance evacuation: a "host.evacuate" task empties a host by live-migrating its
// running VMs to other hosts (the scheduler chooses each target, as for any migration),
// at most `parallel` at a time, and ends with what moved and what stayed, and why. The
// host is in maintenance meanwhile (no new VM is placed there); turning maintenance off
// cancels the evacuation (migrations already started finish). Nothing is kept in memory
// between passes: the task's result is the record, so a restarted manager continues.
//
// Stopped VMs whose disks are all on datastores move too (cold migration). What stays: a
// stopped VM with a local disk, a VM no other host can take (the scheduler's reason), a VM
// whose migration failed twice (the migration's message). A VM that stays while running
// fails the task; stopped VMs alone do not.
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>

#include "strata/common/clock.h"
#include "strata/common/periodic.h"
#include "strata/common/error.h"
#include "strata/manager/events/event_log.h"
#include "strata/manager/tasks/task_tracker.h"
#include "strata/manager/vms/vm_service.h"
#include "strata/store/store.h"

namespace strata::manager {

struct EvacuationConfig {
  int parallel = 2;                           // migrations at a time out of one host
  std::chrono::milliseconds interval{1000};   // between passes (clock time)
  int max_attempts = 2;                       // migrations tried per VM
};

class HostEvacuator {
 public:
  HostEvacuator(store::Store& store, VmService& vms, EventLog& events, ClockPtr clock,
                EvacuationConfig config = {});
  ~HostEvacuator();
  HostEvacuator(const HostEvacuator&) = delete;
  HostEvacuator& operator=(const HostEvacuator&) = delete;

  // Puts the host in maintenance and records a host.evacuate task with its audit event
  // (one transaction). An evacuation already open for the host is returned as it is.
  // First plans it (PlacementService::plan_host_down over the host's running VMs): when
  // some VM would not fit on the other hosts, failed_precondition (409) naming each and
  // why, and nothing changes, unless `partial` (then what fits moves; the task's result
  // lists what stays, as it always does).
  Result<store::TaskRecord> evacuate(const std::string& host_name, const std::string& actor,
                                     bool partial = false);

  // One pass over every open host.evacuate task (the thread's body; tests call it).
  void tick();

  // A thread that calls tick() every interval until stop().
  void start();
  void stop();

 private:
  void pass(store::TaskRecord task);

  store::Store& store_;
  VmService& vms_;
  EventLog& events_;
  ClockPtr clock_;
  EvacuationConfig config_;

  // Calls tick() every interval, or at once for a new evacuation. Declared last: stopped
  // before the members its passes use are destroyed.
  PeriodicThread thread_;
};

}  // namespace strata::manager
