// gRPC client wrapper for strata.agent.v1.AgentService.
#include "strata/manager/agents/agent_client.h"

#include <fmt/format.h>
#include <grpcpp/grpcpp.h>

#include "strata/model/vm_spec_json.h"
#include "strata/wire/call.h"

namespace strata::manager {

namespace {
std::mutex g_tls_mu;
std::shared_ptr<const pki::TlsIdentity> g_tls;
}  // namespace

void AgentClient::set_default_tls(std::shared_ptr<const pki::TlsIdentity> tls) {
  std::lock_guard lock(g_tls_mu);
  g_tls = std::move(tls);
}

std::shared_ptr<const pki::TlsIdentity> AgentClient::default_tls() {
  std::lock_guard lock(g_tls_mu);
  return g_tls;
}

AgentClient::AgentClient(std::string address, std::chrono::milliseconds default_timeout,
                         std::shared_ptr<const pki::TlsIdentity> tls)
    : AgentClient(std::move(address), pki::PeerPin{}, default_timeout, std::move(tls)) {}

AgentClient::AgentClient(std::string address, const pki::PeerPin& pin,
                         std::chrono::milliseconds default_timeout,
                         std::shared_ptr<const pki::TlsIdentity> tls)
    : address_(std::move(address)), timeout_(default_timeout) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 200);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 2000);
  // Each AgentClient owns its connection: a client made afresh for a host that kept failing
  // really dials again, instead of sharing the old one from gRPC's process-wide pool.
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  args.SetMaxReceiveMessageSize(64 << 20);
  const bool unix_socket = address_.rfind("unix:", 0) == 0;
  auto creds = (unix_socket || !tls) ? grpc::InsecureChannelCredentials()
                : pin.name.empty()    ? pki::channel_credentials(*tls)
                                      : pki::channel_credentials(*tls, pin);
  channel_ = grpc::CreateCustomChannel(address_, creds, args);
  stub_ = pb::AgentService::NewStub(channel_);
}

bool AgentClient::connection_failed() const {
  const auto state = channel_->GetState(false);
  return state == GRPC_CHANNEL_TRANSIENT_FAILURE || state == GRPC_CHANNEL_SHUTDOWN;
}

// One unary call with a deadline (wire::call); `resp` is the response, of type RESP.
#define STRATA_UNARY(METHOD, REQ, RESP, TIMEOUT)                                               \
  auto result = wire::call(*stub_, &pb::AgentService::Stub::METHOD, REQ, TIMEOUT, kAgentPeer); \
  if (!result) return tl::unexpected(result.error());                                          \
  [[maybe_unused]] RESP& resp = *result;

// The heartbeat waits (within its deadline) for the channel to connect rather than failing
// fast while the channel is in TRANSIENT_FAILURE: a host that was refused once (dialled right
// after enrollment, before its agent served) is answered as soon as it serves.
Result<pb::HealthResponse> AgentClient::health(std::chrono::milliseconds timeout,
                                               const pb::HealthRequest& req) {
  grpc::ClientContext ctx;
  wire::set_deadline(ctx, timeout);
  ctx.set_wait_for_ready(true);
  pb::HealthResponse resp;
  grpc::Status st = stub_->Health(&ctx, req, &resp);
  if (st.ok()) return resp;
  return tl::unexpected(wire::from_grpc_status(st, kAgentPeer, *channel_));
}

Result<pb::GetMetricsResponse> AgentClient::metrics(std::chrono::milliseconds timeout) {
  pb::GetMetricsRequest req;
  STRATA_UNARY(GetMetrics, req, pb::GetMetricsResponse, timeout);
  return resp;
}

Result<pb::HostInventory> AgentClient::inventory() {
  pb::GetInventoryRequest req;
  STRATA_UNARY(GetInventory, req, pb::GetInventoryResponse, timeout_);
  return resp.inventory();
}

Result<std::vector<pb::VmStatus>> AgentClient::list_vms() {
  pb::ListVmsRequest req;
  STRATA_UNARY(ListVms, req, pb::ListVmsResponse, timeout_);
  return std::vector<pb::VmStatus>(resp.vms().begin(), resp.vms().end());
}

Result<pb::VmStatus> AgentClient::get_vm(const std::string& name) {
  pb::GetVmRequest req;
  req.set_name(name);
  STRATA_UNARY(GetVm, req, pb::GetVmResponse, timeout_);
  return resp.vm();
}

