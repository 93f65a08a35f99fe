// The manager's typed client for one agent (strata.agent.v1.AgentService over gRPC).
// Every call has a deadline; gRPC failures come back as strata::Error (the agent's
// ErrorDetail when present, else mapped from the status code). Streams are cancellable
// from another thread.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "strata/agent/v1/agent.grpc.pb.h"
#include "strata/common/error.h"
#include "strata/model/guest_facts.h"
#include "strata/model/vm_spec.h"
#include "strata/pki/grpc_tls.h"
#include "strata/wire/status.h"
#include "strata/wire/vm.h"

namespace strata::manager {

namespace pb = ::strata::agent::v1;

// A session with a VM's console on gRPC's callback API (no thread of its own): serial
// (AgentClient::open_console: StreamConsole out, WriteConsole in) or graphical
// (AgentClient::open_display: StreamDisplay, raw RFB bytes both ways). Flow control is the
// caller's: at most one read() and one write() pending at a time, and the agent is asked
// for its next message only by the next read(), so nothing queues up here. Callbacks run
// on gRPC's threads (sometimes inline, in the call that started them) and must not block.
class ConsoleStream {
 public:
  virtual ~ConsoleStream() = default;
  // `fn` gets the VM's next bytes, or nullopt once the call is over (the agent ended or
  // refused it: status() says why; or cancel()).
  virtual void read(std::function<void(std::optional<std::string>)> fn) = 0;
  // Bytes for the VM, sent in messages of at most 64 KiB (the agent's bound); `done(true)`
  // once the agent took them all, false when a message failed or the call is over.
  virtual void write(std::string data, std::function<void(bool)> done) = 0;
  // Ends the call (any thread); a read then gets nullopt once the call is over.
  virtual void cancel() = 0;
  // How the call ended, once a read gave nullopt; a cancel is not an error.
  virtual Status status() const = 0;
};
using ConsoleStreamPtr = std::shared_ptr<ConsoleStream>;

// What one call's gRPC callbacks hand over instead of letting go of it on gRPC's thread,
// where the last reference to a channel must not go (see health_async's lifetime rule): the
// console's own stream (so its stub and context), the reader's or writer's callback. keep()
// is called from one thread at a time; the hold, once gRPC let go of it, hands everything
// it kept (and the client the call ran on) to be released elsewhere. The connection
// manager's CallHold is one: counted with its host's calls, so stopping the host waits
// until gRPC is done with its consoles.
class CallKeep {
 public:
  virtual ~CallKeep() = default;
  virtual void keep(std::shared_ptr<void> what) = 0;
};
// Makes the hold of one call (the stream's, and each WriteConsole's); empty: none, and
// what gRPC's threads let go of goes there.
using CallKeeper = std::function<std::shared_ptr<CallKeep>()>;

// A call on gRPC's callback API that can be cancelled from any thread, at any time (also
// after it ended: then nothing happens). The heartbeat's calls (AgentClient::*_async).
class PendingCall {
 public:
  virtual ~PendingCall() = default;
  virtual void cancel() = 0;
};
using PendingCallPtr = std::shared_ptr<PendingCall>;

// A WatchEvents stream on gRPC's callback API (AgentClient::watch_events_async): no thread
// of its own. Each event goes to `on_event`, and the next one is read only once next() is
// called, so a slow consumer holds the agent back instead of queueing here.
class EventWatch : public PendingCall {
 public:
  // Asks for the next event (call once per event handed over, from any thread).
  virtual void next() = 0;
};
using EventWatchPtr = std::shared_ptr<EventWatch>;

class AgentClient {
 public:
  // address: "unix:/path" (plaintext: the socket's file mode protects it) or "host:port"
  // (mutual TLS with `tls`: the manager's client certificate, and the agent's certificate
  // checked against the manager's CA and the dialled address; plaintext only when no
  // identity was ever configured, as in tests of plaintext agents).
  explicit AgentClient(std::string address,
                       std::chrono::milliseconds default_timeout = std::chrono::seconds(10),
                       std::shared_ptr<const pki::TlsIdentity> tls = default_tls());
  // An enrolled host over TCP: its certificate must also name the host (CN) and be the one
  // pinned at enrollment (see pki::PeerPin), checked in every handshake.
  AgentClient(std::string address, const pki::PeerPin& pin,
              std::chrono::milliseconds default_timeout = std::chrono::seconds(10),
              std::shared_ptr<const pki::TlsIdentity> tls = default_tls());

