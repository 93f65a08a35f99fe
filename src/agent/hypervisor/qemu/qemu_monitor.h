// Typed QMP monitor, the layer between the driver and the raw QMP client (as libvirt's
// qemu_monitor.c sits on its JSON transport): one function per QMP command the driver
// sends, each returning a typed result whose reply was validated (a missing or wrong-typed
// field is an Error, never an exception), and typed events. Layers, bottom up:
//   unix_socket (fd) -> qmp_codec (framing, pure) -> qmp_client (ids, timeouts, reader
//   thread) -> qemu_monitor (typed commands and events) -> QemuHypervisor (jobs, state).
// Thread-safe: commands may run from several threads at once (qmp_client matches replies by
// id). Event callbacks run on the client's reader thread and must not call commands
// synchronously (the reply would be read by that same thread).
// Out-of-band: connect() enables QMP's "oob" capability when the greeting offers it (QEMU
// does on a socket chardev monitor, which the driver uses); the commands QEMU 7.2 allows
// out-of-band and the driver needs while QEMU's main loop may be stuck (migrate_recover,
// migrate_pause) then go with exec-oob, so they are answered even behind a hung in-band
// command. Without "oob" they fall back to in-band.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "qmp_client.h"
#include "qmp_codec.h"
#include "strata/common/error.h"

