// The agent's driver table: everything above this interface (gRPC service, CLI) is
// hypervisor-neutral. src/agent/hypervisor/qemu/ is the real implementation.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "strata/agent/image_store.h"
#include "strata/common/error.h"
#include "strata/model/guest_facts.h"
#include "strata/model/vm_spec.h"

namespace strata::agent {

class MigrationDriver;

// A QEMU process (or the simulator's stand-in) exists for the VM in these states; it may be
// about to exit.
constexpr bool has_process(model::VmState s) {
  return s == model::VmState::starting || s == model::VmState::running ||
         s == model::VmState::paused || s == model::VmState::shutting_down;
}

struct VmExit {
  bool signaled = false;
  int code = 0;            // exit code, or signal number when signaled
  std::string reason;      // "guest-shutdown", "host-qmp-quit", "killed", "qemu-exited", ...
  int64_t at_unix_ms = 0;
};

struct VmStatus {
  model::VmSpec spec;                 // completed spec (uuid, MACs filled)
  model::VmState state = model::VmState::defined;
  int pid = 0;                        // QEMU pid when running/paused
  std::string accelerator;            // "kvm" | "tcg"
  std::optional<VmExit> last_exit;
  int64_t state_changed_unix_ms = 0;
  std::string qmp_socket;             // for debugging and guest-agent access
  std::string vnc_socket;
  std::string qga_socket;             // qemu-guest-agent channel socket
  std::string console_log;            // path of the bounded serial log
  // What the guest's qemu-guest-agent last said (polled at most every 30 s while the VM
  // runs); absent until it first answered in this run of the VM.
  std::optional<model::GuestFacts> guest;
  // The CPU model in the VM's hardware profile ("" when the driver has none).
  std::string cpu_model;
};

struct VmStats {
  uint64_t cpu_time_ns = 0;
  uint64_t rss_bytes = 0;
  uint64_t disk_read_bytes = 0, disk_write_bytes = 0;
  uint64_t net_rx_bytes = 0, net_tx_bytes = 0;
};

// One state transition, delivered to watchers (the gRPC event stream, the log).
struct VmEvent {
  std::string vm;
  model::VmState state;
  std::string detail;  // QMP event name or reason
  int64_t at_unix_ms = 0;
};
using VmEventCallback = std::function<void(const VmEvent&)>;

// Serial console subscription: `on_data` is called with output bytes as they arrive.
class ConsoleSubscription {
 public:
  virtual ~ConsoleSubscription() = default;
};
using ConsoleSubscriptionPtr = std::unique_ptr<ConsoleSubscription>;
// A disk snapshot of a VM (external qcow2 overlays; docs/internals/qemu-driver.md).
struct SnapshotInfo {
  std::string name;
  std::string parent;  // "" for a root snapshot: snapshots form a tree
  int64_t created_unix_ms = 0;
  // "filesystem": the guest's filesystems were frozen by qemu-guest-agent while it was
  // taken; "crash": crash-consistent (no guest agent answered, or the VM was not running).
  std::string consistency;
  std::string vm_state;  // the VM's state when it was taken
  bool current = false;  // the VM's disks are an overlay of this snapshot
};
// Progress of a long snapshot operation (delete merges data): bytes done of total.
using SnapshotProgressCallback = std::function<void(uint64_t done, uint64_t total)>;

// A backup into a repository (docs/internals/backup.md). `repo` comes from the manager's
// configuration (never from a user); `id` is the new backup's id (validated).
struct BackupRequest {
  std::string repo;
  std::string id;
  bool full = false;  // a full even when an incremental is possible
  // The repository's key (32 raw bytes) when it is encrypted, "" when plain: from the
  // manager over gRPC only, never logged (docs/internals/backup.md "Encryption").
  std::string repo_key;
};
struct BackupOutcome {
  std::string id;
  std::string kind;         // "full" | "incremental"
  std::string parent;       // incremental: the backup it extends
  std::string full_reason;  // full: why ("requested", "no earlier backup", "bitmap ...")
  bool frozen = false;      // guest filesystems frozen at the backup point
  uint64_t bytes_read = 0;  // read from the VM's disks
  uint64_t bytes_new = 0;   // newly stored in the repository
  uint64_t disk_bytes = 0;  // the disks' virtual sizes
};
using BackupProgressCallback = std::function<void(uint64_t done, uint64_t total)>;

class Hypervisor {
 public:
  virtual ~Hypervisor() = default;

