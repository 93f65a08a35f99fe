// The QEMU implementation of Hypervisor. Split over several files by concern:
//   qemu_hypervisor.cc  construction, define/undefine, status, state bookkeeping
//   vm_lifecycle.cc     start/stop/pause/..., QMP events, the supervision loop
//   vm_recover.cc       re-attaching to VMs after an agent restart
//   vm_queries.cc       stats, console, guest agent
//   vm_guest_facts.cc   the guest facts poller (OS, host name, addresses)
// Layers and rules: docs/internals/qemu-driver.md. In short: mu_ guards the in-memory
// state only (vms_, defining_, pending_events_, every Vm field); nothing that can block
// (QMP commands, socket connects, qemu-img, sleeps, waits on other processes) runs under
// it. One long job per VM (vm_job.h).
#pragma once

#include <condition_variable>
#include <initializer_list>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "argv.h"
#include "console.h"
#include "migration.h"
#include "qemu_monitor.h"
#include "snapshots.h"
#include "strata/agent/qemu_hypervisor.h"
#include "strata/common/periodic.h"
#include "vm_dir.h"
#include "vm_job.h"

namespace strata::agent::qemu {

struct Vm {
  std::string dir;
  model::VmSpec spec;
  StateRecord rec;
  std::shared_ptr<QemuMonitor> qmp;  // the typed monitor; null while not connected
  std::shared_ptr<ConsoleHub> console;
  std::string shutdown_reason;  // from the last SHUTDOWN event
  bool kill_requested = false;  // force_off in progress: the exit is not a crash
  // Re-attached by recover(): an earlier agent may have left an outgoing migration running
  // in this QEMU; the next migrate_out clears it first (clear_stale_migration_out).
  bool adopted = false;
  bool panicked = false;
  bool watchdog_fired = false;  // its watchdog powered it off: the coming exit is a crash
  VmJob job = VmJob::none;  // the long operation in progress (vm_job.h)
  bool interrupt_job = false;  // migrate_out: stop at the next poll (interrupt_out)
  // An outgoing post-copy migration past migrate_out (postcopy_ready): what switchover_out,
  // cancel_out and confirm_out need. Set and cleared with the migrate_out job.
  struct Outgoing {
    std::vector<size_t> mirrors;  // NBD mirror nodes still in place
    bool tls = false;
    bool paused_for_ram = false;
    int64_t downtime_limit_ms = 0;
    uint64_t memory = 0;
    std::chrono::steady_clock::time_point t0{};
    // migrate-start-postcopy was sent (or QEMU said postcopy-*): the point of no return.
    // From here on cancel_out refuses and switchover_out never undoes the copy.
    bool postcopy_started = false;
    std::optional<MigrationOutcome> switched;  // switchover_out's answer, once given
  };
  std::optional<Outgoing> outgoing;
  // Target of a post-copy migration whose stream broke: the URI migrate-recover listens on
  // (prepare_recover_incoming), answered again to a retry while QEMU waits on it.
  std::string recover_uri;
  // Target resumed in post-copy, its last page not arrived yet (until QEMU's MIGRATION
  // "completed"): the guest facts poller leaves it alone. A device that reads guest memory
  // under QEMU's main lock (virtio-serial, the guest agent's channel) waits for a missing
  // page, and while the stream is broken that wait lasts until the recovery: QEMU's main
  // loop stops with it, and every in-band QMP command (the recovery's migrate-recover goes
  // out-of-band and is not held up, but nothing is gained by stopping the main loop).
  bool postcopy_incoming = false;
  std::string migration_status;  // QEMU's last MIGRATION event
  // Recovered with QEMU alive but QMP not connected: the supervisor retries from
  // qmp_retry_at (backing off), never concluding anything about the VM from the failure.
  bool qmp_pending = false;
  int qmp_attempts = 0;
  Clock::TimePoint qmp_retry_at{};
  std::shared_ptr<std::mutex> qga_mu = std::make_shared<std::mutex>();
  // QEMU's timestamps of the last STOP / RESUME events (live migration's real downtime).
  int64_t last_stop_us = 0, last_resume_us = 0;
  // Block jobs that ended with an error (BLOCK_JOB_COMPLETED's error), by job id.
  std::map<std::string, std::string> job_errors;
  // Guest facts of this run of the VM (vm_guest_facts.cc): the last good answer, and when
  // the guest agent was last and first asked (clock time). Cleared when the VM stops
  // running. First asked long ago and still no answer: the guest has no agent (backups
  // skip their probe).
  std::optional<model::GuestFacts> guest;
  std::optional<Clock::TimePoint> guest_asked_at;
  std::optional<Clock::TimePoint> guest_first_asked_at;
};

// What an operation on a running VM needs, copied out from under mu_.
struct VmTarget {
  std::shared_ptr<QemuMonitor> qmp;
  int pid = 0;
  std::string uuid;
};

class QemuHypervisor final : public Hypervisor, public MigrationDriver {
 public:
  explicit QemuHypervisor(QemuOptions options);
  ~QemuHypervisor() override;