namespace strata::agent::qemu {

inline constexpr std::chrono::milliseconds kMonitorTimeout{30000};

// The greeting QEMU sends on connect ({"QMP": {"version": ..., "capabilities": [...]}}).
struct QmpGreeting {
  int64_t major = 0, minor = 0, micro = 0;
  std::string package;
  std::vector<std::string> capabilities;
};

// query-status. `status` is QEMU's RunState ("running", "paused", "inmigrate", "shutdown",
// "guest-panicked", ...), kept as a string: QEMU adds states and we must not reject them.
struct StatusInfo {
  std::string status;
  bool running = false;
};

// query-blockstats, one entry per block backend; only what the driver reads.
struct BlockStatsInfo {
  std::string device;     // "" for -blockdev backends without a legacy drive
  std::string node_name;  // may be absent in QEMU's reply: then ""
  uint64_t rd_bytes = 0;
  uint64_t wr_bytes = 0;
};

// query-cpus-fast, one entry per vCPU.
struct CpuInfoFast {
  int64_t cpu_index = 0;
  int64_t thread_id = 0;  // the host thread running this vCPU
  std::string qom_path;
  std::string target;  // "x86_64", ...
};

// query-memory-size-summary.
struct MemorySizeSummary {
  uint64_t base_memory = 0;
  std::optional<uint64_t> plugged_memory;  // only with memory hot-plug
};

// query-balloon (only when the VM has a balloon device; QEMU answers DeviceNotActive else).
struct BalloonInfo {
  uint64_t actual = 0;  // bytes the guest currently has
};

// query-machines, one entry per machine type QEMU knows.
struct MachineInfo {
  std::string name;   // "pc-q35-7.2"
  std::string alias;  // "q35" for the newest q35, else ""
  bool is_default = false;
  int64_t cpu_max = 0;
  bool deprecated = false;
};

// query-migrate (source and target). `status` is QEMU's MigrationStatus ("none", "setup",
// "active", "device", "pre-switchover", "completed", "failed", "cancelling", "cancelled",
// "postcopy-*", "wait-unplug"), kept as a string. RAM figures are absent before the RAM
// stage starts: then 0.
struct MigrationInfo {
  std::string status;
  uint64_t ram_total = 0;
  uint64_t ram_transferred = 0;
  uint64_t ram_remaining = 0;
  uint64_t dirty_pages_rate = 0;  // pages per second
  uint64_t page_size = 0;
  uint64_t dirty_sync_count = 0;  // RAM passes so far
  double mbps = 0;
  std::optional<int64_t> expected_downtime_ms;  // while active
  std::optional<int64_t> downtime_ms;           // once completed (QEMU's, source view)
  std::optional<int64_t> total_time_ms;
  std::optional<int64_t> cpu_throttle_percentage;  // auto-converge throttling the vCPUs
  std::string error_desc;  // when failed
  // Target with -incoming on port 0: the addresses QEMU listens on ("host", "port").
  std::vector<std::pair<std::string, std::string>> socket_addresses;
  uint64_t dirty_bytes_rate() const { return dirty_pages_rate * page_size; }
};

// migrate-set-parameters; only the set fields are sent.
struct MigrationParameters {
  std::optional<int64_t> downtime_limit_ms;
  std::optional<uint64_t> max_bandwidth;  // bytes per second
  // After the post-copy switch-over (bytes per second; 0: unlimited, QEMU's default).
  std::optional<uint64_t> max_postcopy_bandwidth;
  std::optional<std::string> tls_creds;   // "" turns TLS off
  std::optional<std::string> tls_hostname;
};
nlohmann::json to_json(const MigrationParameters& p);

// query-block-jobs, one entry per job.
struct BlockJobInfo {
  std::string type;    // "mirror", ...
  std::string device;  // the job id
  uint64_t len = 0;
  uint64_t offset = 0;
  bool ready = false;
  std::string status;  // JobStatus: "running", "ready", "concluded", ...
  std::string error;   // present after a failure
};

// A dirty bitmap on a node (query-named-block-nodes' "dirty-bitmaps"; backups,
// docs/internals/backup.md).
struct DirtyBitmapInfo {
  std::string name;
  uint64_t count = 0;        // dirty bytes
  uint64_t granularity = 0;  // bytes per bit
  bool recording = false;    // enabled: guest writes are being recorded
  bool busy = false;         // in use by an operation (an NBD export, a job)
  bool persistent = false;   // stored in the qcow2 when QEMU closes the image
  bool inconsistent = false;  // QEMU did not close the image cleanly: not trustworthy
};

// query-named-block-nodes (flat), one entry per node; only what the snapshot and backup
// code reads.
struct BlockNodeInfo {
  std::string node_name;  // ours ("disk0", "snap3-0") or QEMU's ("#block123")
  std::string drv;        // "qcow2", "raw", "file", ...
  std::string file;       // the image's filename
  std::string backing_file;  // "" when none
  std::vector<DirtyBitmapInfo> dirty_bitmaps;
};

// One action of a QMP transaction (QemuMonitor::transaction): all succeed or none does.
struct TransactionAction {
  enum class Kind { blockdev_backup, bitmap_add, bitmap_disable };
  Kind kind = Kind::blockdev_backup;
  std::string node;    // blockdev-backup: the source ("device"); bitmaps: the node
  std::string name;    // blockdev-backup: the job id; bitmaps: the bitmap
  std::string target;  // blockdev-backup: the target node
  std::string sync;    // blockdev-backup: "none" (fleecing), "full", "top"
  bool persistent = false;  // bitmap_add
};
nlohmann::json to_json(const TransactionAction& a);

// Events the driver acts on; anything else arrives as `other` with its name.
enum class MonitorEventKind {
  shutdown,             // data: guest, reason
  powerdown,            // ACPI power button pressed (system_powerdown)
  stop,                 // vCPUs stopped
  resume,               // vCPUs running
  reset,                // data: guest, reason
  guest_panicked,       // data: action
  watchdog,             // the guest watchdog expired; data: action (what QEMU did)
  migration,            // data: status
  block_job_ready,      // data: type, device (the job id), len, offset
  block_job_completed,  // data: type, device, len, offset, error (on failure)
  block_job_cancelled,  // data: type, device, len, offset
  block_job_error,      // data: device, operation, action
  other,
};

struct MonitorEvent {
  MonitorEventKind kind = MonitorEventKind::other;
  std::string name;          // QMP's event name ("SHUTDOWN")
  int64_t timestamp_us = 0;  // QEMU's clock
  bool guest = false;        // SHUTDOWN/RESET: caused by the guest
  std::string reason;        // SHUTDOWN/RESET: "guest-shutdown", "host-qmp-quit", ...
  std::string action;        // GUEST_PANICKED: "pause", "poweroff", "run"; WATCHDOG: "reset",
                             // "poweroff", ...; BLOCK_JOB_ERROR
  std::string status;        // MIGRATION: the new MigrationStatus
  std::string job;           // BLOCK_JOB_*: the job id ("device" in QMP)
  std::string job_type;      // BLOCK_JOB_* (not ERROR): "mirror", ...
  uint64_t len = 0, offset = 0;  // BLOCK_JOB_* (not ERROR)
  std::string error;         // BLOCK_JOB_COMPLETED after a failure; BLOCK_JOB_ERROR operation
};

// Validates an event's data for its kind. A known event with a missing or wrong-typed field
// is an error (the caller logs it and drops the event).
Result<MonitorEvent> parse_monitor_event(const QmpMessage& m);

// Reply validation (pure; exposed for tests).
Result<QmpGreeting> parse_greeting(const nlohmann::json& qmp);
Result<StatusInfo> parse_status(const nlohmann::json& ret);
Result<std::vector<BlockStatsInfo>> parse_blockstats(const nlohmann::json& ret);
Result<std::vector<CpuInfoFast>> parse_cpus_fast(const nlohmann::json& ret);
Result<MemorySizeSummary> parse_memory_size_summary(const nlohmann::json& ret);
Result<BalloonInfo> parse_balloon(const nlohmann::json& ret);
Result<std::vector<MachineInfo>> parse_machines(const nlohmann::json& ret);
Result<MigrationInfo> parse_migrate_info(const nlohmann::json& ret);
Result<std::vector<BlockJobInfo>> parse_block_jobs(const nlohmann::json& ret);
Result<std::vector<BlockNodeInfo>> parse_named_block_nodes(const nlohmann::json& ret);

// One entry of query-block (QemuMonitor::query_block).
struct BlockDeviceInfo {
  std::string qdev;  // the device's id ("cdrom0") or its QOM path
  bool removable = false;
  bool tray_open = false;
  std::string file;  // inserted medium's file; empty: no medium
  // The inserted medium's top node ("disk0", or a snapshot overlay's node) and its image's
  // virtual size in bytes (0 when QEMU does not say).
  std::string node_name;
  uint64_t virtual_size = 0;
};
// Parses query-block's return; internal naming the field when the shape is not QEMU's.
Result<std::vector<BlockDeviceInfo>> parse_query_block(const nlohmann::json& r);
// qom-list's reply: the names of its properties of type "child<...>" (the devices).
Result<std::vector<std::string>> parse_qom_children(const nlohmann::json& r);

class QemuMonitor {
 public:
  using EventCallback = std::function<void(const MonitorEvent&)>;
  using EofCallback = std::function<void()>;