  // Re-attaches to every VM found in the state folder (after an agent restart).
  virtual Status recover() = 0;

  // Stores the spec and prepares disks; does not start. already_exists on a duplicate
  // name or UUID.
  virtual Result<VmStatus> define(const model::VmSpec& spec) = 0;
  virtual Status start(const std::string& name) = 0;
  // A VM that is not running takes this guest CPU model (model::VmSpec::cpu_model) for its
  // next start: how a VM adopts its cluster's CPU baseline. A running VM keeps its CPU
  // (no error: it adopts at a later start); invalid_argument / failed_precondition when
  // this host cannot offer the model. A driver without CPU models accepts and ignores it.
  virtual Status adopt_cpu_model(const std::string& name, const std::string& cpu_model) {
    (void)name;
    (void)cpu_model;
    return {};
  }
  // ACPI powerdown; forced off when the guest has not stopped after `timeout`.
  virtual Status shutdown(const std::string& name, std::chrono::milliseconds timeout) = 0;
  virtual Status force_off(const std::string& name) = 0;
  virtual Status reboot(const std::string& name) = 0;
  virtual Status pause(const std::string& name) = 0;
  virtual Status resume(const std::string& name) = 0;
  // Removes the VM and every file it made on this host. failed_precondition while QEMU
  // runs. Its disks on datastores (shared storage) stay unless `delete_shared_disks`: the
  // VM may run elsewhere from them (HA restart, migration, a stale copy being removed);
  // only the deletion of the VM itself deletes them.
  virtual Status undefine(const std::string& name, bool delete_shared_disks) = 0;
  Status undefine(const std::string& name) { return undefine(name, false); }

  virtual Result<VmStatus> status(const std::string& name) const = 0;
  virtual std::vector<VmStatus> list() const = 0;
  virtual Result<VmStats> stats(const std::string& name) const = 0;

  // Console: the tail of the bounded on-disk log, live output, and input.
  virtual Result<std::string> console_tail(const std::string& name, size_t max_bytes) const = 0;
  virtual Result<ConsoleSubscriptionPtr> console_subscribe(
      const std::string& name, std::function<void(std::string_view)> on_data) = 0;
  virtual Status console_write(const std::string& name, std::string_view data) = 0;

  // Runs one qemu-guest-agent command (JSON text) and returns the JSON reply text.
  virtual Result<std::string> guest_agent(const std::string& name, const std::string& command_json,
                                          std::chrono::milliseconds timeout) = 0;

  virtual void watch(VmEventCallback cb) = 0;

  // Disk snapshots (hypervisors without them answer failed_precondition). create and
  // delete work on a running or stopped VM; revert needs it stopped (defined, stopped or
  // crashed). delete merges the snapshot's data into the snapshots and the state that
  // depend on it, so no data any other snapshot or the VM reads is lost.
  virtual Result<SnapshotInfo> snapshot_create(const std::string& vm, const std::string& snap);
  virtual Result<std::vector<SnapshotInfo>> snapshot_list(const std::string& vm) const;
  virtual Status snapshot_revert(const std::string& vm, const std::string& snap);
  virtual Status snapshot_delete(const std::string& vm, const std::string& snap,
                                 const SnapshotProgressCallback& progress = {});

  // Clones (docs/internals/qemu-driver.md, "Templates and clones"): defines `spec`, a new
  // VM, with the disks of the stopped VM `source` (disks matched by name; the spec's disk
  // base_image/size are replaced by what the clone really is: no base image, the source
  // disk's size). linked: each disk is a qcow2 overlay on the source disk's current file
  // (instant; the source must stay read-only from now on: a template); full: a flattened
  // copy, `progress(done, total)` in bytes while it copies. The source is held by a job
  // meanwhile (it cannot start). already_exists as define; failed_precondition when the
  // source runs or has a job.
  using CloneProgressCallback = std::function<void(uint64_t done, uint64_t total)>;
  virtual Result<VmStatus> clone(const std::string& source, const model::VmSpec& spec,
                                 bool linked, const CloneProgressCallback& progress = {});

