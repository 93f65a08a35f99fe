// The `sim` hypervisor driver (src/agent/hypervisor/sim/): VMs are records in memory,
// with boot and shutdown times on the injected clock, synthetic CPU and memory metrics,
// and failure injection. For scale and fault testing of the manager only (many simulated
// hosts in one process: `strata-agent sim`); real hosts keep the QEMU driver. What it does
// not model (console, guest agent, snapshots, clones, backups, disks, migration) answers
// failed_precondition naming the sim, never a silent success.
// docs/internals/fleet.md.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <set>
#include <string>

#include "strata/agent/hypervisor.h"
#include "strata/common/clock.h"
#include "strata/common/error.h"

namespace strata::agent {

struct SimOptions {
  ClockPtr clock;  // required: boot and shutdown complete when it reaches their due time
  // starting -> running after boot_time; shutting_down -> stopped after shutdown_time
  // (a shutdown whose timeout is shorter is forced off at the timeout). Zero: at once.
  std::chrono::milliseconds boot_time{0};
  std::chrono::milliseconds shutdown_time{0};
  // Failure injection: each start fails with this probability (0..1), and a VM named in
  // fail_start never starts; both answer `internal` with "sim: injected start failure".
  double start_failure_rate = 0.0;
  std::set<std::string> fail_start;
  uint64_t seed = 1;  // of the failure draws: a run is reproducible
  // Metrics of a VM with a process: each vCPU busy this fraction (0..1) of the time, and
  // this fraction (0..1) of its memory resident.
  double cpu_busy = 0.05;
  double memory_resident = 0.5;
};

// Checks the options: invalid_argument naming the option (clock, boot_time,
// shutdown_time, start_failure_rate, cpu_busy, memory_resident).
Status validate(const SimOptions& options);

class SimHypervisor : public Hypervisor {
 public:
  // Completes the transitions that are due on the clock (boot done, shutdown done) and
  // tells the watchers. Queries (status, list, stats) do it too, so nothing is reported
  // stale; a runner calls it periodically so that events flow without queries.
  virtual void tick() = 0;
  // Sums over the VMs with a process (starting, running, paused, shutting_down), for the
  // simulated host's metrics.
  struct Usage {
    uint32_t vms = 0;      // VMs defined
    uint32_t active = 0;   // VMs with a process
    uint32_t vcpus = 0;    // of the active VMs
    double cpus_busy = 0;  // vCPUs busy now (vcpus x cpu_busy of running VMs)
    uint64_t resident_bytes = 0;
  };
  virtual Usage usage() const = 0;
};
using SimHypervisorPtr = std::unique_ptr<SimHypervisor>;

Result<SimHypervisorPtr> make_sim_hypervisor(SimOptions options);

}  // namespace strata::agent