  // Connects (retrying until `timeout`, or until `keep_trying` says QEMU is gone), checks
  // the greeting and negotiates capabilities (qmp_capabilities).
  static Result<std::unique_ptr<QemuMonitor>> connect(const std::string& socket_path,
                                                      std::chrono::milliseconds timeout,
                                                      EventCallback on_event, EofCallback on_eof,
                                                      std::function<bool()> keep_trying = {});
  QemuMonitor(const QemuMonitor&) = delete;
  QemuMonitor& operator=(const QemuMonitor&) = delete;

  const QmpGreeting& greeting() const { return greeting_; }
  bool closed() const { return client_->closed(); }
  // QMP out-of-band was negotiated on this connection (see the file comment).
  bool oob() const { return client_->oob_enabled(); }
  // In-band commands QEMU has not answered yet (qmp_client.h, kMaxInBandUnanswered).
  int in_band_unanswered() const { return client_->in_band_unanswered(); }

  // One function per QMP command. Errors: unavailable once the connection is closed,
  // deadline_exceeded after `timeout`, QEMU's error mapped by qmp_error_to_error, internal
  // for a reply that does not have the documented shape.
  Status qmp_capabilities(std::chrono::milliseconds timeout = kMonitorTimeout);
  Result<StatusInfo> query_status(std::chrono::milliseconds timeout = kMonitorTimeout);
  Status cont(std::chrono::milliseconds timeout = kMonitorTimeout);
  Status stop(std::chrono::milliseconds timeout = kMonitorTimeout);
  Status system_powerdown(std::chrono::milliseconds timeout = kMonitorTimeout);
  Status system_reset(std::chrono::milliseconds timeout = kMonitorTimeout);
  Status quit(std::chrono::milliseconds timeout = kMonitorTimeout);
  Result<std::vector<BlockStatsInfo>> query_blockstats(
      std::chrono::milliseconds timeout = kMonitorTimeout);
  Result<std::vector<CpuInfoFast>> query_cpus_fast(
      std::chrono::milliseconds timeout = kMonitorTimeout);
  Result<MemorySizeSummary> query_memory_size_summary(
      std::chrono::milliseconds timeout = kMonitorTimeout);
  Result<BalloonInfo> query_balloon(std::chrono::milliseconds timeout = kMonitorTimeout);
  Result<std::vector<MachineInfo>> query_machines(
      std::chrono::milliseconds timeout = kMonitorTimeout);

