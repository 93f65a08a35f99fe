// AgentService: construction, request-id deduplication and the VM lifecycle RPCs.
#include "strata/agent/service/agent_service.h"

#include <fmt/format.h>
#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "event_hub.h"
#include "strata/common/json.h"
#include "strata/common/log.h"
#include "strata/model/validation.h"
#include "strata/wire/status.h"
#include "strata/wire/vm_status.h"

namespace strata::agent::service {

namespace {

constexpr uint32_t kDefaultShutdownTimeoutMs = 60000;

auto service_log() {
  static auto l = logger("agent.service");
  return l;
}

std::string deterministic_bytes(const google::protobuf::Message& m) {
  std::string out;
  {
    google::protobuf::io::StringOutputStream sos(&out);
    google::protobuf::io::CodedOutputStream cos(&sos);
    cos.SetSerializationDeterministic(true);
    m.SerializeToCodedStream(&cos);
  }
  return out;
}

// Outcomes a retry may change are not remembered, so a retry with the same id runs again.
bool remember(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::UNAVAILABLE:
    case grpc::StatusCode::DEADLINE_EXCEEDED:
    case grpc::StatusCode::INTERNAL:
    case grpc::StatusCode::ABORTED:
    case grpc::StatusCode::CANCELLED:
    case grpc::StatusCode::UNKNOWN:
      return false;
    default:
      return true;
  }
}

}  // namespace

Result<std::unique_ptr<AgentService>> AgentService::create(Hypervisor& hypervisor,
                                                           AgentServiceOptions options) {
  std::string path;
  if (!options.state_dir.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(options.state_dir, ec);
    if (ec) {
      return internal_error(fmt::format("create {}: {}", options.state_dir, ec.message()));
    }
    path = (std::filesystem::path(options.state_dir) / "request-ids.jsonl").string();
  }
  auto log = RequestLog::open(path, options.request_log_capacity);
  if (!log) return tl::unexpected(log.error().wrap("request log"));
  return std::make_unique<AgentService>(hypervisor, std::move(options), std::move(*log));
}

AgentService::AgentService(Hypervisor& hypervisor, AgentServiceOptions options, RequestLogPtr log)
    : hv_(hypervisor),
      opts_(std::move(options)),
      log_(std::move(log)),
      console_log_(std::make_unique<RequestLog>("", opts_.console_request_log_capacity)),
      hub_(std::make_shared<EventHub>()) {
  if (!opts_.clock) opts_.clock = system_clock();
  started_unix_ms_ =
      std::chrono::duration_cast<std::chrono::milliseconds>(opts_.clock->wall().time_since_epoch())
          .count();
  std::weak_ptr<EventHub> weak = hub_;
  hv_.watch([weak](const VmEvent& e) {
    if (auto hub = weak.lock()) hub->publish(e);
  });
}

AgentService::~AgentService() { shutdown(); }

void AgentService::shutdown() {
  stopping_ = true;
  hub_->close_all();
  join_migrations();
}

template <typename Req, typename Resp>
grpc::Status AgentService::once(const char* method, const Req& request, Resp* response,
                                const std::function<Status(Resp*)>& run) {
  return once_in<Req, Resp>(*log_, method, request, response, run);
}