  Status recover() override;
  Result<VmStatus> define(const model::VmSpec& spec) override;
  Status start(const std::string& name) override;
  Status adopt_cpu_model(const std::string& name, const std::string& cpu_model) override;
  Status shutdown(const std::string& name, std::chrono::milliseconds timeout) override;
  Status force_off(const std::string& name) override;
  Status reboot(const std::string& name) override;
  Status change_cdrom(const std::string& name, const std::string& image) override;
  Result<uint64_t> resize_disk(const std::string& name, const std::string& disk,
                               uint64_t size_bytes) override;
  // Hot-plug (vm_hotplug.cc; docs/internals/qemu-driver.md, "Hot-plug"). A hotplug job.
  Result<model::DiskSpec> attach_disk(const std::string& name,
                                      const model::DiskSpec& disk) override;
  Status detach_disk(const std::string& name, const std::string& disk) override;
  Result<model::NicSpec> attach_nic(const std::string& name, const model::NicSpec& nic) override;
  Status detach_nic(const std::string& name, const std::string& mac) override;
  Result<std::string> read_uefi_vars(const std::string& name) override;
  Status write_uefi_vars(const std::string& name, const std::string& vars) override;
  Status export_disk(const std::string& name, const std::string& disk, size_t max_extent,
                     const std::function<Status(const DiskFileHeader&)>& on_header,
                     const ImageStore::DiskExtentSink& on_extent) override;
  Result<uint64_t> import_disk(const std::string& name, const std::string& disk,
                               const DiskFileHeader& header,
                               const ImageStore::DiskExtentSource& next) override;
  Status pause(const std::string& name) override;
  Status resume(const std::string& name) override;
  using Hypervisor::undefine;
  Status undefine(const std::string& name, bool delete_shared_disks) override;
  Result<VmStatus> status(const std::string& name) const override;
  std::vector<VmStatus> list() const override;
  Result<VmStats> stats(const std::string& name) const override;
  Result<std::string> console_tail(const std::string& name, size_t max_bytes) const override;
  Result<ConsoleSubscriptionPtr> console_subscribe(
      const std::string& name, std::function<void(std::string_view)> on_data) override;
  Status console_write(const std::string& name, std::string_view data) override;
  Result<std::string> guest_agent(const std::string& name, const std::string& command_json,
                                  std::chrono::milliseconds timeout) override;
  void watch(VmEventCallback cb) override;
  std::vector<std::string> renew_ha_leases(const std::vector<std::string>& vms,
                                           std::chrono::milliseconds lease) override;

  // Disk snapshots as external qcow2 overlays (vm_snapshot.cc, snapshots.h;
  // docs/internals/qemu-driver.md "Snapshots"). Each is a snapshot job.
  Result<SnapshotInfo> snapshot_create(const std::string& name, const std::string& snap) override;
  Result<std::vector<SnapshotInfo>> snapshot_list(const std::string& name) const override;
  Status snapshot_revert(const std::string& name, const std::string& snap) override;
  Status snapshot_delete(const std::string& name, const std::string& snap,
                         const SnapshotProgressCallback& progress = {}) override;