  // Live migration (see docs/internals/qemu-driver.md, "Live migration").
  // migrate-set-capabilities: each (capability, state), e.g. {"events", true}.
  Status migrate_set_capabilities(const std::vector<std::pair<std::string, bool>>& caps,
                                  std::chrono::milliseconds timeout = kMonitorTimeout);
  Status migrate_set_parameters(const MigrationParameters& params,
                                std::chrono::milliseconds timeout = kMonitorTimeout);
  // Source: starts streaming to `uri` ("tcp:HOST:PORT"); progress through query-migrate and
  // MIGRATION events.
  Status migrate(const std::string& uri, std::chrono::milliseconds timeout = kMonitorTimeout);
  // Target started with `-incoming defer`: listens on `uri` ("tcp:HOST:0" picks a port,
  // read back from query_migrate().socket_addresses).
  Status migrate_incoming(const std::string& uri,
                          std::chrono::milliseconds timeout = kMonitorTimeout);
  Result<MigrationInfo> query_migrate(std::chrono::milliseconds timeout = kMonitorTimeout);
  Status migrate_cancel(std::chrono::milliseconds timeout = kMonitorTimeout);
  // Source, migrating with the postcopy-ram capability: switch over now; the target then
  // runs and fetches the pages it lacks from this QEMU.
  Status migrate_start_postcopy(std::chrono::milliseconds timeout = kMonitorTimeout);
  // Post-copy recovery (QEMU >= 3.0). Target, its incoming migration postcopy-paused: listen
  // on `uri` for the source to resume the stream (TLS as the migration's tls-creds).
  // Out-of-band when negotiated: a target whose vCPU waits for a missing page under QEMU's
  // main lock answers no in-band command, but this one (QEMU then accepts the source's
  // connection on the monitor's thread, without that lock). QEMU refuses it unless the
  // incoming migration is postcopy-paused, and a second one while the first listens
  // ("... triggered already").
  Status migrate_recover(const std::string& uri,
                         std::chrono::milliseconds timeout = kMonitorTimeout);
  // Source, its migration postcopy-paused: reconnect to the target's migrate-recover URI
  // (`migrate` with resume: true); QEMU goes postcopy-recover, then postcopy-active.
  // Always in-band: QEMU 7.2 does not allow `migrate` out-of-band (the source's main loop
  // is not the stuck one: its memory is all there).
  Status migrate_resume(const std::string& uri,
                        std::chrono::milliseconds timeout = kMonitorTimeout);
  // Either end, in post-copy: break the stream now (both ends go postcopy-paused and wait
  // for a recovery). QEMU refuses it outside post-copy. Out-of-band when negotiated.
  Status migrate_pause(std::chrono::milliseconds timeout = kMonitorTimeout);
  // NBD server (target side, for the disk mirror) on an inet address; with `tls_creds`
  // (a tls-creds-x509 object id, endpoint=server) clients must speak TLS.
  Status nbd_server_start(const std::string& host, const std::string& port,
                          const std::string& tls_creds = "",
                          std::chrono::milliseconds timeout = kMonitorTimeout);
  // object-add of a tls-creds-x509 (QEMU reads ca-cert.pem, {server,client}-{cert,key}.pem
  // from `dir` right away); endpoint "server" or "client"; verify_peer checks the peer's
  // certificate against ca-cert.pem (a server then requires a client certificate).
  Status object_add_tls_creds(const std::string& id, const std::string& dir,
                              const std::string& endpoint, bool verify_peer,
                              std::chrono::milliseconds timeout = kMonitorTimeout);
  Status object_del(const std::string& id, std::chrono::milliseconds timeout = kMonitorTimeout);
  Status nbd_server_stop(std::chrono::milliseconds timeout = kMonitorTimeout);
  // block-export-add of type nbd: exports `node_name` under the export name `name`.
  Status block_export_add_nbd(const std::string& id, const std::string& node_name,
                              const std::string& name, bool writable,
                              std::chrono::milliseconds timeout = kMonitorTimeout);
  // blockdev-add of an NBD client node (source side: the mirror's target); with
  // `tls_creds` (endpoint=client) over TLS, the server's certificate checked against `host`.
  Status blockdev_add_nbd(const std::string& node_name, const std::string& host,
                          const std::string& port, const std::string& export_name,
                          const std::string& tls_creds = "",
                          std::chrono::milliseconds timeout = kMonitorTimeout);
  Status blockdev_del(const std::string& node_name,
                      std::chrono::milliseconds timeout = kMonitorTimeout);
  // blockdev-mirror `device` (a node name) to `target` (a node name); `sync` is "top",
  // "full" or "none". The job is named `job_id` in events.
  Status blockdev_mirror(const std::string& job_id, const std::string& device,
                         const std::string& target, const std::string& sync,
                         std::chrono::milliseconds timeout = kMonitorTimeout);
  Result<std::vector<BlockJobInfo>> query_block_jobs(
      std::chrono::milliseconds timeout = kMonitorTimeout);
  // On a READY mirror, a non-forced cancel finishes the copy without pivoting (the
  // BLOCK_JOB_COMPLETED event follows); otherwise it aborts it (BLOCK_JOB_CANCELLED).
  Status block_job_cancel(const std::string& job_id, bool force,
                          std::chrono::milliseconds timeout = kMonitorTimeout);