template <typename Req, typename Resp>
grpc::Status AgentService::once_in(RequestLog& requests, const char* method, const Req& request,
                                   Resp* response, const std::function<Status(Resp*)>& run) {
  const std::string& id = request.request_id();
  if (auto st = validate_request_id(id); !st) return wire::to_grpc_status(st.error());
  Req content = request;
  content.clear_request_id();
  std::string fp = fingerprint(std::string(method) + '\0' + deterministic_bytes(content));

  if (auto prior = requests.begin(id)) {
    if (prior->method != method || prior->fingerprint != fp) {
      return wire::to_grpc_status(Error{ErrorCode::invalid_argument,
                                        fmt::format("request id already used for a different {} "
                                                    "request",
                                                    prior->method),
                                        "request_id"});
    }
    service_log()->info("repeated request id={} method={} code={}", id, method,
                        prior->outcome.status_code);
    const auto& o = prior->outcome;
    if (o.status_code != 0) {
      return grpc::Status(static_cast<grpc::StatusCode>(o.status_code), o.message, o.details);
    }
    if (!response->ParseFromString(o.response)) {
      return wire::to_grpc_status(
          Error{ErrorCode::internal, "remembered response does not parse", {}});
    }
    return grpc::Status::OK;
  }

  Status result = run(response);
  grpc::Status status = result ? grpc::Status::OK : wire::to_grpc_status(result.error());
  if (!result) {
    service_log()->info("request failed id={} method={} error={}", id, method,
                        result.error().to_string());
  }
  if (!remember(status.error_code())) {
    requests.abandon(id);
    return status;
  }
  RequestRecord record{
      method, fp,
      RequestOutcome{static_cast<int>(status.error_code()), status.error_message(),
                     status.error_details(), status.ok() ? deterministic_bytes(*response) : ""}};
  if (auto st = requests.finish(id, std::move(record)); !st) {
    // The action happened; failing to remember it only weakens deduplication.
    service_log()->warn("request log write failed id={} error={}", id, st.error().to_string());
  }
  return status;
}

Status AgentService::current(const std::string& name, v1::VmStatus* out) const {
  auto s = hv_.status(name);
  if (!s) return tl::unexpected(s.error());
  if (out) *out = wire::to_proto(*s);
  return {};
}

grpc::Status AgentService::GetVm(grpc::ServerContext*, const v1::GetVmRequest* req,
                                 v1::GetVmResponse* resp) {
  if (auto st = model::validate_name("name", req->name()); !st)
    return wire::to_grpc_status(st.error());
  auto st = current(req->name(), resp->mutable_vm());
  return st ? grpc::Status::OK : wire::to_grpc_status(st.error());
}

// A define whose caller went away (a manager killed or its deadline passed) is undone:
// the caller never learned that the VM exists, and a manager restarted meanwhile may have
// already deleted the VM's record after finding no VM here. Published and then undone, or
// never published: either way no VM is left without a record (the crash e2e found one).
grpc::Status AgentService::DefineVm(grpc::ServerContext* ctx, const v1::DefineVmRequest* req,
                                    v1::DefineVmResponse* resp) {
  return once<v1::DefineVmRequest, v1::DefineVmResponse>(
      "DefineVm", *req, resp, [&](v1::DefineVmResponse* out) -> Status {
        if (!req->has_spec()) return invalid_argument("spec", "required");
        auto spec = wire::from_proto(req->spec(), "spec");
        if (!spec) return tl::unexpected(spec.error());
        if (auto st = model::validate(*spec); !st) {
          Error e = st.error();
          if (!e.field.empty()) e.field = "spec." + e.field;
          return tl::unexpected(e);
        }
        auto gone = [&] { return ctx != nullptr && ctx->IsCancelled(); };
        if (gone()) return make_error(ErrorCode::unavailable, "the caller went away");
        auto status = hv_.define(*spec);
        if (!status) return tl::unexpected(status.error());
        if (gone()) {
          auto undone = hv_.undefine(spec->name);
          service_log()->warn("define undone: the caller went away name={} undone={}", spec->name,
                              undone ? "yes" : undone.error().to_string());
          return make_error(ErrorCode::unavailable, "the caller went away; the define was undone");
        }
        *out->mutable_vm() = wire::to_proto(*status);
        service_log()->info("vm defined name={} uuid={}", status->spec.name, status->spec.uuid);
        return {};
      });
}