  // Clones of a stopped VM's disks (vm_clone.cc; docs/internals/qemu-driver.md "Templates
  // and clones"). A clone job on the source while the disks are made.
  Result<VmStatus> clone(const std::string& source, const model::VmSpec& spec, bool linked,
                         const CloneProgressCallback& progress = {}) override;

  // Backups (vm_backup.cc; docs/internals/backup.md). Each is a backup job.
  Result<BackupOutcome> backup(const std::string& name, const BackupRequest& req,
                               const BackupProgressCallback& progress = {}) override;
  Status restore_disks(const std::string& name, const std::string& repo,
                       const std::string& backup_id, const std::string& repo_key,
                       const BackupProgressCallback& progress = {}) override;

  // Live migration, the driver's half (strata/agent/migration.h; docs/internals/qemu-driver.md).
  MigrationDriver* migration() override { return this; }
  // The VM's recorded hardware profile (what a migration target must offer).
  Result<HardwareProfile> hardware_profile(const std::string& name) const;
  // Source: the spec and the recorded hardware profile (JSON).
  Result<MigrationSource> begin_migration(const std::string& name) const override;
  // Target: defines the VM from the source's spec and profile (disks: overlays of the same
  // base images, which must be in this host's store), starts QEMU with `-S -incoming
  // defer`, exports the disks writable over NBD on listen_host and listens for the stream.
  Result<IncomingInfo> prepare_incoming(const MigrationSource& vm,
                                        const std::string& listen_host) override;
  // After the source completed: waits for the incoming stream to complete, stops the NBD
  // server and resumes the guest here. Returns the RESUME event's timestamp (us).
  Result<int64_t> finish_incoming(const std::string& name,
                                  std::chrono::milliseconds timeout) override;
  Result<int64_t> finish_incoming(const std::string& name) {
    return finish_incoming(name, std::chrono::seconds(60));
  }
  // Kills the incoming QEMU and removes the VM here (its folder and disks).
  Status abort_incoming(const std::string& name) override;
  // Source: mirrors every disk's top overlay to the target's NBD exports (sync=top), waits
  // for every mirror to be READY, then streams RAM under `policy`. On success the source
  // QEMU is paused (postmigrate) and the job stays until confirm_out / cancel_out. On any
  // failure or past the deadline everything is cancelled and the VM keeps running here.
  Result<MigrationOutcome> migrate_out(const std::string& name, const IncomingInfo& target,
                                       const MigrationPolicy& policy,
                                       const MigrationProgressCallback& progress) override;
  Result<MigrationOutcome> migrate_out(const std::string& name, const IncomingInfo& target,
                                       const MigrationPolicy& policy) {
    return migrate_out(name, target, policy, {});
  }
  // Post-copy: starts it (migrate-start-postcopy) or takes a copy that completed first,
  // ends the mirrors; see MigrationDriver::switchover_out.
  Result<MigrationOutcome> switchover_out(const std::string& name) override;
  // The target resumed: quits the source QEMU and removes the VM here (after a post-copy
  // switch-over, once QEMU has sent the last page).
  Status confirm_out(const std::string& name) override;
  // The target failed after completion: resumes the guest here.
  Status cancel_out(const std::string& name) override;
  // Sets the VM's interrupt flag; migrate_out checks it at every poll (mirror and RAM).
  Status interrupt_out(const std::string& name) override;
  // Post-copy recovery (see MigrationDriver): migrate-recover on the target, migrate with
  // resume on the source, migrate-pause on the source.
  Result<std::string> prepare_recover_incoming(const std::string& name,
                                               const std::string& listen_host) override;
  Status resume_out(const std::string& name, const std::string& recover_uri) override;
  Status pause_out(const std::string& name) override;

  // One pass of the guest facts poller (vm_guest_facts.cc): asks the guest agent of every
  // running VM not asked within guest_facts_interval. Public for tests (on a manual clock).
  void poll_guest_facts();