  // External snapshots (docs/internals/qemu-driver.md, "Snapshots").
  // blockdev-add of a qcow2 node `node_name` on the file `filename`, with `backing: null`
  // (blockdev-snapshot attaches the current top as its backing).
  Status blockdev_add_qcow2_overlay(const std::string& node_name, const std::string& filename,
                                    std::chrono::milliseconds timeout = kMonitorTimeout);
  // blockdev-snapshot: `overlay` (added with no backing) goes on top of `node`; every
  // parent of `node` (the guest's disk) now writes to `overlay`.
  Status blockdev_snapshot(const std::string& node, const std::string& overlay,
                           std::chrono::milliseconds timeout = kMonitorTimeout);
  // block-stream: copies into `device` (a node, top or intermediate) the data of its
  // backing chain above `base_node` (empty: the whole chain), then makes `base_node` its
  // backing. The job is named `job_id`; progress in query-block-jobs, end in
  // BLOCK_JOB_COMPLETED.
  Status block_stream(const std::string& job_id, const std::string& device,
                      const std::string& base_node,
                      std::chrono::milliseconds timeout = kMonitorTimeout);
  Result<std::vector<BlockNodeInfo>> query_named_block_nodes(
      std::chrono::milliseconds timeout = kMonitorTimeout);

  // Backups (docs/internals/backup.md).
  // blockdev-add of a qcow2 node on the temp file `filename` whose backing is the node
  // `backing_node` (image fleecing: a blockdev-backup sync=none target that reads as the
  // source at the backup point).
  Status blockdev_add_qcow2_fleece(const std::string& node_name, const std::string& filename,
                                   const std::string& backing_node,
                                   std::chrono::milliseconds timeout = kMonitorTimeout);
  // transaction: the actions at one instant, all or none.
  Status transaction(const std::vector<TransactionAction>& actions,
                     std::chrono::milliseconds timeout = kMonitorTimeout);
  Status block_dirty_bitmap_add(const std::string& node, const std::string& name,
                                bool persistent,
                                std::chrono::milliseconds timeout = kMonitorTimeout);
  Status block_dirty_bitmap_remove(const std::string& node, const std::string& name,
                                   std::chrono::milliseconds timeout = kMonitorTimeout);
  Status block_dirty_bitmap_enable(const std::string& node, const std::string& name,
                                   std::chrono::milliseconds timeout = kMonitorTimeout);
  // block-dirty-bitmap-merge: ORs each of `sources` (bitmaps on `node`) into `target`.
  Status block_dirty_bitmap_merge(const std::string& node, const std::string& target,
                                  const std::vector<std::string>& sources,
                                  std::chrono::milliseconds timeout = kMonitorTimeout);
  // nbd-server-start on a UNIX socket (the backup export; only the agent connects).
  Status nbd_server_start_unix(const std::string& path,
                               std::chrono::milliseconds timeout = kMonitorTimeout);
  // block-export-add of type nbd, read-only, with the dirty bitmaps `bitmaps` (found on
  // the node or its backing chain) as qemu:dirty-bitmap:NAME meta contexts.
  Status block_export_add_nbd_readonly(const std::string& id, const std::string& node_name,
                                       const std::string& name,
                                       const std::vector<std::string>& bitmaps,
                                       std::chrono::milliseconds timeout = kMonitorTimeout);
  // block-export-del with mode hard (drops connected clients).
  Status block_export_del(const std::string& id,
                          std::chrono::milliseconds timeout = kMonitorTimeout);