Status AgentService::start_vm(const std::string& name, const std::string& cpu_model,
                              v1::VmStatus* out) {
  if (auto st = model::validate_name("name", name); !st) return st;
  if (auto st = model::validate_cpu_model("cpu_model", cpu_model); !st) return st;
  auto s = hv_.status(name);
  if (!s) return tl::unexpected(s.error());
  if (!has_process(s->state)) {
    // The manager's CPU model for this start (its cluster's baseline): a stopped VM adopts
    // it now, so its next QEMU runs with it.
    if (!cpu_model.empty())
      if (auto st = hv_.adopt_cpu_model(name, cpu_model); !st) return st;
    if (auto st = hv_.start(name); !st) return st;
    service_log()->info("vm started name={}", name);
  }
  return current(name, out);
}

Status AgentService::stop_vm(const std::string& name, bool force, uint32_t timeout_ms,
                             v1::VmStatus* out) {
  if (auto st = model::validate_name("name", name); !st) return st;
  auto s = hv_.status(name);
  if (!s) return tl::unexpected(s.error());
  if (has_process(s->state)) {
    if (force) {
      if (auto st = hv_.force_off(name); !st) return st;
    } else {
      auto timeout = std::chrono::milliseconds(timeout_ms ? timeout_ms : kDefaultShutdownTimeoutMs);
      if (auto st = hv_.shutdown(name, timeout); !st) return st;
    }
    service_log()->info("vm stopped name={} force={}", name, force);
  }
  return current(name, out);
}

Status AgentService::pause_vm(const std::string& name, bool pause, v1::VmStatus* out) {
  if (auto st = model::validate_name("name", name); !st) return st;
  auto s = hv_.status(name);
  if (!s) return tl::unexpected(s.error());
  auto target = pause ? model::VmState::paused : model::VmState::running;
  auto source = pause ? model::VmState::running : model::VmState::paused;
  if (s->state != target) {
    if (s->state != source) {
      return make_error(ErrorCode::failed_precondition,
                        fmt::format("vm {} is {}; {} needs it {}", name, model::to_string(s->state),
                                    pause ? "pause" : "resume", model::to_string(source)));
    }
    if (auto st = pause ? hv_.pause(name) : hv_.resume(name); !st) return st;
  }
  return current(name, out);
}

grpc::Status AgentService::StartVm(grpc::ServerContext*, const v1::StartVmRequest* req,
                                   v1::StartVmResponse* resp) {
  return once<v1::StartVmRequest, v1::StartVmResponse>(
      "StartVm", *req, resp,
      [&](v1::StartVmResponse* out) {
        return start_vm(req->name(), req->cpu_model(), out->mutable_vm());
      });
}

grpc::Status AgentService::ShutdownVm(grpc::ServerContext*, const v1::ShutdownVmRequest* req,
                                      v1::ShutdownVmResponse* resp) {
  return once<v1::ShutdownVmRequest, v1::ShutdownVmResponse>(
      "ShutdownVm", *req, resp, [&](v1::ShutdownVmResponse* out) {
        return stop_vm(req->name(), false, req->timeout_ms(), out->mutable_vm());
      });
}

grpc::Status AgentService::ForceOffVm(grpc::ServerContext*, const v1::ForceOffVmRequest* req,
                                      v1::ForceOffVmResponse* resp) {
  return once<v1::ForceOffVmRequest, v1::ForceOffVmResponse>(
      "ForceOffVm", *req, resp, [&](v1::ForceOffVmResponse* out) {
        return stop_vm(req->name(), true, 0, out->mutable_vm());
      });
}

grpc::Status AgentService::ChangeCdrom(grpc::ServerContext*, const v1::ChangeCdromRequest* req,
                                       v1::ChangeCdromResponse* resp) {
  return once<v1::ChangeCdromRequest, v1::ChangeCdromResponse>(
      "ChangeCdrom", *req, resp, [&](v1::ChangeCdromResponse* out) -> Status {
        if (auto st = model::validate_name("name", req->name()); !st) return st;
        if (!req->image().empty())
          if (auto st = model::validate_image_name("image", req->image()); !st) return st;
        if (auto st = hv_.change_cdrom(req->name(), req->image()); !st) return st;
        return current(req->name(), out->mutable_vm());
      });
}