  // Runs one raw QMP command (in-band) on the agent's connection (debugging and tests).
  Result<nlohmann::json> qmp(const std::string& name, const std::string& command,
                             const nlohmann::json& arguments = nullptr,
                             std::chrono::milliseconds timeout = std::chrono::seconds(30));

 private:
  std::string vm_dir(const std::string& name) const { return opts_.state_dir + "/vms/" + name; }
  Result<std::shared_ptr<Vm>> find_locked(const std::string& name) const;
  VmStatus status_locked(const Vm& vm) const;
  // Records a transition (state.json + a queued VmEvent). Needs mu_.
  void set_state_locked(const std::string& name, Vm& vm, model::VmState state,
                        const std::string& reason);
  // Delivers queued events to watchers; call without mu_.
  void flush_events();
  int64_t wall_ms() const;

  // Lifecycle helpers (vm_lifecycle.cc).
  Result<ResolvedVm> resolve(const std::string& name, const model::VmSpec& spec);
  // One disk's active file: its snapshot overlay (`tree`, when the VM has snapshots), its
  // datastore file, or its file in the image store. No lock held (qemu-img info).
  Result<ResolvedDisk> resolve_disk(const std::string& name, const model::VmSpec& spec,
                                    const model::DiskSpec& disk, const SnapshotTree* tree);
  // vm_media.cc: the store's file of `image`, which must be of kind iso (or of unknown
  // kind: imported on the host without one) and pass the ISO-9660/UDF check; errors name
  // `field`.
  Result<std::string> iso_path(const std::string& image, const std::string& field) const;
  // A UEFI VM's own variables file (<vm dir>/uefi-vars.fd), copied from
  // opts_.uefi_vars_template at define (and for an incoming migration, whose pflash
  // contents then arrive with the RAM); failed_precondition when the host lacks ovmf.
  Status create_uefi_vars(const std::string& dir) const;
  Status check_uefi_firmware() const;
  // The VM's disks (qemu_hypervisor.cc): each made in the image store, or on its datastore
  // made or, when the file exists (the VM ran elsewhere), adopted. `incoming`: a migration
  // target, whose datastore disks must exist (the source runs from them). Returns the
  // datastore disks this call made, for undo_disks. No lock held (qemu-img).
  using DiskMaker = std::function<Status(const model::VmSpec& spec, const model::DiskSpec& d)>;
  // A disk of the host's store: an overlay of its base image, or a blank qcow2.
  Status make_local_disk(const model::VmSpec& spec, const model::DiskSpec& d);
  // `local_maker`: makes each disk of the host's store instead (define_with's maker).
  Result<std::vector<std::string>> make_disks(const model::VmSpec& spec, bool incoming,
                                              const DiskMaker* local_maker = nullptr);
  // Undoes make_disks: the store's files of the VM and the datastore disks it made.
  void undo_disks(const model::VmSpec& spec, const std::vector<std::string>& made_shared);
  // Checks the spec's datastores against this host's (present, same UUID).
  Status check_datastores(const model::VmSpec& spec) const;
  // Whether this host can run a guest with CPU `model` (field names the input): "max",
  // "host" on KVM only, a named model the inventory's probe found usable.
  Status check_cpu_model(const std::string& field, const std::string& model) const;
  Result<std::shared_ptr<QemuMonitor>> connect_qmp(const std::string& name, const std::string& dir,
                                                 std::chrono::milliseconds timeout,
                                                 std::function<bool()> keep_trying);
  void on_qmp_event(const std::string& name, const MonitorEvent& e);
  Status start_qemu(const std::string& name, const std::shared_ptr<Vm>& vm,
                    const model::VmSpec& spec, const HardwareProfile& profile, bool incoming);
  // Gives a re-attached incoming VM (recover) its migrate_in job back. Needs mu_.
  void adopt_incoming_locked(const std::string& name, Vm& vm);
  // Cancels an outgoing migration (and removes its mirrors) that an earlier, killed agent
  // left running in QEMU (vm_migrate.cc).
  void clear_stale_migration_out(const std::string& name, QemuMonitor& qmp,
                                 const std::vector<size_t>& disks);
  // migrate_out's cleanup after a failure: cancels the mirrors, removes the NBD nodes,
  // resumes the guest if the migration left it paused. Without mu_.
  // `tls`: the attempt loaded this host's migration credentials (reset and removed here; a
  // plain attempt already set tls-creds to "").
  void unwind_out(const std::string& name, QemuMonitor& qmp, const std::vector<size_t>& disks,
                  bool tls);
  // After QEMU switched over (completed, or post-copy active; the source is paused): ends
  // the READY mirrors without pivoting (what is left is copied first), removes the NBD
  // nodes and returns the STOP event's time. An error when a mirror failed at the end: the
  // target must not run. Without mu_.
  Result<int64_t> end_mirrors_out(const std::string& name, QemuMonitor& qmp,
                                  const std::vector<size_t>& disks);
  // The monitor of `name`'s outgoing migration (the migrate-out job), for the post-copy
  // steps that act on it (resume_out, pause_out): failed_precondition when it is not
  // migrating out, unavailable while QMP is not connected. Takes mu_.
  Result<std::shared_ptr<QemuMonitor>> outgoing_monitor(const std::string& name);
  // Post-copy: whether QEMU's user may use userfaultfd on this host (root, or
  // vm.unprivileged_userfaultfd = 1); the reason when not.
  Status postcopy_possible() const;
  // Decides stopped/crashed from how QEMU ended and drops the connections. Needs mu_;
  // returns the connections so the caller destroys them without mu_.
  std::pair<std::shared_ptr<QemuMonitor>, std::shared_ptr<ConsoleHub>> finalize_locked(
      const std::string& name, Vm& vm, const std::optional<ExitRecord>& exit);
  // Supervision: reaps exited QEMUs, re-attaches pending QMPs, rotates console logs.
  void supervise_loop();
  void supervise_once();
  // One QMP connect attempt for a VM recovered without QMP (runs without mu_).
  void reattach_qmp(const std::string& name, const std::string& dir, int pid,
                    const std::string& uuid);
  bool wait_final(const std::string& name, std::chrono::milliseconds timeout);
  // The VM's QMP monitor etc. when its state is one of `allowed` (failed_precondition
  // else). A running job refuses the target unless `query` (read-only queries never wait).
  Result<VmTarget> target(const std::string& name, std::initializer_list<model::VmState> allowed,
                          bool query = false) const;
  // define()'s work with each disk made by `make_disk` (define: overlay or blank; clone:
  // from the source's files).
  Result<VmStatus> define_with(const model::VmSpec& input, const DiskMaker& make_disk);
  // The VMs whose disks are overlays of `name`'s files (their linked-to record). Needs mu_
  // (reads one small file per VM).
  std::vector<std::string> linked_clones_locked(const std::string& name) const;
  // Starts a job on `vm` (failed_precondition naming the running job if there is one).
  // Needs mu_.
  Status begin_job_locked(const std::string& name, Vm& vm, VmJob job);
  // Ends `job` on the VM if it is still the running one. Takes mu_.
  void end_job(const std::string& name, VmJob job);
  // A device change (media, resize, hotplug): takes `job` on a VM that is live (running or
  // paused, its QMP connected: `qmp` set) or offline (defined, stopped or crashed: `qmp`
  // null); failed_precondition while it starts, stops or migrates, unavailable while its
  // monitor re-attaches. The caller ends the job (JobEnd). Takes mu_.
  struct DeviceJob {
    std::shared_ptr<QemuMonitor> qmp;
    std::string dir;
    model::VmSpec spec;
    HardwareProfile profile;
  };
  Result<DeviceJob> begin_device_job(const std::string& name, VmJob job);
  // Records a device change: the VM's spec file, then its in-memory spec (the caller holds
  // the VM's job, so nothing else writes either meanwhile). Takes mu_.
  Status record_spec(const std::string& name, const std::string& dir, const model::VmSpec& spec);
  // Ends a job at scope exit (end_job): the one way a job started by begin_job_locked or
  // begin_*_job is ended on every return path.
  class JobEnd {
   public:
    JobEnd(QemuHypervisor* self, std::string name, VmJob job)
        : self_(self), name_(std::move(name)), job_(job) {}
    ~JobEnd() { self_->end_job(name_, job_); }
    JobEnd(const JobEnd&) = delete;
    JobEnd& operator=(const JobEnd&) = delete;