  // Removable media (the CD-ROM, docs/internals/firmware.md). blockdev-change-medium of the
  // device with qdev id `id`: opens the tray (forcing a guest's lock), puts a raw
  // read-only medium on `filename`, closes the tray. `filename` must be a path the driver
  // resolved from its image store, never one a user typed.
  Status blockdev_change_medium(const std::string& id, const std::string& filename,
                                std::chrono::milliseconds timeout = kMonitorTimeout);
  // eject with force: opens the tray even when the guest locked it and removes the medium.
  Status eject(const std::string& id, std::chrono::milliseconds timeout = kMonitorTimeout);
  // query-block, reduced to what the driver reads: each device's qdev id, whether its tray
  // is open (removable devices only) and the file of its inserted medium (empty: none).
  Result<std::vector<BlockDeviceInfo>> query_block(
      std::chrono::milliseconds timeout = kMonitorTimeout);

  // block_resize of node `node_name` to `size` bytes (the guest sees the new capacity; a
  // virtio-blk guest gets a config-change interrupt). QEMU refuses a shrink only for some
  // formats, so the driver checks "grow only" before it asks.
  Status block_resize(const std::string& node_name, uint64_t size,
                      std::chrono::milliseconds timeout = kMonitorTimeout);

  // Hot-plug (docs/internals/qemu-driver.md, "Hot-plug").
  // A disk's two nodes: the file (protocol) node and the format node on it.
  Status blockdev_add_disk(const std::string& file_node, const std::string& format_node,
                           const std::string& filename, const std::string& format, bool readonly,
                           std::chrono::milliseconds timeout = kMonitorTimeout);
  // device_add of a virtio-blk-pci on root port `bus` ("rp1") for format node `drive`.
  Status device_add_virtio_blk(const std::string& id, const std::string& bus,
                               const std::string& drive, const std::string& serial,
                               std::chrono::milliseconds timeout = kMonitorTimeout);
  // device_add of a virtio-net-pci on root port `bus` for netdev `netdev`.
  Status device_add_virtio_net(const std::string& id, const std::string& bus,
                               const std::string& netdev, const std::string& mac,
                               std::chrono::milliseconds timeout = kMonitorTimeout);
  // Asks the guest to release device `id` (PCIe/ACPI hot-unplug): QEMU removes it once the
  // guest acknowledges, which takes a while or never happens (watch peripheral_ids).
  Status device_del(const std::string& id, std::chrono::milliseconds timeout = kMonitorTimeout);
  // The ids of the user-created devices (qom-list /machine/peripheral).
  Result<std::vector<std::string>> peripheral_ids(
      std::chrono::milliseconds timeout = kMonitorTimeout);
  // getfd: hands `fd` to QEMU under `fdname` (QEMU dups it; the caller still owns its copy).
  Status getfd(const std::string& fdname, int fd,
               std::chrono::milliseconds timeout = kMonitorTimeout);
  Status closefd(const std::string& fdname, std::chrono::milliseconds timeout = kMonitorTimeout);
  // netdev_add of a tap backend on a descriptor passed with getfd, or of user networking.
  Status netdev_add_tap(const std::string& id, const std::string& fdname,
                        std::chrono::milliseconds timeout = kMonitorTimeout);
  Status netdev_add_user(const std::string& id,
                         std::chrono::milliseconds timeout = kMonitorTimeout);
  Status netdev_del(const std::string& id, std::chrono::milliseconds timeout = kMonitorTimeout);

  // Unvalidated passthrough for debugging (QemuHypervisor::qmp); the driver never uses it.
  Result<nlohmann::json> raw(const std::string& command, const nlohmann::json& arguments,
                             std::chrono::milliseconds timeout = kMonitorTimeout);

 private:
  QemuMonitor(QmpClientPtr client, QmpGreeting greeting)
      : client_(std::move(client)), greeting_(std::move(greeting)) {}
  // A command whose documented reply is the empty object.
  Status run_void(const char* command, std::chrono::milliseconds timeout,
                  const nlohmann::json& arguments = nullptr, QmpExec how = QmpExec::in_band);
  // exec-oob when this connection negotiated OOB, else in-band.
  QmpExec oob_if_enabled() const { return oob() ? QmpExec::oob : QmpExec::in_band; }

  QmpClientPtr client_;
  QmpGreeting greeting_;
};
using QemuMonitorPtr = std::shared_ptr<QemuMonitor>;

}  // namespace strata::agent::qemu
