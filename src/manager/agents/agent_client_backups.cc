// AgentClient: backups and restores (BackupVm / RestoreVmDisks, a stream of the copy's
// progress ending with the outcome), and the unary calls an older agent answers instead.
#include <grpcpp/grpcpp.h>

#include <optional>

#include "strata/wire/call.h"
#include "strata/manager/agents/agent_client.h"

namespace strata::manager {

namespace {

// Reads a progress stream to its end: progress to `on_progress`, the last message (the
// outcome) returned; none when the agent predates the stream (UNIMPLEMENTED).
template <class Reader>
Result<std::optional<pb::BackupProgress>> read_progress(
    Reader& reader, const AgentClient::CopyProgress& on_progress) {
  pb::BackupProgress p;
  std::optional<pb::BackupProgress> last;
  while (reader->Read(&p)) {
    if (p.finished())
      last = p;
    else if (on_progress)
      on_progress(p.done(), p.total());
  }
  grpc::Status st = reader->Finish();
  if (wire::is_unimplemented(st))
    return std::optional<pb::BackupProgress>{};
  if (!st.ok()) return tl::unexpected(error_from_grpc(st));
  if (!last) return make_error(ErrorCode::internal, "the agent's stream ended without its outcome");
  return last;
}

}  // namespace

Result<pb::CreateBackupResponse> AgentClient::create_backup(
    const std::string& request_id, const std::string& vm, const std::string& repo,
    const std::string& backup_id, bool full, std::string_view repo_key,
    std::chrono::milliseconds timeout, const CopyProgress& on_progress) {
  pb::CreateBackupRequest req;
  req.set_request_id(request_id);
  req.set_vm(vm);
  req.set_repo(repo);
  req.set_backup_id(backup_id);
  req.set_full(full);
  req.set_repo_key(std::string(repo_key));
  {
    grpc::ClientContext ctx;
    wire::set_deadline(ctx, timeout);
    auto reader = stub_->BackupVm(&ctx, req);
    auto last = read_progress(reader, on_progress);
    if (!last) return tl::unexpected(last.error());
    if (*last) return (*last)->result();
  }
  // An agent without the stream: the same request (same id) as one call.
  grpc::ClientContext ctx;
  wire::set_deadline(ctx, timeout);
  pb::CreateBackupResponse resp;
  grpc::Status st = stub_->CreateBackup(&ctx, req, &resp);
  if (!st.ok()) return tl::unexpected(error_from_grpc(st));
  return resp;
}

Status AgentClient::restore_backup(const std::string& request_id, const std::string& vm,
                                   const std::string& repo, const std::string& backup_id,
                                   std::string_view repo_key, std::chrono::milliseconds timeout,
                                   const CopyProgress& on_progress) {
  pb::RestoreBackupRequest req;
  req.set_request_id(request_id);
  req.set_vm(vm);
  req.set_repo(repo);
  req.set_backup_id(backup_id);
  req.set_repo_key(std::string(repo_key));
  {
    grpc::ClientContext ctx;
    wire::set_deadline(ctx, timeout);
    auto reader = stub_->RestoreVmDisks(&ctx, req);
    auto last = read_progress(reader, on_progress);
    if (!last) return tl::unexpected(last.error());
    if (*last) return {};
  }
  grpc::ClientContext ctx;
  wire::set_deadline(ctx, timeout);
  pb::RestoreBackupResponse resp;
  grpc::Status st = stub_->RestoreBackup(&ctx, req, &resp);
  if (!st.ok()) return tl::unexpected(error_from_grpc(st));
  return {};
}

}  // namespace strata::manager