   private:
    QemuHypervisor* self_;
    std::string name_;
    VmJob job_;
  };
  // A cold migration's disk copy (vm_disk_copy.cc): checks the VM is off and the disk
  // local, takes the disk-copy job (the caller ends it). Takes mu_.
  Result<model::DiskSpec> begin_disk_copy(const std::string& name, const std::string& disk);
  std::vector<std::string> taps_of(const model::VmSpec& spec) const;
  // Snapshots (vm_snapshot.cc): what a snapshot job needs, copied out under mu_.
  struct SnapshotJob {
    std::string dir;
    model::VmSpec spec;
    model::VmState state;
    std::shared_ptr<QemuMonitor> qmp;  // set when the VM runs (running or paused)
  };
  // Starts a snapshot job on a running/paused or (need_offline: only) stopped VM.
  Result<SnapshotJob> begin_snapshot_job(const std::string& name, bool need_offline);
  // The VM's snapshot tree, or a fresh one naming the store's disks as the active files
  // (datastore disks are not in it: they have no snapshots, their file is on the datastore).
  Result<SnapshotTree> load_snapshot_tree(const std::string& name, const std::string& dir,
                                          const model::VmSpec& spec) const;
  // qemu-img info of one disk's active file (vm_backup.cc): its datastore's file, or the
  // tree's active file in the image store. No lock held (qemu-img).
  Result<ImageInfo> active_disk_info(const std::string& name, const model::VmSpec& spec,
                                     const model::DiskSpec& d, const SnapshotTree& tree) const;
  // The machine types opts_.qemu_binary offers (`-machine help`: alias -> concrete type),
  // probed once; runs a process, so under probe_mu_ only, never mu_.
  Result<std::map<std::string, std::string>> machine_types();