grpc::Status AgentService::ResizeDisk(grpc::ServerContext*, const v1::ResizeDiskRequest* req,
                                      v1::ResizeDiskResponse* resp) {
  return once<v1::ResizeDiskRequest, v1::ResizeDiskResponse>(
      "ResizeDisk", *req, resp, [&](v1::ResizeDiskResponse* out) -> Status {
        if (auto st = model::validate_name("name", req->name()); !st) return st;
        if (auto st = model::validate_name("disk", req->disk()); !st) return st;
        auto size = hv_.resize_disk(req->name(), req->disk(), req->size_bytes());
        if (!size) return tl::unexpected(size.error());
        out->set_size_bytes(*size);
        return current(req->name(), out->mutable_vm());
      });
}

grpc::Status AgentService::AttachDisk(grpc::ServerContext*, const v1::AttachDiskRequest* req,
                                      v1::AttachDiskResponse* resp) {
  return once<v1::AttachDiskRequest, v1::AttachDiskResponse>(
      "AttachDisk", *req, resp, [&](v1::AttachDiskResponse* out) -> Status {
        if (auto st = model::validate_name("name", req->name()); !st) return st;
        auto disk = hv_.attach_disk(req->name(), wire::from_proto(req->disk()));
        if (!disk) return tl::unexpected(disk.error());
        *out->mutable_disk() = wire::to_proto(*disk);
        return current(req->name(), out->mutable_vm());
      });
}

grpc::Status AgentService::DetachDisk(grpc::ServerContext*, const v1::DetachDiskRequest* req,
                                      v1::DetachDiskResponse* resp) {
  return once<v1::DetachDiskRequest, v1::DetachDiskResponse>(
      "DetachDisk", *req, resp, [&](v1::DetachDiskResponse* out) -> Status {
        if (auto st = model::validate_name("name", req->name()); !st) return st;
        if (auto st = model::validate_name("disk", req->disk()); !st) return st;
        if (auto st = hv_.detach_disk(req->name(), req->disk()); !st) return st;
        return current(req->name(), out->mutable_vm());
      });
}

grpc::Status AgentService::AttachNic(grpc::ServerContext*, const v1::AttachNicRequest* req,
                                     v1::AttachNicResponse* resp) {
  return once<v1::AttachNicRequest, v1::AttachNicResponse>(
      "AttachNic", *req, resp, [&](v1::AttachNicResponse* out) -> Status {
        if (auto st = model::validate_name("name", req->name()); !st) return st;
        auto in = wire::from_proto(req->nic(), "nic");
        if (!in) return tl::unexpected(in.error());
        auto nic = hv_.attach_nic(req->name(), *in);
        if (!nic) return tl::unexpected(nic.error());
        *out->mutable_nic() = wire::to_proto(*nic);
        return current(req->name(), out->mutable_vm());
      });
}

grpc::Status AgentService::DetachNic(grpc::ServerContext*, const v1::DetachNicRequest* req,
                                     v1::DetachNicResponse* resp) {
  return once<v1::DetachNicRequest, v1::DetachNicResponse>(
      "DetachNic", *req, resp, [&](v1::DetachNicResponse* out) -> Status {
        if (auto st = model::validate_name("name", req->name()); !st) return st;
        if (auto st = model::validate_mac("mac", req->mac()); !st) return st;
        if (auto st = hv_.detach_nic(req->name(), req->mac()); !st) return st;
        return current(req->name(), out->mutable_vm());
      });
}

grpc::Status AgentService::ReadUefiVars(grpc::ServerContext*, const v1::ReadUefiVarsRequest* req,
                                        v1::ReadUefiVarsResponse* resp) {
  if (auto st = model::validate_name("name", req->name()); !st)
    return wire::to_grpc_status(st.error());
  auto vars = hv_.read_uefi_vars(req->name());
  if (!vars) return wire::to_grpc_status(vars.error());
  resp->set_vars(std::move(*vars));
  return grpc::Status::OK;
}

