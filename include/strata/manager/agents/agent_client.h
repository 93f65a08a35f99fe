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

namespace strata::manager {

namespace pb = ::strata::agent::v1;

// Cancels a running stream (WatchEvents, StreamConsole) from another thread.
class StreamCancel {
 public:
  void cancel();
  // Makes the object usable for the next stream (after a cancel).
  void reset();
  bool cancelled() const { return cancelled_; }
  void attach(grpc::ClientContext* ctx);
  void detach();

 private:
  std::mutex mu_;
  grpc::ClientContext* ctx_ = nullptr;
  std::atomic<bool> cancelled_{false};
};

// One session with a VM's VNC display (AgentClient::open_display, the agent's
// StreamDisplay): raw RFB bytes both ways. One thread may read() while another write()s;
// cancel() from any thread ends both.
class DisplayStream {
 public:
  DisplayStream(std::unique_ptr<grpc::ClientContext> ctx,
                std::unique_ptr<grpc::ClientReaderWriter<pb::DisplayChunk, pb::DisplayChunk>> rw)
      : ctx_(std::move(ctx)), rw_(std::move(rw)) {}
  // Bytes for the display (sent in chunks of at most 64 KiB); false once the stream ended.
  bool write(std::string_view data);
  // Blocks for the display's next bytes; nullopt once the stream ended.
  std::optional<std::string> read();
  void cancel() { ctx_->TryCancel(); }
  // How the stream ended (after read() gave nullopt and no write() is running); a cancel
  // is not an error.
  Status finish();

 private:
  friend class AgentClient;
  void write_first(const pb::DisplayChunk& first);
  std::unique_ptr<grpc::ClientContext> ctx_;
  std::unique_ptr<grpc::ClientReaderWriter<pb::DisplayChunk, pb::DisplayChunk>> rw_;
};

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

  // The heartbeat. `lease` (optional) grants the HA leases it names (HealthRequest).
  Result<pb::HealthResponse> health(std::chrono::milliseconds timeout,
                                    const pb::HealthRequest& lease = {});
  Result<pb::GetMetricsResponse> metrics(std::chrono::milliseconds timeout);
  Result<pb::HostInventory> inventory();
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
  Status write_console(const std::string& request_id, const std::string& name,
                       const std::string& data);
  // Blocks, calling on_chunk per chunk until the stream ends, on_chunk returns false or
  // cancel fires.
  Status stream_console(const std::string& name, uint32_t tail_bytes, StreamCancel& cancel,
                        const std::function<bool(const std::string&)>& on_chunk);
  // Opens a session with the VM's VNC display; the agent's refusal (VM not running, no
  // display) shows as read() ending and finish() giving the error.
  std::unique_ptr<DisplayStream> open_display(const std::string& name);
  Status watch_events(bool include_current, StreamCancel& cancel,
                      const std::function<void(const pb::VmEvent&)>& on_event);

  // Live migration phases (agent_client_migration.cc; the agent.proto comments).
  Result<pb::BeginMigrationResponse> begin_migration(const std::string& name);
  Result<pb::PrepareMigrationResponse> prepare_migration(const std::string& request_id,
                                                         const pb::BeginMigrationResponse& source,
                                                         const std::string& listen_host,
                                                         bool tls);
  // Follows the source's migration job until it ends: on_progress per report; returns the
  // outcome. `deadline` bounds the whole call (the job itself is bounded by its policy).
  Result<pb::MigrationOutcome> perform_migration(
      const pb::PerformMigrationRequest& request, std::chrono::milliseconds deadline,
      const std::function<void(const pb::MigrationProgress&)>& on_progress);
  Result<pb::FinishMigrationResponse> finish_migration(const std::string& request_id,
                                                       const std::string& name);
  Status abort_migration(const std::string& request_id, const std::string& name);
  Status confirm_migration(const std::string& request_id, const std::string& name);
  Result<pb::VmStatus> cancel_migration(const std::string& request_id, const std::string& name);

 private:
  std::string address_;
  std::chrono::milliseconds timeout_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<pb::AgentService::Stub> stub_;
};
using AgentClientPtr = std::shared_ptr<AgentClient>;

// gRPC status -> strata::Error (ErrorDetail preferred).
Error error_from_grpc(const grpc::Status& status);

// model <-> proto.
pb::VmSpec to_proto(const model::VmSpec& spec);
// The agent's guest facts of a VM, checked as model::guest_facts_from_json; nullopt when the
// status has none, or when they fail the checks (an agent is trusted, but not blindly).
std::optional<model::GuestFacts> guest_facts_of(const pb::VmStatus& status);
std::string vm_state_name(pb::VmState s);  // "running", "stopped", ... ("unknown" for 0)

}  // namespace strata::manager
