// Live migration in the QEMU driver: the types of the driver's migration jobs
// (QemuHypervisor::prepare_incoming / finish_incoming / abort_incoming on the target,
// migrate_out / confirm_out / cancel_out on the source) and the convergence policy, pure.
// Phases as libvirt's (begin, prepare, perform, finish, confirm); the manager orchestrates
// them (control goes manager -> each agent). See docs/internals/qemu-driver.md.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>

#include "hardware_profile.h"
#include "qemu_monitor.h"
#include "strata/model/vm_spec.h"

namespace strata::agent::qemu {

// Target side: what the source's agent has, so the target builds the same VM.
struct IncomingSpec {
  model::VmSpec spec;        // the VM's spec, UUID included
  HardwareProfile profile;   // the source's recorded profile: the target uses it as is
  std::string listen_host;   // where the migration stream and the NBD server listen
};

// What the source needs to stream to the prepared target.
struct IncomingInfo {
  std::string migration_uri;  // "tcp:HOST:PORT"
  std::string nbd_host;       // the NBD server exporting disk<i> writable (empty: no disks)
  std::string nbd_port;
};

// The convergence policy (oVirt / Proxmox style): start with a low downtime limit and
// raise it in steps while RAM does not converge; past the deadline cancel cleanly.
struct MigrationPolicy {
  int64_t downtime_start_ms = 100;
  int64_t downtime_step_ms = 100;
  int64_t downtime_max_ms = 1000;
  std::chrono::milliseconds step_interval{2000};  // time between steps while active
  uint64_t max_bandwidth = 0;                     // bytes per second; 0: QEMU's default
  std::chrono::milliseconds deadline{0};          // 0: deadline_for(memory)
};

// The deadline scaled by the VM's memory (as Nova and KubeVirt): 60 s plus 60 s per GiB.
std::chrono::milliseconds deadline_for(uint64_t memory_bytes);
// The downtime limit after `elapsed` of the RAM stage under `p`.
int64_t downtime_limit_at(const MigrationPolicy& p, std::chrono::milliseconds elapsed);

struct MigrationProgress {
  std::string phase;  // "mirror" (disks), "ram", "completed"
  uint64_t disk_total = 0, disk_done = 0;  // bytes, over every mirror
  MigrationInfo ram;                       // the last query-migrate
  int64_t downtime_limit_ms = 0;
};
using MigrationProgressCallback = std::function<void(const MigrationProgress&)>;

struct MigrationOutcome {
  int64_t qemu_downtime_ms = 0;  // QEMU's own figure (the source's view only)
  int64_t stop_at_us = 0;        // the source's STOP event (wall clock, microseconds)
  int64_t total_ms = 0;          // mirror + RAM
  uint64_t ram_transferred = 0;
  int64_t downtime_limit_ms = 0;  // the limit it converged with
};

// The real downtime: the source's STOP event to the target's RESUME event, in ms (both
// QEMU wall-clock timestamps; across hosts this assumes synchronized clocks).
inline int64_t real_downtime_ms(int64_t stop_at_us, int64_t resume_at_us) {
  return (resume_at_us - stop_at_us) / 1000;
}

}  // namespace strata::agent::qemu