  // Backups (docs/internals/backup.md). backup: a running or paused VM's disks, read in
  // pull mode while it keeps running; incremental from the VM's newest backup in the
  // repository when QEMU's persistent dirty bitmap for it is intact, full otherwise (the
  // outcome says why). restore_disks: the disks of a stopped VM replaced by a backup's
  // (matched by name; a disk the backup lacks is left as it is).
  virtual Result<BackupOutcome> backup(const std::string& vm, const BackupRequest& req,
                                       const BackupProgressCallback& progress = {});
  // `repo_key` as BackupRequest::repo_key.
  virtual Status restore_disks(const std::string& vm, const std::string& repo,
                               const std::string& backup_id, const std::string& repo_key,
                               const BackupProgressCallback& progress = {});

  // The CD-ROM's medium (docs/internals/firmware.md): `image` (an image of kind "iso" in
  // this host's store) goes in, read-only; empty ejects. A running or paused VM sees the
  // change at once (tray opened, medium swapped, tray closed, even if the guest locked
  // it); the VM's spec records it either way, so a restart or a migration keeps it.
  // invalid_argument "cdrom" for an image that is no iso; failed_precondition for a VM
  // without a CD-ROM slot, or with a job in progress.
  virtual Status change_cdrom(const std::string& vm, const std::string& image);
  // A UEFI VM's variables file (its NVRAM), whole: read, and replaced on a VM that does not
  // run (a cold migration's target, right after its define). failed_precondition for a
  // BIOS VM or a running one; invalid_argument("vars") for a size other than the host's
  // template's (another OVMF build).
  virtual Result<std::string> read_uefi_vars(const std::string& vm);
  virtual Status write_uefi_vars(const std::string& vm, const std::string& vars);
  // Grows disk `disk` of `vm` to `size_bytes` (docs/internals/qemu-driver.md, "Disk
  // resize"): live through QEMU when the VM runs or is paused (the guest sees the new
  // capacity), with qemu-img when it does not. Grow only, as Proxmox and vSphere: a size
  // below the current one is invalid_argument("size_bytes") (shrinking loses data the
  // guest's file system may still use); the same size is a no-op. A read-only disk, or a
  // VM busy with another job, is failed_precondition. Returns the new size; the VM's spec
  // records it.
  virtual Result<uint64_t> resize_disk(const std::string& vm, const std::string& disk,
                                       uint64_t size_bytes);
  // Hot-plug (docs/internals/qemu-driver.md, "Hot-plug"): a disk or NIC joins or leaves the
  // VM, at once when it runs (PCIe hot-plug on one of its spare root ports), at its next
  // start when it does not; the VM's spec records it either way. attach_* answer the device
  // as recorded (its hotplug_slot, the free slot it got); attaching what the VM already has
  // (a disk of that name, a NIC of that MAC, as recorded) answers it again, so a retried
  // attach is safe. Detaching a device the VM does not have succeeds (a retried detach).
  // A running VM loses only a device on a hot-plug slot (one placed at boot leaves when
  // the VM is off); the guest must release it within a bound (deadline_exceeded, the spec
  // unchanged: retry). failed_precondition: no free slot, a VM with snapshots, a boot disk,
  // another job. A detached disk's data is deleted.
  virtual Result<model::DiskSpec> attach_disk(const std::string& vm, const model::DiskSpec& disk);
  virtual Status detach_disk(const std::string& vm, const std::string& disk);
  virtual Result<model::NicSpec> attach_nic(const std::string& vm, const model::NicSpec& nic);
  virtual Status detach_nic(const std::string& vm, const std::string& mac);

  // Cold migration of a stopped VM's local disk (docs/internals/migration.md, "Cold
  // migration"). export_disk: `on_header` gets what the file is, then `on_extent` each of
  // its data extents (ImageStore::read_disk_file). import_disk, on the target after its
  // define: the file those extents make replaces the disk (ImageStore::receive_disk_file),
  // pointed at this host's copy of the disk's base image; returns the data bytes written.
  // The VM must not run and is held by a job meanwhile. failed_precondition for a running
  // VM, a datastore disk (shared: nothing to copy) or a VM with snapshots (its files form
  // a tree); invalid_argument when the header's base image is not the VM's.
  struct DiskFileHeader {
    std::string format;
    uint64_t file_size = 0;
    std::string base_image;
  };
  virtual Status export_disk(const std::string& vm, const std::string& disk, size_t max_extent,
                             const std::function<Status(const DiskFileHeader&)>& on_header,
                             const ImageStore::DiskExtentSink& on_extent);
  virtual Result<uint64_t> import_disk(const std::string& vm, const std::string& disk,
                                       const DiskFileHeader& header,
                                       const ImageStore::DiskExtentSource& next);