grpc::Status AgentService::WriteUefiVars(grpc::ServerContext*, const v1::WriteUefiVarsRequest* req,
                                         v1::WriteUefiVarsResponse* resp) {
  return once<v1::WriteUefiVarsRequest, v1::WriteUefiVarsResponse>(
      "WriteUefiVars", *req, resp, [&](v1::WriteUefiVarsResponse*) -> Status {
        if (auto st = model::validate_name("name", req->name()); !st) return st;
        return hv_.write_uefi_vars(req->name(), req->vars());
      });
}

grpc::Status AgentService::RebootVm(grpc::ServerContext*, const v1::RebootVmRequest* req,
                                    v1::RebootVmResponse* resp) {
  return once<v1::RebootVmRequest, v1::RebootVmResponse>(
      "RebootVm", *req, resp, [&](v1::RebootVmResponse* out) -> Status {
        if (auto st = model::validate_name("name", req->name()); !st) return st;
        auto s = hv_.status(req->name());
        if (!s) return tl::unexpected(s.error());
        if (s->state != model::VmState::running && s->state != model::VmState::paused) {
          return make_error(ErrorCode::failed_precondition,
                            fmt::format("vm {} is {}; reboot needs it running", req->name(),
                                        model::to_string(s->state)));
        }
        if (auto st = hv_.reboot(req->name()); !st) return st;
        return current(req->name(), out->mutable_vm());
      });
}

grpc::Status AgentService::PauseVm(grpc::ServerContext*, const v1::PauseVmRequest* req,
                                   v1::PauseVmResponse* resp) {
  return once<v1::PauseVmRequest, v1::PauseVmResponse>(
      "PauseVm", *req, resp,
      [&](v1::PauseVmResponse* out) { return pause_vm(req->name(), true, out->mutable_vm()); });
}

grpc::Status AgentService::ResumeVm(grpc::ServerContext*, const v1::ResumeVmRequest* req,
                                    v1::ResumeVmResponse* resp) {
  return once<v1::ResumeVmRequest, v1::ResumeVmResponse>(
      "ResumeVm", *req, resp,
      [&](v1::ResumeVmResponse* out) { return pause_vm(req->name(), false, out->mutable_vm()); });
}

grpc::Status AgentService::UndefineVm(grpc::ServerContext*, const v1::UndefineVmRequest* req,
                                      v1::UndefineVmResponse* resp) {
  return once<v1::UndefineVmRequest, v1::UndefineVmResponse>(
      "UndefineVm", *req, resp, [&](v1::UndefineVmResponse*) -> Status {
        if (auto st = model::validate_name("name", req->name()); !st) return st;
        if (auto st = hv_.undefine(req->name(), req->delete_shared_disks()); !st) return st;
        service_log()->info("vm undefined name={} delete_shared_disks={}", req->name(),
                            req->delete_shared_disks());
        return {};
      });
}

grpc::Status AgentService::DeleteImage(grpc::ServerContext*, const v1::DeleteImageRequest* req,
                                       v1::DeleteImageResponse* resp) {
  return once<v1::DeleteImageRequest, v1::DeleteImageResponse>(
      "DeleteImage", *req, resp, [&](v1::DeleteImageResponse*) -> Status {
        if (!opts_.images) return make_error(ErrorCode::unavailable, "no image store");
        if (auto st = model::validate_image_name("name", req->name()); !st) return st;
        // The store knows the disks made on an image; the CD-ROM's medium (and a direct
        // boot's kernel and initrd) are known only from the VMs' specs: the next start of
        // such a VM would fail without its image.
        for (const auto& vm : hv_.list()) {
          const auto& spec = vm.spec;
          const bool uses = spec.cdrom == req->name() ||
                            (spec.kernel_boot && (spec.kernel_boot->kernel == req->name() ||
                                                  spec.kernel_boot->initrd == req->name()));
          if (uses)
            return make_error(ErrorCode::failed_precondition,
                              "image " + req->name() + " is used by VM " + spec.name +
                                  (spec.cdrom == req->name() ? " (in its CD-ROM)"
                                                             : " (its kernel boot)"));
        }
        if (auto st = opts_.images->delete_image(req->name()); !st) return st;
        service_log()->info("image deleted name={}", req->name());
        return {};
      });
}