Result<pb::VmStatus> AgentClient::define_vm(const std::string& request_id,
                                            const model::VmSpec& spec) {
  pb::DefineVmRequest req;
  req.set_request_id(request_id);
  *req.mutable_spec() = to_proto(spec);
  STRATA_UNARY(DefineVm, req, pb::DefineVmResponse, std::chrono::seconds(120));
  return resp.vm();
}

#define STRATA_NAMED_ACTION(FN, METHOD, TIMEOUT)                                          \
  Result<pb::VmStatus> AgentClient::FN(const std::string& request_id,                      \
                                       const std::string& name) {                          \
    pb::METHOD##Request req;                                                               \
    req.set_request_id(request_id);                                                        \
    req.set_name(name);                                                                    \
    STRATA_UNARY(METHOD, req, pb::METHOD##Response, TIMEOUT);                              \
    return resp.vm();                                                                      \
  }

Result<pb::VmStatus> AgentClient::start_vm(const std::string& request_id, const std::string& name,
                                           const std::string& cpu_model) {
  pb::StartVmRequest req;
  req.set_request_id(request_id);
  req.set_name(name);
  req.set_cpu_model(cpu_model);
  STRATA_UNARY(StartVm, req, pb::StartVmResponse, std::chrono::seconds(120));
  return resp.vm();
}

STRATA_NAMED_ACTION(force_off_vm, ForceOffVm, std::chrono::seconds(60))
STRATA_NAMED_ACTION(reboot_vm, RebootVm, std::chrono::seconds(30))
STRATA_NAMED_ACTION(pause_vm, PauseVm, std::chrono::seconds(30))
STRATA_NAMED_ACTION(resume_vm, ResumeVm, std::chrono::seconds(30))

Result<pb::VmStatus> AgentClient::change_cdrom(const std::string& request_id,
                                               const std::string& name, const std::string& image) {
  pb::ChangeCdromRequest req;
  req.set_request_id(request_id);
  req.set_name(name);
  req.set_image(image);
  STRATA_UNARY(ChangeCdrom, req, pb::ChangeCdromResponse, std::chrono::seconds(30));
  return resp.vm();
}

Result<pb::VmStatus> AgentClient::resize_disk(const std::string& request_id,
                                              const std::string& name, const std::string& disk,
                                              uint64_t size_bytes) {
  pb::ResizeDiskRequest req;
  req.set_request_id(request_id);
  req.set_name(name);
  req.set_disk(disk);
  req.set_size_bytes(size_bytes);
  STRATA_UNARY(ResizeDisk, req, pb::ResizeDiskResponse, std::chrono::seconds(60));
  return resp.vm();
}

// Hot-plug: the guest has up to 30 s to release a device on detach.
Result<model::DiskSpec> AgentClient::attach_disk(const std::string& request_id,
                                                 const std::string& name,
                                                 const model::DiskSpec& disk) {
  pb::AttachDiskRequest req;
  req.set_request_id(request_id);
  req.set_name(name);
  *req.mutable_disk() = wire::to_proto(disk);
  STRATA_UNARY(AttachDisk, req, pb::AttachDiskResponse, std::chrono::seconds(120));
  return wire::from_proto(resp.disk());
}

Status AgentClient::detach_disk(const std::string& request_id, const std::string& name,
                                const std::string& disk) {
  pb::DetachDiskRequest req;
  req.set_request_id(request_id);
  req.set_name(name);
  req.set_disk(disk);
  STRATA_UNARY(DetachDisk, req, pb::DetachDiskResponse, std::chrono::seconds(90));
  return {};
}

Result<model::NicSpec> AgentClient::attach_nic(const std::string& request_id,
                                               const std::string& name, const model::NicSpec& nic) {
  pb::AttachNicRequest req;
  req.set_request_id(request_id);
  req.set_name(name);
  *req.mutable_nic() = wire::to_proto(nic);
  STRATA_UNARY(AttachNic, req, pb::AttachNicResponse, std::chrono::seconds(60));
  return wire::from_proto(resp.nic(), "nic");
}

Status AgentClient::detach_nic(const std::string& request_id, const std::string& name,
                               const std::string& mac) {
  pb::DetachNicRequest req;
  req.set_request_id(request_id);
  req.set_name(name);
  req.set_mac(mac);
  STRATA_UNARY(DetachNic, req, pb::DetachNicResponse, std::chrono::seconds(90));
  return {};
}

Result<std::string> AgentClient::read_uefi_vars(const std::string& name) {
  pb::ReadUefiVarsRequest req;
  req.set_name(name);
  STRATA_UNARY(ReadUefiVars, req, pb::ReadUefiVarsResponse, std::chrono::seconds(30));
  return std::string(resp.vars());
}

Status AgentClient::write_uefi_vars(const std::string& request_id, const std::string& name,
                                    const std::string& vars) {
  pb::WriteUefiVarsRequest req;
  req.set_request_id(request_id);
  req.set_name(name);
  req.set_vars(vars);
  STRATA_UNARY(WriteUefiVars, req, pb::WriteUefiVarsResponse, std::chrono::seconds(30));
  return {};
}

Result<pb::VmStatus> AgentClient::shutdown_vm(const std::string& request_id,
                                              const std::string& name, uint32_t timeout_ms) {
  pb::ShutdownVmRequest req;
  req.set_request_id(request_id);
  req.set_name(name);
  req.set_timeout_ms(timeout_ms);
  uint32_t effective = timeout_ms == 0 ? 60000 : timeout_ms;
  STRATA_UNARY(ShutdownVm, req, pb::ShutdownVmResponse,
               std::chrono::milliseconds(effective) + std::chrono::seconds(30));
  return resp.vm();
}

Status AgentClient::undefine_vm(const std::string& request_id, const std::string& name,
                                bool delete_shared_disks) {
  pb::UndefineVmRequest req;
  req.set_delete_shared_disks(delete_shared_disks);
  req.set_request_id(request_id);
  req.set_name(name);
  STRATA_UNARY(UndefineVm, req, pb::UndefineVmResponse, std::chrono::seconds(60));
  return {};
}

Result<pb::Snapshot> AgentClient::create_snapshot(const std::string& request_id,
                                                  const std::string& vm, const std::string& name,
                                                  std::chrono::milliseconds timeout) {
  pb::CreateSnapshotRequest req;
  req.set_request_id(request_id);
  req.set_vm(vm);
  req.set_name(name);
  STRATA_UNARY(CreateSnapshot, req, pb::CreateSnapshotResponse, timeout);
  return resp.snapshot();
}

Result<std::vector<pb::Snapshot>> AgentClient::list_snapshots(const std::string& vm) {
  pb::ListSnapshotsRequest req;
  req.set_vm(vm);
  STRATA_UNARY(ListSnapshots, req, pb::ListSnapshotsResponse, timeout_);
  return std::vector<pb::Snapshot>(resp.snapshots().begin(), resp.snapshots().end());
}

Status AgentClient::revert_snapshot(const std::string& request_id, const std::string& vm,
                                    const std::string& name, std::chrono::milliseconds timeout) {
  pb::RevertSnapshotRequest req;
  req.set_request_id(request_id);
  req.set_vm(vm);
  req.set_name(name);
  STRATA_UNARY(RevertSnapshot, req, pb::RevertSnapshotResponse, timeout);
  return {};
}

Status AgentClient::delete_snapshot(const std::string& request_id, const std::string& vm,
                                    const std::string& name, std::chrono::milliseconds timeout) {
  pb::DeleteSnapshotRequest req;
  req.set_request_id(request_id);
  req.set_vm(vm);
  req.set_name(name);
  STRATA_UNARY(DeleteSnapshot, req, pb::DeleteSnapshotResponse, timeout);
  return {};
}

Result<std::vector<pb::Image>> AgentClient::list_images(
    std::optional<std::chrono::milliseconds> timeout) {
  pb::ListImagesRequest req;
  STRATA_UNARY(ListImages, req, pb::ListImagesResponse, timeout.value_or(timeout_));
  return std::vector<pb::Image>(resp.images().begin(), resp.images().end());
}

Result<std::string> AgentClient::console_tail(const std::string& name, uint32_t max_bytes) {
  pb::ConsoleTailRequest req;
  req.set_name(name);
  req.set_max_bytes(max_bytes);
  STRATA_UNARY(ConsoleTail, req, pb::ConsoleTailResponse, timeout_);
  return resp.data();
}

#undef STRATA_NAMED_ACTION
#undef STRATA_UNARY

}  // namespace strata::manager
