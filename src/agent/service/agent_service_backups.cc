// AgentService: backups of a VM's disks into a repository and restores from one
// (CreateBackup, RestoreBackup) over Hypervisor::backup / restore_disks
// (docs/internals/backup.md). Both go through the request-id log (once<>).
#include "strata/agent/service/agent_service.h"
#include "strata/common/log.h"
#include "strata/model/validation.h"
#include "strata/wire/status.h"

namespace strata::agent::service {

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

}  // namespace

grpc::Status AgentService::CreateBackup(grpc::ServerContext*, const v1::CreateBackupRequest* req,
                                        v1::CreateBackupResponse* resp) {
  return once<v1::CreateBackupRequest, v1::CreateBackupResponse>(
      "CreateBackup", *req, resp, [&](v1::CreateBackupResponse* out) -> Status {
        if (auto st = model::validate_name("vm", req->vm()); !st) return st;
        if (auto st = validate_repo(req->repo()); !st) return st;
        if (auto st = validate_id(req->backup_id()); !st) return st;
        if (auto st = validate_repo_key(req->repo_key()); !st) return st;
        auto b = hv_.backup(
            req->vm(), BackupRequest{req->repo(), req->backup_id(), req->full(), req->repo_key()});
        if (!b) return tl::unexpected(b.error());
        out->set_kind(b->kind);
        out->set_parent(b->parent);
        out->set_full_reason(b->full_reason);
        out->set_frozen(b->frozen);
        out->set_bytes_read(b->bytes_read);
        out->set_bytes_new(b->bytes_new);
        out->set_disk_bytes(b->disk_bytes);
        backups_log()->info("backup created vm={} id={} kind={} bytes_new={}", req->vm(),
                            req->backup_id(), b->kind, b->bytes_new);
        return {};
      });
}

grpc::Status AgentService::RestoreBackup(grpc::ServerContext*, const v1::RestoreBackupRequest* req,
                                         v1::RestoreBackupResponse* resp) {
  return once<v1::RestoreBackupRequest, v1::RestoreBackupResponse>(
      "RestoreBackup", *req, resp, [&](v1::RestoreBackupResponse*) -> Status {
        if (auto st = model::validate_name("vm", req->vm()); !st) return st;
        if (auto st = validate_repo(req->repo()); !st) return st;
        if (auto st = validate_id(req->backup_id()); !st) return st;
        if (auto st = validate_repo_key(req->repo_key()); !st) return st;
        if (auto st = hv_.restore_disks(req->vm(), req->repo(), req->backup_id(), req->repo_key());
            !st)
          return st;
        backups_log()->info("backup restored vm={} id={}", req->vm(), req->backup_id());
        return {};
      });
}

}  // namespace strata::agent::service
