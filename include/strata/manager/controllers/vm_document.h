// The VM resource as stratad keeps it in VmRecord.spec / VmRecord.status (JSON text):
//   spec   = {"vm": <model::VmSpec JSON>, "placement": {...}, "control": {...}}
//   status = {"state", "agent_state", "last_error", "observed_ms", "applied_generation"}
// (the REST forms are in api/vm_rest.h). `control.generation` grows with every
// change of desired state; agent request ids are "<vm id>:<op>:<generation>", so retries
// of one intent are idempotent and a new intent is a new request.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "strata/common/error.h"
#include "strata/model/guest_facts.h"
#include "strata/model/vm_spec.h"
#include "strata/store/records.h"

namespace strata::manager {

struct VmPlacement {
  std::string host;  // pinned host name (empty: any)
  std::map<std::string, std::string> node_selector;
  std::string anti_affinity_group;
  std::string affinity_group;                       // keep together with its group's VMs
  std::map<std::string, std::string> avoid_selector;  // keep off hosts carrying all of these
};

struct VmControl {
  int64_t generation = 1;
  bool paused = false;          // desired "paused" (store desired_state stays "running")
  bool stop_force = false;      // for desired "stopped": force off instead of ACPI
  uint32_t stop_timeout_s = 0;  // ACPI wait before forcing off (0: agent default, 60 s)
  int64_t reboot_generation = 0;  // a reboot was requested at this generation
  std::string task_id;          // task tracking the current intent
};

// A live migration someone asked for (VmService::migrate); the controller drives it
// (vm_migration.cc). Cleared (target empty) when it ends; seq stays, so the next
// migration's agent request ids ("<vm id>:migrate:<seq>:<phase>") are new.
struct VmMigration {
  std::string target_host_id;  // empty: none in progress
  std::string task_id;
  int64_t seq = 0;
  uint64_t max_bandwidth = 0;   // bytes per second; 0: QEMU's default
  int64_t downtime_max_ms = 0;  // 0: the agent's default (1000)
  bool tls = false;             // the RAM stream and the NBD mirror over TLS
  bool auto_converge = false;   // QEMU throttles the guest's vCPUs while RAM lags behind
  // Post-copy (asked for, off by default): the guest switches over while RAM still copies
  // and the target fetches the rest from the source (docs/internals/migration.md).
  bool postcopy = false;
  std::string cancelled_by;     // a cancel was asked for (by this actor): give the target up
  // Cold: the VM is stopped: it is defined on the target, its local disks are copied there,
  // and it is removed from the source (vm_migration.cc).
  bool cold = false;
  bool active() const { return !target_host_id.empty(); }
};

// High availability (vSphere HA, oVirt's highly available VMs): when the VM's host fails
// and has been fenced, the manager restarts the VM on another host (ha/ha_controller.h);
// higher priority first. Only a VM with nothing to lose on its host may be HA: every
// writable disk on shared storage (none is today, so: no writable disk; see
// validate_ha()).
struct VmHa {
  bool enabled = false;
  int priority = 0;  // 0..1000, higher restarts first
};

// Templates and clones (vms/vm_clones.cc; docs/internals/manager.md "Templates and clones").
// A clone records its source; a linked clone's disks are overlays on its source's disk files
// on the source's host, so it stays there and its source (a template) cannot be deleted
// while it exists.
struct VmCloneOf {
  std::string source_id;    // empty: not a clone
  std::string source_name;  // as it was named when cloned
  bool linked = false;
  // The clone's disks are being made (the clone worker owns the VM until it ends: the
  // controller leaves it alone).
  bool pending = false;
  bool is_clone() const { return !source_id.empty(); }
};

struct VmDocument {
  model::VmSpec spec;
  VmPlacement placement;
  VmControl control;
  VmMigration migration;
  VmHa ha;
  // A template: read-only and never runs; it is cloned (strata vm template VM).
  bool is_template = false;
  VmCloneOf clone_of;
};

// Whether the VM may be HA: every writable disk must survive its host (shared storage);
// a local overlay dies with the host. Today's disks are all local, so a writable disk is
// refused with the reason (invalid_argument, field "ha").
Status validate_ha(const VmDocument& doc);

// The migration's progress as the controller recorded it (VmStatusDoc.migration). The
// phase is written before the step it names, so a restarted manager resumes from it:
//   preparing  target being prepared (may exist or not: abort it on failure)
//   copying    target prepared at migration_uri/nbd_*; the source copies (follow the job)
//   switching  the source completed (or, post-copy, is ready to switch over: `postcopy`):
//              the source switches over (post-copy), the target is resumed, then the
//              source removed. Written before either: from here on the only way is forward.
struct VmMigrationStatus {
  std::string phase;
  std::string migration_uri, nbd_host, nbd_port;
  int64_t stop_at_us = 0;
  int64_t qemu_downtime_ms = 0;
  int64_t total_ms = 0;
  uint64_t ram_transferred = 0;
  bool ram_copied_paused = false;
  bool postcopy = false;  // the copy waits for SwitchoverMigration (post-copy)
  // Post-copy recoveries started after the switch-over (the stream broke): bounded, and
  // counted in the record so a restarted manager goes on from the same attempt.
  int64_t recover_attempts = 0;
};

struct VmStatusDoc {
  std::string state = "pending";  // pending|scheduled|defined|starting|running|paused|
                                  // shutting_down|stopped|crashed|unknown|deleting|error
  std::string agent_state;        // last state the agent reported
  std::string last_error;
  int64_t observed_ms = 0;
  int64_t applied_generation = 0;
  VmMigrationStatus migration;  // phase empty: none in progress
  // What the VM's qemu-guest-agent last told its host agent (OS, host name, addresses);
  // copied from the agent's VM status at each reconcile, absent when it has none.
  std::optional<model::GuestFacts> guest;
  // The CPU model the VM's hardware profile holds on its host (what QEMU runs with, or
  // will at its next start), as the agent reported it; "" before the first report.
  std::string cpu_model;
};

std::string encode(const VmDocument& doc);
Result<VmDocument> decode_vm_document(const std::string& json_text);
std::string encode(const VmStatusDoc& st);
VmStatusDoc decode_vm_status(const std::string& json_text);

// "running" | "stopped" | "paused" as the API shows desired state.
std::string desired_state_name(const store::VmRecord& vm, const VmDocument& doc);

// Label the manager puts on every VM it defines on an agent (ownership / adoption).
inline constexpr const char* kVmIdLabel = "strata.vm-id";

}  // namespace strata::manager