  // The identity new clients use by default; stratad sets it once at start, before any
  // connection is made (its CA and a client certificate the CA issued to it).
  static void set_default_tls(std::shared_ptr<const pki::TlsIdentity> tls);
  static std::shared_ptr<const pki::TlsIdentity> default_tls();

  const std::string& address() const { return address_; }

  // True when gRPC itself gave up on this client's connection for now (TRANSIENT_FAILURE:
  // the last dial or handshake failed, or SHUTDOWN). A host that is merely slow to answer
  // keeps a READY or CONNECTING channel, and dialling it afresh would only add connections
  // to a host that is already behind (ConnectionManager's heartbeat).
  bool connection_failed() const;

  // The heartbeat. `lease` (optional) grants the HA leases it names (HealthRequest).
  Result<pb::HealthResponse> health(std::chrono::milliseconds timeout,
                                    const pb::HealthRequest& lease = {});
  Result<pb::GetMetricsResponse> metrics(std::chrono::milliseconds timeout);
  Result<pb::HostInventory> inventory();
  // The same three on gRPC's callback API, for the connection manager's heartbeats (a host
  // that does not answer costs an outstanding call, not a thread). `done` runs once, on one
  // of gRPC's threads or inline in this call (when the call failed at once): it must not
  // block and must not need a lock its caller holds across this call.
  // Lifetime: gRPC destroys `done` (with what it captured) on its own thread, once the
  // call's completion ran, and after it dropped its other references to the call (its
  // context) and to the channel. So a `done` that keeps this AgentClient, and hands it
  // over to be released off gRPC's threads, makes sure the channel is never destroyed on
  // one (ConnectionManager's CallHold). Nothing whose destruction shuts a channel (or gRPC)
  // down may be released by gRPC's threads: hold it in `done` and release it elsewhere.
  PendingCallPtr health_async(std::chrono::milliseconds timeout, const pb::HealthRequest& lease,
                              std::function<void(Result<pb::HealthResponse>)> done);
  PendingCallPtr metrics_async(std::chrono::milliseconds timeout,
                               std::function<void(Result<pb::GetMetricsResponse>)> done);
  PendingCallPtr inventory_async(std::function<void(Result<pb::HostInventory>)> done);
  // WatchEvents on the callback API: `on_event` per event (then next() on the watch it
  // names, for the one after: the call stays open, and the watch alive, until that next()),
  // `on_done` once when the call is over (ok when cancelled). Both on gRPC's threads, same
  // rules (and the same lifetime: destroyed after the call's context) as `done` above.
  EventWatchPtr watch_events_async(bool include_current,
                                   std::function<void(EventWatch&, pb::VmEvent)> on_event,
                                   std::function<void(Status)> on_done);
  Result<std::vector<pb::VmStatus>> list_vms();
  Result<pb::VmStatus> get_vm(const std::string& name);
  Result<pb::VmStatus> define_vm(const std::string& request_id, const model::VmSpec& spec);
  // cpu_model: when set, the VM (not running) adopts it before it starts (its cluster's
  // CPU baseline).
  Result<pb::VmStatus> start_vm(const std::string& request_id, const std::string& name,
                                const std::string& cpu_model = "");
  Result<pb::VmStatus> shutdown_vm(const std::string& request_id, const std::string& name,
                                   uint32_t timeout_ms);
  Result<pb::VmStatus> force_off_vm(const std::string& request_id, const std::string& name);
  Result<pb::VmStatus> reboot_vm(const std::string& request_id, const std::string& name);
  // The CD-ROM's medium: `image` (an iso in the host's store) or empty to eject.
  Result<pb::VmStatus> change_cdrom(const std::string& request_id, const std::string& name,
                                    const std::string& image);
  // Grows disk `disk` to `size_bytes` (the agent's ResizeDisk): returns the VM as it is then.
  Result<pb::VmStatus> resize_disk(const std::string& request_id, const std::string& name,
                                   const std::string& disk, uint64_t size_bytes);
  // Hot-plug (the agent's AttachDisk, DetachDisk, AttachNic, DetachNic): the device as the
  // agent recorded it (its hot-plug slot; a NIC's MAC).
  Result<model::DiskSpec> attach_disk(const std::string& request_id, const std::string& name,
                                      const model::DiskSpec& disk);
  Status detach_disk(const std::string& request_id, const std::string& name,
                     const std::string& disk);
  Result<model::NicSpec> attach_nic(const std::string& request_id, const std::string& name,
                                    const model::NicSpec& nic);
  Status detach_nic(const std::string& request_id, const std::string& name, const std::string& mac);
  // A UEFI VM's variables file, whole (cold migration carries it).
  Result<std::string> read_uefi_vars(const std::string& name);
  Status write_uefi_vars(const std::string& request_id, const std::string& name,
                         const std::string& vars);
  Result<pb::VmStatus> pause_vm(const std::string& request_id, const std::string& name);
  Result<pb::VmStatus> resume_vm(const std::string& request_id, const std::string& name);
  // Disks on datastores stay unless `delete_shared_disks` (only when the VM is deleted).
  Status undefine_vm(const std::string& request_id, const std::string& name,
                     bool delete_shared_disks = false);
  // A new VM `spec` from the stopped VM `source`'s disks (the agent's CloneVm): linked
  // overlays or full copies; `on_progress(done, total)` as the copy goes. Returns the clone.
  Result<pb::VmStatus> clone_vm(const std::string& request_id, const std::string& source,
                                const model::VmSpec& spec, bool linked,
                                std::chrono::milliseconds deadline,
                                const std::function<void(uint64_t done, uint64_t total)>& on_progress);
  // `timeout`: a shorter deadline than the default (a listing over many hosts).
  // Disk snapshots (the agent's CreateSnapshot etc.); `timeout` bounds the agent's work.
  Result<pb::Snapshot> create_snapshot(const std::string& request_id, const std::string& vm,
                                       const std::string& name, std::chrono::milliseconds timeout);
  Result<std::vector<pb::Snapshot>> list_snapshots(const std::string& vm);
  Status revert_snapshot(const std::string& request_id, const std::string& vm,
                         const std::string& name, std::chrono::milliseconds timeout);
  Status delete_snapshot(const std::string& request_id, const std::string& vm,
                         const std::string& name, std::chrono::milliseconds timeout);
  // Backups (the agent's BackupVm / RestoreVmDisks, streaming the copy's progress:
  // `on_progress(done, total)` in bytes; docs/internals/backup.md). An agent that predates
  // the streams (UNIMPLEMENTED) gets the unary CreateBackup / RestoreBackup instead, without
  // progress. `repo_key`: the encrypted repository's 32-byte key ("" plain), carried only
  // in the request over this mTLS channel.
  using CopyProgress = std::function<void(uint64_t done, uint64_t total)>;
  Result<pb::CreateBackupResponse> create_backup(const std::string& request_id,
                                                 const std::string& vm, const std::string& repo,
                                                 const std::string& backup_id, bool full,
                                                 std::string_view repo_key,
                                                 std::chrono::milliseconds timeout,
                                                 const CopyProgress& on_progress = {});
  Status restore_backup(const std::string& request_id, const std::string& vm,
                        const std::string& repo, const std::string& backup_id,
                        std::string_view repo_key, std::chrono::milliseconds timeout,
                        const CopyProgress& on_progress = {});

