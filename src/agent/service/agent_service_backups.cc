// AgentService: backups of a VM's disks into a repository and restores from one
// (CreateBackup, RestoreBackup, and BackupVm, RestoreVmDisks: the same with their progress
// streamed) over Hypervisor::backup / restore_disks (docs/internals/backup.md). All go
// through the request-id log (once<>).
#include <chrono>
#include <functional>

#include "strata/agent/service/agent_service.h"
#include "strata/common/log.h"
#include "strata/model/validation.h"
#include "strata/wire/status.h"

namespace strata::agent::service {

using namespace std::chrono_literals;

namespace {

auto backups_log() {
  static auto l = logger("agent.backups");
  return l;
}

// The repository path comes from the manager (its configuration); still only an absolute
// path without "." or ".." components is accepted.
Status validate_repo(const std::string& repo) {
  if (repo.empty() || repo.front() != '/' || repo.size() > 4096)
    return invalid_argument("repo", "must be an absolute path");
  size_t start = 1;
  while (start <= repo.size()) {
    size_t end = repo.find('/', start);
    if (end == std::string::npos) end = repo.size();
    std::string part = repo.substr(start, end - start);
    if (part == "." || part == "..") return invalid_argument("repo", "must not contain . or ..");
    start = end + 1;
  }
  for (char c : repo)
    if (static_cast<unsigned char>(c) < 0x20) return invalid_argument("repo", "control character");
  return {};
}

Status validate_id(const std::string& id) {
  if (id.empty() || id.size() > 64) return invalid_argument("backup_id", "must be 1-64 characters");
  for (char c : id)
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
      return invalid_argument("backup_id", "only a-z, 0-9 and '-'");
  if (id.front() == '-') return invalid_argument("backup_id", "must start with a letter or digit");
  return {};
}

// An encrypted repository's key: exactly 32 bytes (never echoed in the message).
Status validate_repo_key(const std::string& key) {
  if (!key.empty() && key.size() != 32)
    return invalid_argument("repo_key", "must be empty (plain repository) or 32 bytes");
  return {};
}

// Throttles a copy's progress to a stream: a message when the copy has moved at least a
// hundredth of the total or 250 ms have passed, never after the caller went away.
class ProgressWriter {
 public:
  ProgressWriter(grpc::ServerContext* ctx, grpc::ServerWriter<v1::BackupProgress>* writer)
      : ctx_(ctx), writer_(writer) {}
  void operator()(uint64_t done, uint64_t total) {
    if (ctx_ && ctx_->IsCancelled()) return;
    auto now = std::chrono::steady_clock::now();
    if (sent_ && done < total && done - last_done_ < total / 100 && now - last_at_ < 250ms) return;
    v1::BackupProgress p;
    p.set_done(done);
    p.set_total(total);
    writer_->Write(p);
    sent_ = true;
    last_done_ = done;
    last_at_ = now;
  }

 private:
  grpc::ServerContext* ctx_;
  grpc::ServerWriter<v1::BackupProgress>* writer_;
  bool sent_ = false;
  uint64_t last_done_ = 0;
  std::chrono::steady_clock::time_point last_at_;
};

}  // namespace

grpc::Status AgentService::backup_vm(const v1::CreateBackupRequest& req,
                                     v1::CreateBackupResponse* resp,
                                     const BackupProgressCallback& progress) {
  return once<v1::CreateBackupRequest, v1::CreateBackupResponse>(
      "CreateBackup", req, resp, [&](v1::CreateBackupResponse* out) -> Status {
        if (auto st = model::validate_name("vm", req.vm()); !st) return st;
        if (auto st = validate_repo(req.repo()); !st) return st;
        if (auto st = validate_id(req.backup_id()); !st) return st;
        if (auto st = validate_repo_key(req.repo_key()); !st) return st;
        auto b = hv_.backup(req.vm(),
                            BackupRequest{req.repo(), req.backup_id(), req.full(), req.repo_key()},
                            progress);
        if (!b) return tl::unexpected(b.error());
        out->set_kind(b->kind);
        out->set_parent(b->parent);
        out->set_full_reason(b->full_reason);
        out->set_frozen(b->frozen);
        out->set_bytes_read(b->bytes_read);
        out->set_bytes_new(b->bytes_new);
        out->set_disk_bytes(b->disk_bytes);
        backups_log()->info("backup created vm={} id={} kind={} bytes_new={}", req.vm(),
                            req.backup_id(), b->kind, b->bytes_new);
        return {};
      });
}

grpc::Status AgentService::restore_vm_disks(const v1::RestoreBackupRequest& req,
                                            v1::RestoreBackupResponse* resp,
                                            const BackupProgressCallback& progress) {
  return once<v1::RestoreBackupRequest, v1::RestoreBackupResponse>(
      "RestoreBackup", req, resp, [&](v1::RestoreBackupResponse*) -> Status {
        if (auto st = model::validate_name("vm", req.vm()); !st) return st;
        if (auto st = validate_repo(req.repo()); !st) return st;
        if (auto st = validate_id(req.backup_id()); !st) return st;
        if (auto st = validate_repo_key(req.repo_key()); !st) return st;
        if (auto st =
                hv_.restore_disks(req.vm(), req.repo(), req.backup_id(), req.repo_key(), progress);
            !st)
          return st;
        backups_log()->info("backup restored vm={} id={}", req.vm(), req.backup_id());
        return {};
      });
}

grpc::Status AgentService::CreateBackup(grpc::ServerContext*, const v1::CreateBackupRequest* req,
                                        v1::CreateBackupResponse* resp) {
  return backup_vm(*req, resp, {});
}

grpc::Status AgentService::RestoreBackup(grpc::ServerContext*, const v1::RestoreBackupRequest* req,
                                         v1::RestoreBackupResponse* resp) {
  return restore_vm_disks(*req, resp, {});
}

grpc::Status AgentService::BackupVm(grpc::ServerContext* ctx, const v1::CreateBackupRequest* req,
                                    grpc::ServerWriter<v1::BackupProgress>* writer) {
  ProgressWriter progress(ctx, writer);
  v1::BackupProgress last;
  auto st = backup_vm(*req, last.mutable_result(), std::ref(progress));
  if (!st.ok()) return st;
  last.set_done(last.result().disk_bytes());
  last.set_total(last.result().disk_bytes());
  last.set_finished(true);
  writer->Write(last);
  return grpc::Status::OK;
}

grpc::Status AgentService::RestoreVmDisks(grpc::ServerContext* ctx,
                                          const v1::RestoreBackupRequest* req,
                                          grpc::ServerWriter<v1::BackupProgress>* writer) {
  ProgressWriter progress(ctx, writer);
  v1::RestoreBackupResponse resp;
  auto st = restore_vm_disks(*req, &resp, std::ref(progress));
  if (!st.ok()) return st;
  v1::BackupProgress last;
  last.set_finished(true);
  writer->Write(last);
  return grpc::Status::OK;
}

}  // namespace strata::agent::service
