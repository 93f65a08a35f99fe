// AgentService: disk snapshots of a VM (CreateSnapshot, ListSnapshots, RevertSnapshot,
// DeleteSnapshot) over Hypervisor::snapshot_*. Mutating RPCs go through the request-id
// log like the other lifecycle RPCs (once<>, instantiated in agent_service.cc).
#include "strata/agent/service/agent_service.h"
#include "strata/common/log.h"
#include "strata/model/validation.h"
#include "strata/wire/status.h"

namespace strata::agent::service {

namespace {

auto snapshots_log() {
  static auto l = logger("agent.snapshots");
  return l;
}

void to_proto(const SnapshotInfo& s, v1::Snapshot* out) {
  out->set_name(s.name);
  out->set_parent(s.parent);
  out->set_created_unix_ms(s.created_unix_ms);
  out->set_consistency(s.consistency);
  out->set_vm_state(s.vm_state);
  out->set_current(s.current);
}

Status validate_names(const std::string& vm, const std::string& snap) {
  if (auto st = model::validate_name("vm", vm); !st) return st;
  return model::validate_name("name", snap);
}

}  // namespace

grpc::Status AgentService::CreateSnapshot(grpc::ServerContext*,
                                          const v1::CreateSnapshotRequest* req,
                                          v1::CreateSnapshotResponse* resp) {
  return once<v1::CreateSnapshotRequest, v1::CreateSnapshotResponse>(
      "CreateSnapshot", *req, resp, [&](v1::CreateSnapshotResponse* out) -> Status {
        if (auto st = validate_names(req->vm(), req->name()); !st) return st;
        auto s = hv_.snapshot_create(req->vm(), req->name());
        if (!s) return tl::unexpected(s.error());
        to_proto(*s, out->mutable_snapshot());
        snapshots_log()->info("snapshot created vm={} name={} consistency={}", req->vm(),
                              req->name(), s->consistency);
        return {};
      });
}

grpc::Status AgentService::ListSnapshots(grpc::ServerContext*, const v1::ListSnapshotsRequest* req,
                                         v1::ListSnapshotsResponse* resp) {
  if (auto st = model::validate_name("vm", req->vm()); !st) return wire::to_grpc_status(st.error());
  auto list = hv_.snapshot_list(req->vm());
  if (!list) return wire::to_grpc_status(list.error());
  for (auto& s : *list) to_proto(s, resp->add_snapshots());
  return grpc::Status::OK;
}

grpc::Status AgentService::RevertSnapshot(grpc::ServerContext*,
                                          const v1::RevertSnapshotRequest* req,
                                          v1::RevertSnapshotResponse* resp) {
  return once<v1::RevertSnapshotRequest, v1::RevertSnapshotResponse>(
      "RevertSnapshot", *req, resp, [&](v1::RevertSnapshotResponse*) -> Status {
        if (auto st = validate_names(req->vm(), req->name()); !st) return st;
        if (auto st = hv_.snapshot_revert(req->vm(), req->name()); !st) return st;
        snapshots_log()->info("snapshot reverted vm={} name={}", req->vm(), req->name());
        return {};
      });
}

grpc::Status AgentService::DeleteSnapshot(grpc::ServerContext*,
                                          const v1::DeleteSnapshotRequest* req,
                                          v1::DeleteSnapshotResponse* resp) {
  return once<v1::DeleteSnapshotRequest, v1::DeleteSnapshotResponse>(
      "DeleteSnapshot", *req, resp, [&](v1::DeleteSnapshotResponse*) -> Status {
        if (auto st = validate_names(req->vm(), req->name()); !st) return st;
        if (auto st = hv_.snapshot_delete(req->vm(), req->name()); !st) return st;
        snapshots_log()->info("snapshot deleted vm={} name={}", req->vm(), req->name());
        return {};
      });
}

}  // namespace strata::agent::service