  // Live migration (strata/agent/migration.h); null when this driver cannot migrate.
  virtual MigrationDriver* migration() { return nullptr; }

  // HA leases (docs/internals/ha.md, "Leases"), granted by a manager heartbeat: each VM of
  // `vms` defined here now holds a lease that runs out `lease` from now, enforced by its
  // shim even if this agent dies; every other VM here loses its lease. Returns the VMs of
  // `vms` whose lease is in force (defined here, and any running QEMU under a shim that
  // enforces it): the manager relies on those only. A driver without leases returns none.
  virtual std::vector<std::string> renew_ha_leases(const std::vector<std::string>& vms,
                                                   std::chrono::milliseconds lease) {
    (void)vms;
    (void)lease;
    return {};
  }
};

inline Status Hypervisor::change_cdrom(const std::string&, const std::string&) {
  return make_error(ErrorCode::failed_precondition, "this hypervisor has no CD-ROM");
}

inline Result<std::string> Hypervisor::read_uefi_vars(const std::string&) {
  return make_error(ErrorCode::failed_precondition, "this hypervisor has no UEFI variables");
}

inline Status Hypervisor::write_uefi_vars(const std::string&, const std::string&) {
  return make_error(ErrorCode::failed_precondition, "this hypervisor has no UEFI variables");
}

inline Result<uint64_t> Hypervisor::resize_disk(const std::string&, const std::string&,
                                                uint64_t) {
  return make_error(ErrorCode::failed_precondition, "this hypervisor cannot resize disks");
}

inline Result<model::DiskSpec> Hypervisor::attach_disk(const std::string&, const model::DiskSpec&) {
  return make_error(ErrorCode::failed_precondition, "this hypervisor cannot hot-plug");
}

inline Status Hypervisor::detach_disk(const std::string&, const std::string&) {
  return make_error(ErrorCode::failed_precondition, "this hypervisor cannot hot-plug");
}

inline Result<model::NicSpec> Hypervisor::attach_nic(const std::string&, const model::NicSpec&) {
  return make_error(ErrorCode::failed_precondition, "this hypervisor cannot hot-plug");
}

inline Status Hypervisor::detach_nic(const std::string&, const std::string&) {
  return make_error(ErrorCode::failed_precondition, "this hypervisor cannot hot-plug");
}

inline Status Hypervisor::export_disk(const std::string&, const std::string&, size_t,
                                      const std::function<Status(const DiskFileHeader&)>&,
                                      const ImageStore::DiskExtentSink&) {
  return make_error(ErrorCode::failed_precondition, "this hypervisor cannot copy disks");
}
inline Result<uint64_t> Hypervisor::import_disk(const std::string&, const std::string&,
                                                const DiskFileHeader&,
                                                const ImageStore::DiskExtentSource&) {
  return make_error(ErrorCode::failed_precondition, "this hypervisor cannot copy disks");
}

inline Result<SnapshotInfo> Hypervisor::snapshot_create(const std::string&, const std::string&) {
  return make_error(ErrorCode::failed_precondition, "this hypervisor has no snapshots");
}
inline Result<std::vector<SnapshotInfo>> Hypervisor::snapshot_list(const std::string&) const {
  return make_error(ErrorCode::failed_precondition, "this hypervisor has no snapshots");
}
inline Status Hypervisor::snapshot_revert(const std::string&, const std::string&) {
  return make_error(ErrorCode::failed_precondition, "this hypervisor has no snapshots");
}
inline Status Hypervisor::snapshot_delete(const std::string&, const std::string&,
                                          const SnapshotProgressCallback&) {
  return make_error(ErrorCode::failed_precondition, "this hypervisor has no snapshots");
}
inline Result<VmStatus> Hypervisor::clone(const std::string&, const model::VmSpec&, bool,
                                          const CloneProgressCallback&) {
  return make_error(ErrorCode::failed_precondition, "this hypervisor cannot clone VMs");
}
inline Result<BackupOutcome> Hypervisor::backup(const std::string&, const BackupRequest&,
                                                const BackupProgressCallback&) {
  return make_error(ErrorCode::failed_precondition, "this hypervisor cannot back up VMs");
}
inline Status Hypervisor::restore_disks(const std::string&, const std::string&, const std::string&,
                                        const std::string&, const BackupProgressCallback&) {
  return make_error(ErrorCode::failed_precondition, "this hypervisor cannot restore backups");
}
using HypervisorPtr = std::unique_ptr<Hypervisor>;

}  // namespace strata::agent
