// AgentClient: the live migration phases (BeginMigration ... CancelMigration). The
// manager's migration controller calls them in order; each is idempotent by request id.
#include <grpcpp/grpcpp.h>

#include "strata/wire/call.h"
#include "strata/manager/agents/agent_client.h"

namespace strata::manager {

namespace {

using namespace std::chrono_literals;

// Preparing starts a QEMU and creates disks; finishing waits for the incoming stream's end.
constexpr auto kPhaseDeadline = 90s;

}  // namespace

Result<pb::BeginMigrationResponse> AgentClient::begin_migration(const std::string& name) {
  pb::BeginMigrationRequest req;
  req.set_name(name);
  grpc::ClientContext ctx;
  wire::set_deadline(ctx, timeout_);
  pb::BeginMigrationResponse resp;
  if (auto st = stub_->BeginMigration(&ctx, req, &resp); !st.ok())
    return tl::unexpected(error_from_grpc(st));
  return resp;
}

Result<pb::PrepareMigrationResponse> AgentClient::prepare_migration(
    const std::string& request_id, const pb::BeginMigrationResponse& source,
    const std::string& listen_host, bool tls, bool postcopy) {
  pb::PrepareMigrationRequest req;
  req.set_request_id(request_id);
  *req.mutable_spec() = source.spec();
  req.set_profile_json(source.profile_json());
  req.set_listen_host(listen_host);
  req.set_tls(tls);
  req.set_postcopy(postcopy);
  grpc::ClientContext ctx;
  wire::set_deadline(ctx, kPhaseDeadline);
  pb::PrepareMigrationResponse resp;
  if (auto st = stub_->PrepareMigration(&ctx, req, &resp); !st.ok())
    return tl::unexpected(error_from_grpc(st));
  return resp;
}

Result<pb::MigrationOutcome> AgentClient::perform_migration(
    const pb::PerformMigrationRequest& request, std::chrono::milliseconds deadline,
    const std::function<void(const pb::MigrationProgress&)>& on_progress) {
  grpc::ClientContext ctx;
  wire::set_deadline(ctx, deadline);
  auto reader = stub_->PerformMigration(&ctx, request);
  pb::MigrationProgress p;
  std::optional<pb::MigrationOutcome> outcome;
  while (reader->Read(&p)) {
    if (p.has_outcome()) outcome = p.outcome();
    if (on_progress) on_progress(p);
  }
  grpc::Status st = reader->Finish();
  if (!st.ok()) return tl::unexpected(error_from_grpc(st));
  if (!outcome)
    return make_error(ErrorCode::internal, "the migration stream ended without an outcome");
  return *outcome;
}

Result<pb::FinishMigrationResponse> AgentClient::finish_migration(const std::string& request_id,
                                                                  const std::string& name) {
  pb::FinishMigrationRequest req;
  req.set_request_id(request_id);
  req.set_name(name);
  grpc::ClientContext ctx;
  wire::set_deadline(ctx, kPhaseDeadline);
  pb::FinishMigrationResponse resp;
  if (auto st = stub_->FinishMigration(&ctx, req, &resp); !st.ok())
    return tl::unexpected(error_from_grpc(st));
  return resp;
}

Status AgentClient::abort_migration(const std::string& request_id, const std::string& name) {
  pb::AbortMigrationRequest req;
  req.set_request_id(request_id);
  req.set_name(name);
  grpc::ClientContext ctx;
  wire::set_deadline(ctx, kPhaseDeadline);
  pb::AbortMigrationResponse resp;
  if (auto st = stub_->AbortMigration(&ctx, req, &resp); !st.ok())
    return tl::unexpected(error_from_grpc(st));
  return {};
}

Result<pb::MigrationOutcome> AgentClient::switchover_migration(const std::string& request_id,
                                                               const std::string& name) {
  pb::SwitchoverMigrationRequest req;
  req.set_request_id(request_id);
  req.set_name(name);
  grpc::ClientContext ctx;
  wire::set_deadline(ctx, kPhaseDeadline);
  pb::MigrationOutcome resp;
  if (auto st = stub_->SwitchoverMigration(&ctx, req, &resp); !st.ok())
    return tl::unexpected(error_from_grpc(st));
  return resp;
}

Status AgentClient::confirm_migration(const std::string& request_id, const std::string& name,
                                      std::chrono::milliseconds deadline) {
  pb::ConfirmMigrationRequest req;
  req.set_request_id(request_id);
  req.set_name(name);
  grpc::ClientContext ctx;
  wire::set_deadline(ctx, deadline);
  pb::ConfirmMigrationResponse resp;
  if (auto st = stub_->ConfirmMigration(&ctx, req, &resp); !st.ok())
    return tl::unexpected(error_from_grpc(st));
  return {};
}

Result<pb::VmStatus> AgentClient::cancel_migration(const std::string& request_id,
                                                   const std::string& name) {
  pb::CancelMigrationRequest req;
  req.set_request_id(request_id);
  req.set_name(name);
  grpc::ClientContext ctx;
  wire::set_deadline(ctx, kPhaseDeadline);
  pb::CancelMigrationResponse resp;
  if (auto st = stub_->CancelMigration(&ctx, req, &resp); !st.ok())
    return tl::unexpected(error_from_grpc(st));
  return resp.vm();
}

Result<std::string> AgentClient::prepare_recover_migration(const std::string& request_id,
                                                           const std::string& name,
                                                           const std::string& listen_host) {
  pb::PrepareRecoverMigrationRequest req;
  req.set_request_id(request_id);
  req.set_name(name);
  req.set_listen_host(listen_host);
  grpc::ClientContext ctx;
  wire::set_deadline(ctx, kPhaseDeadline);
  pb::PrepareRecoverMigrationResponse resp;
  if (auto st = stub_->PrepareRecoverMigration(&ctx, req, &resp); !st.ok())
    return tl::unexpected(error_from_grpc(st));
  return resp.recover_uri();
}

Status AgentClient::resume_migration(const std::string& request_id, const std::string& name,
                                     const std::string& recover_uri) {
  pb::ResumeMigrationRequest req;
  req.set_request_id(request_id);
  req.set_name(name);
  req.set_recover_uri(recover_uri);
  grpc::ClientContext ctx;
  wire::set_deadline(ctx, kPhaseDeadline);
  pb::ResumeMigrationResponse resp;
  if (auto st = stub_->ResumeMigration(&ctx, req, &resp); !st.ok())
    return tl::unexpected(error_from_grpc(st));
  return {};
}

}  // namespace strata::manager