  Result<std::vector<pb::Image>> list_images(
      std::optional<std::chrono::milliseconds> timeout = std::nullopt);
  // Streams the file at `path` to the agent's image store as image `name` (PutImage);
  // on_progress(bytes_sent) after each chunk. Idempotent for the same name and sha256.
  Result<pb::PutImageResponse> put_image(const std::string& name, const std::string& kind,
                                         const std::string& path, uint64_t size_bytes,
                                         const std::string& sha256,
                                         const std::function<void(uint64_t)>& on_progress = {});
  Status delete_image(const std::string& request_id, const std::string& name,
                      std::optional<std::chrono::milliseconds> timeout = std::nullopt);

  Result<std::string> console_tail(const std::string& name, uint32_t max_bytes);
  // The serial console (agent_client_console.cc): output from StreamConsole, first up to
  // `tail_bytes` from the end of the log; input through WriteConsole, each message with
  // request id "<request_prefix>:<n>" (n counts the messages from 0), with the default
  // deadline. No deadline on the output: it lasts as long as the viewer.
  // `keeper`: the holds of its calls (ConnectionManager::open_console gives its host's).
  ConsoleStreamPtr open_console(const std::string& name, uint32_t tail_bytes,
                                std::string request_prefix, CallKeeper keeper = {});
  // The VNC display (StreamDisplay); the agent's refusal (VM not running, no display) shows
  // as the first read() giving nullopt and status() the error.
  ConsoleStreamPtr open_display(const std::string& name, CallKeeper keeper = {});

