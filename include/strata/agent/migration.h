// Live migration as a hypervisor driver offers it to the agent service: the phases of
// libvirt's protocol (begin and perform/confirm/cancel on the source, prepare/finish/abort
// on the target). The manager drives them, one agent call at a time (control always goes
// manager -> agent; the agents only talk to each other through QEMU's migration stream and
// the NBD disk mirror). Plain data plus one small interface; docs/internals/migration.md.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>

#include "strata/common/error.h"
#include "strata/model/vm_spec.h"

namespace strata::agent {

// Begin (source): what the target needs to build the same VM: the spec (UUID included) and
// the VM's recorded hardware profile (the driver's own JSON; the target takes it as is).
struct MigrationSource {
  model::VmSpec spec;
  std::string profile_json;
  // Set by the manager before prepare: the target listens for TLS only (migration
  // certificates, see MigrationTlsFiles) and reports it back in MigrationIncoming::tls.
  bool tls = false;
  // Set by the manager before prepare: the target accepts post-copy (QEMU's postcopy-ram,
  // which needs userfaultfd for QEMU's user) and reports it in MigrationIncoming::postcopy.
  bool postcopy = false;
};

// Prepare (target): where the source streams to.
struct MigrationIncoming {
  std::string migration_uri;  // "tcp:HOST:PORT"
  std::string nbd_host;       // the NBD server exporting the disks writable (empty: no disks)
  std::string nbd_port;
  bool tls = false;  // both the stream and the NBD exports require TLS (mutual, CA-checked)
  bool postcopy = false;  // the target can take the rest of the RAM after the switch-over
};

// Where a driver finds this host's migration identity: <dir>/ca.crt (the manager's CA),
// <dir>/migration.crt (clientAuth + serverAuth, SAN = the host's addresses) and
// <dir>/migration.key. Read at each TLS migration (a renewed certificate applies at once).
inline constexpr const char* kMigrationCaFile = "ca.crt";
inline constexpr const char* kMigrationCertFile = "migration.crt";
inline constexpr const char* kMigrationKeyFile = "migration.key";

// The convergence policy (oVirt / Proxmox style): start with a low downtime limit and
// raise it in steps while RAM does not converge; past the deadline cancel cleanly.
struct MigrationPolicy {
  int64_t downtime_start_ms = 100;
  int64_t downtime_step_ms = 100;
  int64_t downtime_max_ms = 1000;
  std::chrono::milliseconds step_interval{2000};  // time between steps while active
  uint64_t max_bandwidth = 0;                     // bytes per second; 0: QEMU's default
  std::chrono::milliseconds deadline{0};          // 0: deadline_for(memory)
  // QEMU's auto-converge (throttles the guest's vCPUs while RAM does not converge). Set
  // explicitly at every migration: QEMU keeps capabilities from one to the next.
  bool auto_converge = false;
  // Post-copy (off by default): instead of waiting for RAM to converge, the guest switches
  // over once the copy has begun (at once when the RAM is copied paused, on TCG; after the
  // first full pass otherwise) and the target fetches the rest on demand. migrate_out then
  // returns `postcopy_ready` and the manager records the decision before switchover_out:
  // from migrate-start-postcopy on, the source can no longer take the guest back (QEMU
  // refuses `cont` until the migration is finalized), so a lost target or link loses it.
  bool postcopy = false;
};

// The deadline scaled by the VM's memory (as Nova and KubeVirt): 60 s plus 60 s per GiB.
std::chrono::milliseconds deadline_for(uint64_t memory_bytes);
// The downtime limit after `elapsed` of the RAM stage under `p`.
int64_t downtime_limit_at(const MigrationPolicy& p, std::chrono::milliseconds elapsed);

struct MigrationProgress {
  std::string phase;                       // "mirror" (disks), "ram", "completed"
  uint64_t disk_total = 0, disk_done = 0;  // bytes, over every mirror
  uint64_t ram_total = 0, ram_transferred = 0, ram_remaining = 0;
  uint64_t dirty_bytes_rate = 0;  // bytes per second the guest dirties
  uint64_t passes = 0;            // RAM passes so far
  double mbps = 0;
  int64_t downtime_limit_ms = 0;
  int64_t cpu_throttle_percent = 0;  // auto-converge's vCPU throttle now (0: none)
};
using MigrationProgressCallback = std::function<void(const MigrationProgress&)>;

struct MigrationOutcome {
  int64_t qemu_downtime_ms = 0;  // QEMU's own figure (the source's view only)
  int64_t stop_at_us = 0;        // the source's STOP event (wall clock, microseconds)
  int64_t total_ms = 0;          // mirror + RAM
  uint64_t ram_transferred = 0;
  int64_t downtime_limit_ms = 0;  // the limit it converged with
  // RAM was copied with the guest paused (TCG on QEMU < 9.0): the downtime is the copy.
  bool ram_copied_paused = false;
  // migrate_out with policy.postcopy: the copy runs and may switch over now (call
  // switchover_out); nothing is final yet (cancel_out still resumes the guest here).
  bool postcopy_ready = false;
  // switchover_out: the guest switched over in post-copy (the target holds its CPU state;
  // this host still streams the rest of the RAM until confirm_out). False when the copy
  // completed before the switch (an ordinary end).
  bool postcopy = false;
};

// The real downtime: the source's STOP event to the target's RESUME event, in ms (both
// QEMU wall-clock timestamps; across hosts this assumes synchronized clocks).
inline int64_t real_downtime_ms(int64_t stop_at_us, int64_t resume_at_us) {
  return (resume_at_us - stop_at_us) / 1000;
}

// A driver that can migrate (Hypervisor::migration()). Each call is one phase; the
// manager calls them in order and, after a crash, again from what it recorded.
class MigrationDriver {
 public:
  virtual ~MigrationDriver() = default;