  QemuOptions opts_;
  // mu_: the driver's lock. Guards vms_, defining_, pending_events_ and every Vm field;
  // held only to read or change them (plus the VM's small state.json write, so the file
  // follows memory in order). Never held across QMP, sockets, qemu-img, sleeps or waits
  // for other processes. Order: watch_mu_ before mu_; sup_mu_ and mu_ are never nested.
  mutable std::mutex mu_;
  std::condition_variable state_cv_;  // with mu_: notified on every transition
  std::map<std::string, std::shared_ptr<Vm>> vms_;
  // Names being defined (name -> uuid): reserved while define() creates the disks without
  // mu_, so a second define of the name or UUID is refused and recover() skips the folder.
  std::map<std::string, std::string> defining_;
  std::vector<VmEvent> pending_events_;

  // watch_mu_: guards watchers_ and serializes delivery, so watchers see events in order.
  // Taken before mu_ (flush_events); callbacks run under it, never under mu_.
  std::mutex watch_mu_;
  std::vector<VmEventCallback> watchers_;

  // probe_mu_: guards machines_ (the probe runs under it; never nested with mu_).
  std::mutex probe_mu_;
  std::optional<std::map<std::string, std::string>> machines_;

  // sup_mu_: guards the supervisor's wake-up flags only.
  std::mutex sup_mu_;
  std::condition_variable sup_cv_;
  bool stopping_ = false;
  bool sup_kick_ = false;
  std::thread supervisor_;
  // Runs poll_guest_facts() (a tick of a few seconds of clock time; each VM is asked at most
  // once per guest_facts_interval). Null when the interval is zero; stopped first on
  // destruction.
  std::unique_ptr<PeriodicThread> guest_poller_;
};

bool is_active(model::VmState s);
// True when the VM's folder records at least one snapshot (vm_snapshot.cc).
bool has_snapshots(const std::string& vm_dir);

}  // namespace strata::agent::qemu