grpc::Status AgentService::WriteConsole(grpc::ServerContext*, const v1::WriteConsoleRequest* req,
                                        v1::WriteConsoleResponse* resp) {
  return once_in<v1::WriteConsoleRequest, v1::WriteConsoleResponse>(
      *console_log_, "WriteConsole", *req, resp, [&](v1::WriteConsoleResponse*) -> Status {
        if (auto st = model::validate_name("name", req->name()); !st) return st;
        if (req->data().size() > 65536) {
          return make_error(ErrorCode::payload_too_large, "at most 65536 bytes per write", "data");
        }
        return hv_.console_write(req->name(), req->data());
      });
}

grpc::Status AgentService::GuestAgentCommand(grpc::ServerContext*,
                                             const v1::GuestAgentCommandRequest* req,
                                             v1::GuestAgentCommandResponse* resp) {
  return once<v1::GuestAgentCommandRequest, v1::GuestAgentCommandResponse>(
      "GuestAgentCommand", *req, resp, [&](v1::GuestAgentCommandResponse* out) -> Status {
        if (auto st = model::validate_name("name", req->name()); !st) return st;
        auto j = parse_json(req->command_json(), JsonLimits{.max_depth = 16, .max_values = 10000});
        if (!j) return invalid_argument("command_json", "not JSON: " + j.error().message);
        if (!j->is_object() || !j->contains("execute") || !(*j)["execute"].is_string())
          return invalid_argument("command_json", "must be an object with a string \"execute\"");
        uint32_t ms = req->timeout_ms() ? std::min<uint32_t>(req->timeout_ms(), 300000) : 10000;
        auto reply =
            hv_.guest_agent(req->name(), req->command_json(), std::chrono::milliseconds(ms));
        if (!reply) return tl::unexpected(reply.error());
        out->set_reply_json(*reply);
        return {};
      });
}

// once<> for the RPCs in agent_service_snapshots.cc, agent_service_backups.cc and
// agent_service_migration.cc.
#define STRATA_ONCE_FOR(REQ, RESP)                                                          \
  template grpc::Status AgentService::once<v1::REQ, v1::RESP>(                              \
      const char*, const v1::REQ&, v1::RESP*, const std::function<Status(v1::RESP*)>&);
STRATA_ONCE_FOR(CreateSnapshotRequest, CreateSnapshotResponse)
STRATA_ONCE_FOR(RevertSnapshotRequest, RevertSnapshotResponse)
STRATA_ONCE_FOR(DeleteSnapshotRequest, DeleteSnapshotResponse)
STRATA_ONCE_FOR(CreateBackupRequest, CreateBackupResponse)
STRATA_ONCE_FOR(RestoreBackupRequest, RestoreBackupResponse)
STRATA_ONCE_FOR(PrepareMigrationRequest, PrepareMigrationResponse)
STRATA_ONCE_FOR(FinishMigrationRequest, FinishMigrationResponse)
STRATA_ONCE_FOR(AbortMigrationRequest, AbortMigrationResponse)
STRATA_ONCE_FOR(ConfirmMigrationRequest, ConfirmMigrationResponse)
STRATA_ONCE_FOR(CancelMigrationRequest, CancelMigrationResponse)
STRATA_ONCE_FOR(SwitchoverMigrationRequest, MigrationOutcome)
STRATA_ONCE_FOR(PrepareRecoverMigrationRequest, PrepareRecoverMigrationResponse)
STRATA_ONCE_FOR(ResumeMigrationRequest, ResumeMigrationResponse)
#undef STRATA_ONCE_FOR

}  // namespace strata::agent::service