  // Live migration phases (agent_client_migration.cc; the agent.proto comments).
  Result<pb::BeginMigrationResponse> begin_migration(const std::string& name);
  Result<pb::PrepareMigrationResponse> prepare_migration(const std::string& request_id,
                                                         const pb::BeginMigrationResponse& source,
                                                         const std::string& listen_host, bool tls,
                                                         bool postcopy = false);
  // Follows the source's migration job until it ends: on_progress per report; returns the
  // outcome. `deadline` bounds the whole call (the job itself is bounded by its policy).
  Result<pb::MigrationOutcome> perform_migration(
      const pb::PerformMigrationRequest& request, std::chrono::milliseconds deadline,
      const std::function<void(const pb::MigrationProgress&)>& on_progress);
  Result<pb::FinishMigrationResponse> finish_migration(const std::string& request_id,
                                                       const std::string& name);
  Status abort_migration(const std::string& request_id, const std::string& name);
  // Post-copy: the source switches over (SwitchoverMigration).
  Result<pb::MigrationOutcome> switchover_migration(const std::string& request_id,
                                                    const std::string& name);
  // `deadline`: after a post-copy switch-over the source answers once its last page went.
  Status confirm_migration(const std::string& request_id, const std::string& name,
                           std::chrono::milliseconds deadline = std::chrono::seconds(90));
  Result<pb::VmStatus> cancel_migration(const std::string& request_id, const std::string& name);
  // Post-copy recovery after a broken stream: the target listens again and answers the URI
  // (PrepareRecoverMigration); the source reconnects to it (ResumeMigration).
  Result<std::string> prepare_recover_migration(const std::string& request_id,
                                                const std::string& name,
                                                const std::string& listen_host);
  Status resume_migration(const std::string& request_id, const std::string& name,
                          const std::string& recover_uri);
  // Cold migration of a stopped VM's local disk (agent_client_disks.cc): this agent's
  // ReadDisk relayed, chunk by chunk, to `target`'s WriteDisk (never the whole disk in
  // memory; the agents check the digest end to end). on_progress(data bytes sent, the
  // file's size) after each chunk. Returns the data bytes the target wrote.
  Result<uint64_t> copy_disk_to(AgentClient& target, const std::string& request_id,
                                const std::string& vm, const std::string& disk,
                                const std::function<void(uint64_t, uint64_t)>& on_progress = {});

 private:
  std::string address_;
  std::chrono::milliseconds timeout_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<pb::AgentService::Stub> stub_;
};
using AgentClientPtr = std::shared_ptr<AgentClient>;

// The wire library converts (one home for both ends of the contract): statuses to Errors
// (a transport failure's message says "agent: "), model <-> proto.
inline constexpr std::string_view kAgentPeer = "agent: ";
inline Error error_from_grpc(const grpc::Status& status) {
  return wire::from_grpc_status(status, kAgentPeer);
}
using wire::guest_facts_of;
using wire::to_proto;
inline std::string vm_state_name(pb::VmState s) { return wire::state_name(s); }

}  // namespace strata::manager
