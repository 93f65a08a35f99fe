// AgentService: CloneVm, a new VM from a stopped VM's disks (Hypervisor::clone), with the
// copy's progress streamed. A retry is recognised by the VM it made (same name and uuid),
// not through the request-id log: the log keeps unary answers, this one is a stream.
#include "strata/agent/service/agent_service.h"
#include "strata/agent/service/request_log.h"
#include "strata/common/log.h"
#include "strata/model/validation.h"
#include "strata/wire/status.h"
#include "strata/wire/vm_status.h"

namespace strata::agent::service {

grpc::Status AgentService::CloneVm(grpc::ServerContext* ctx, const v1::CloneVmRequest* req,
                                   grpc::ServerWriter<v1::CloneProgress>* writer) {
  static auto log = logger("agent.clone");
  if (auto st = validate_request_id(req->request_id()); !st)
    return wire::to_grpc_status(st.error());
  if (auto st = model::validate_name("source", req->source()); !st)
    return wire::to_grpc_status(st.error());
  if (!req->has_spec()) return wire::to_grpc_status(invalid_argument("spec", "required").value());
  auto spec = wire::from_proto(req->spec(), "spec");
  if (!spec) return wire::to_grpc_status(spec.error());
  if (spec->uuid.empty())
    return wire::to_grpc_status(invalid_argument("spec.uuid", "required for a clone").value());
  if (auto st = model::validate(*spec); !st) {
    Error e = st.error();
    if (!e.field.empty()) e.field = "spec." + e.field;
    return wire::to_grpc_status(e);
  }
  // Done before (a retry): the clone exists with this uuid.
  if (auto existing = hv_.status(spec->name); existing) {
    if (existing->spec.uuid != spec->uuid)
      return wire::to_grpc_status(
          Error{ErrorCode::already_exists, "VM exists: " + spec->name, "spec.name"});
    v1::CloneProgress last;
    last.set_done(1);
    last.set_total(1);
    *last.mutable_vm() = wire::to_proto(*existing);
    writer->Write(last);
    return grpc::Status::OK;
  }
  auto made = hv_.clone(req->source(), *spec, req->linked(), [&](uint64_t done, uint64_t total) {
    if (ctx && ctx->IsCancelled()) return;
    v1::CloneProgress p;
    p.set_done(done);
    p.set_total(total);
    writer->Write(p);
  });
  if (!made) return wire::to_grpc_status(made.error());
  v1::CloneProgress last;
  last.set_done(1);
  last.set_total(1);
  *last.mutable_vm() = wire::to_proto(*made);
  writer->Write(last);
  log->info("vm cloned name={} source={} linked={} request={}", spec->name, req->source(),
            req->linked(), req->request_id());
  return grpc::Status::OK;
}

}  // namespace strata::agent::service