  // Source. The VM must exist here.
  virtual Result<MigrationSource> begin_migration(const std::string& name) const = 0;
  // Target. Creates the VM's disks (overlays of the same bases, blank disks of the same
  // size) and a paused incoming QEMU listening on `listen_host` (an IP literal).
  virtual Result<MigrationIncoming> prepare_incoming(const MigrationSource& vm,
                                                     const std::string& listen_host) = 0;
  // Source: disks (mirror until READY), then RAM. On success the guest is paused here
  // (completed) until confirm_out / cancel_out; on failure everything is undone and the VM
  // keeps running here.
  virtual Result<MigrationOutcome> migrate_out(const std::string& name,
                                               const MigrationIncoming& target,
                                               const MigrationPolicy& policy,
                                               const MigrationProgressCallback& progress) = 0;
  // Target: resumes the guest; returns the RESUME time (wall clock, microseconds).
  virtual Result<int64_t> finish_incoming(const std::string& name,
                                          std::chrono::milliseconds timeout) = 0;
  // Target: removes an incoming VM that will not run here.
  virtual Status abort_incoming(const std::string& name) = 0;
  // Source, after migrate_out answered postcopy_ready and the manager recorded the switch:
  // starts post-copy (or takes the completed copy), ends the disk mirrors and returns the
  // outcome (stop_at_us, postcopy). Asked again, answers the same outcome.
  virtual Result<MigrationOutcome> switchover_out(const std::string& name) {
    return make_error(ErrorCode::failed_precondition,
                      "this driver has no post-copy (switchover of " + name + ")");
  }
  // Source: the target runs the guest: quits QEMU here and removes the VM (after a
  // post-copy switch-over, once the last page has been sent).
  virtual Status confirm_out(const std::string& name) = 0;
  // Source: the target will not run it: resumes the guest here.
  virtual Status cancel_out(const std::string& name) = 0;
  // Source, while migrate_out runs: asks it to stop at its next step (the copy is
  // cancelled, everything undone, the VM keeps running here; migrate_out then fails with
  // "migration cancelled"). failed_precondition when no migrate_out runs for the VM.
  virtual Status interrupt_out(const std::string& name) {
    return make_error(ErrorCode::failed_precondition,
                      "this driver cannot interrupt a migration of " + name);
  }

  // Post-copy recovery, after a switch-over whose stream broke with both QEMUs alive (both
  // in postcopy-paused; confirm_out answers unavailable). As libvirt's --postcopy-resume:
  // Target: listens for the source again on a new port of `listen_host` (QEMU's
  // migrate-recover; TLS as the migration had it) and returns the URI ("tcp:HOST:PORT").
  // Asked again while that listener waits, the same URI. not_found: no such VM here;
  // failed_precondition: its incoming migration is not paused (nothing to recover).
  virtual Result<std::string> prepare_recover_incoming(const std::string& name,
                                                       const std::string& listen_host) {
    (void)listen_host;
    return make_error(ErrorCode::failed_precondition,
                      "this driver cannot recover a post-copy migration of " + name);
  }
  // Source: reconnects its paused stream to `recover_uri` (QEMU's migrate with resume) and
  // returns once it streams again (at once if it already does); confirm_out then waits for
  // the last page. unavailable: it did not reconnect (ask again).
  virtual Status resume_out(const std::string& name, const std::string& recover_uri) {
    (void)recover_uri;
    return make_error(ErrorCode::failed_precondition,
                      "this driver cannot resume a post-copy migration of " + name);
  }
  // Source, in post-copy: breaks the stream now (QEMU's migrate-pause; both ends wait in
  // postcopy-paused for a recovery). For tests and an operator's deliberate pause.
  virtual Status pause_out(const std::string& name) {
    return make_error(ErrorCode::failed_precondition,
                      "this driver cannot pause a post-copy migration of " + name);
  }
};

}  // namespace strata::agent
