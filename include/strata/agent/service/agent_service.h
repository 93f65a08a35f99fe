// The agent's gRPC service (strata.agent.v1.AgentService) over a Hypervisor. It validates
// input (model::validate) before touching the driver, maps errors in one place
// (grpc_status.h), makes operations naturally idempotent, and deduplicates mutating
// requests by request_id (request_log.h). Host facts come from injected providers so the
// service knows nothing about /proc or QEMU.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "strata/agent/hypervisor.h"
#include "strata/agent/image_store.h"
#include "strata/agent/service/request_log.h"
#include "strata/agent/v1/agent.grpc.pb.h"
#include "strata/common/clock.h"
#include "strata/common/error.h"
#include "strata/wire/api_level.h"

namespace strata::agent::service {

class EventHub;

struct AgentServiceOptions {
  // Folder for the request-id log (<state_dir>/request-ids.jsonl); empty keeps it in memory.
  std::string state_dir;
  size_t request_log_capacity = 4096;
  // Console input (WriteConsole) is deduplicated in its own in-memory log of this many ids:
  // keystrokes are many and cheap to lose on a restart, and must neither push lifecycle
  // request ids out of the persisted log nor cost an fsync each.
  size_t console_request_log_capacity = 1024;
  std::string agent_version;
  // The agent API level served (strata/wire/api_level.h). Lower only to behave as an
  // older agent does, for tests of mixed versions (`strata-agent serve --api-level`): the
  // fields and RPCs of later levels are then ignored or unimplemented, as there.
  uint32_t api_level = wire::kApiLevel;
  std::string hostname;
  std::string accelerator;       // "kvm" | "tcg", reported by Health
  ImageStore* images = nullptr;  // not owned; null makes ListImages UNAVAILABLE
  // Host facts. Null providers make GetInventory UNAVAILABLE / leave GetMetrics.host empty.
  std::function<Result<v1::HostInventory>()> inventory;
  std::function<Result<v1::HostMetrics>()> host_metrics;
  ClockPtr clock;  // defaults to system_clock()
};

class AgentService final : public v1::AgentService::Service {
 public:
  // `hypervisor` must outlive the service.
  static Result<std::unique_ptr<AgentService>> create(Hypervisor& hypervisor,
                                                      AgentServiceOptions options);
  AgentService(Hypervisor& hypervisor, AgentServiceOptions options, RequestLogPtr log);
  ~AgentService() override;

  // Ends every open stream (console, events) so grpc::Server::Shutdown can complete.
  void shutdown();

  grpc::Status GetInventory(grpc::ServerContext*, const v1::GetInventoryRequest*,
                            v1::GetInventoryResponse*) override;
  grpc::Status GetMetrics(grpc::ServerContext*, const v1::GetMetricsRequest*,
                          v1::GetMetricsResponse*) override;
  grpc::Status ListVms(grpc::ServerContext*, const v1::ListVmsRequest*,
                       v1::ListVmsResponse*) override;
  grpc::Status GetVm(grpc::ServerContext*, const v1::GetVmRequest*, v1::GetVmResponse*) override;
  grpc::Status DefineVm(grpc::ServerContext*, const v1::DefineVmRequest*,
                        v1::DefineVmResponse*) override;
  grpc::Status StartVm(grpc::ServerContext*, const v1::StartVmRequest*,
                       v1::StartVmResponse*) override;
  grpc::Status ShutdownVm(grpc::ServerContext*, const v1::ShutdownVmRequest*,
                          v1::ShutdownVmResponse*) override;
  grpc::Status ForceOffVm(grpc::ServerContext*, const v1::ForceOffVmRequest*,
                          v1::ForceOffVmResponse*) override;
  grpc::Status RebootVm(grpc::ServerContext*, const v1::RebootVmRequest*,
                        v1::RebootVmResponse*) override;
  grpc::Status ChangeCdrom(grpc::ServerContext*, const v1::ChangeCdromRequest*,
                           v1::ChangeCdromResponse*) override;
  grpc::Status ResizeDisk(grpc::ServerContext*, const v1::ResizeDiskRequest*,
                          v1::ResizeDiskResponse*) override;
  grpc::Status AttachDisk(grpc::ServerContext*, const v1::AttachDiskRequest*,
                          v1::AttachDiskResponse*) override;
  grpc::Status DetachDisk(grpc::ServerContext*, const v1::DetachDiskRequest*,
                          v1::DetachDiskResponse*) override;
  grpc::Status AttachNic(grpc::ServerContext*, const v1::AttachNicRequest*,
                         v1::AttachNicResponse*) override;
  grpc::Status DetachNic(grpc::ServerContext*, const v1::DetachNicRequest*,
                         v1::DetachNicResponse*) override;
  grpc::Status ReadUefiVars(grpc::ServerContext*, const v1::ReadUefiVarsRequest*,
                            v1::ReadUefiVarsResponse*) override;
  grpc::Status WriteUefiVars(grpc::ServerContext*, const v1::WriteUefiVarsRequest*,
                             v1::WriteUefiVarsResponse*) override;
  grpc::Status PauseVm(grpc::ServerContext*, const v1::PauseVmRequest*,
                       v1::PauseVmResponse*) override;
  grpc::Status ResumeVm(grpc::ServerContext*, const v1::ResumeVmRequest*,
                        v1::ResumeVmResponse*) override;
  grpc::Status UndefineVm(grpc::ServerContext*, const v1::UndefineVmRequest*,
                          v1::UndefineVmResponse*) override;
  grpc::Status ConsoleTail(grpc::ServerContext*, const v1::ConsoleTailRequest*,
                           v1::ConsoleTailResponse*) override;
  grpc::Status StreamConsole(grpc::ServerContext*, const v1::StreamConsoleRequest*,
                             grpc::ServerWriter<v1::ConsoleChunk>*) override;
  grpc::Status WriteConsole(grpc::ServerContext*, const v1::WriteConsoleRequest*,
                            v1::WriteConsoleResponse*) override;
  grpc::Status StreamDisplay(
      grpc::ServerContext*,
      grpc::ServerReaderWriter<v1::DisplayChunk, v1::DisplayChunk>*) override;
  grpc::Status GuestAgentCommand(grpc::ServerContext*, const v1::GuestAgentCommandRequest*,
                                 v1::GuestAgentCommandResponse*) override;
  grpc::Status ListImages(grpc::ServerContext*, const v1::ListImagesRequest*,
                          v1::ListImagesResponse*) override;
  grpc::Status PutImage(grpc::ServerContext*, grpc::ServerReader<v1::PutImageChunk>*,
                        v1::PutImageResponse*) override;
  grpc::Status ReadDisk(grpc::ServerContext*, const v1::ReadDiskRequest*,
                        grpc::ServerWriter<v1::DiskChunk>*) override;
  grpc::Status WriteDisk(grpc::ServerContext*, grpc::ServerReader<v1::DiskChunk>*,
                         v1::WriteDiskResponse*) override;
  grpc::Status DeleteImage(grpc::ServerContext*, const v1::DeleteImageRequest*,
                           v1::DeleteImageResponse*) override;
  grpc::Status WatchEvents(grpc::ServerContext*, const v1::WatchEventsRequest*,
                           grpc::ServerWriter<v1::VmEvent>*) override;
  grpc::Status CloneVm(grpc::ServerContext*, const v1::CloneVmRequest*,
                       grpc::ServerWriter<v1::CloneProgress>*) override;
  grpc::Status CreateSnapshot(grpc::ServerContext*, const v1::CreateSnapshotRequest*,
                              v1::CreateSnapshotResponse*) override;
  grpc::Status ListSnapshots(grpc::ServerContext*, const v1::ListSnapshotsRequest*,
                             v1::ListSnapshotsResponse*) override;
  grpc::Status RevertSnapshot(grpc::ServerContext*, const v1::RevertSnapshotRequest*,
                              v1::RevertSnapshotResponse*) override;
  grpc::Status DeleteSnapshot(grpc::ServerContext*, const v1::DeleteSnapshotRequest*,
                              v1::DeleteSnapshotResponse*) override;
  grpc::Status CreateBackup(grpc::ServerContext*, const v1::CreateBackupRequest*,
                            v1::CreateBackupResponse*) override;
  grpc::Status RestoreBackup(grpc::ServerContext*, const v1::RestoreBackupRequest*,
                             v1::RestoreBackupResponse*) override;
  grpc::Status BackupVm(grpc::ServerContext*, const v1::CreateBackupRequest*,
                        grpc::ServerWriter<v1::BackupProgress>*) override;
  grpc::Status RestoreVmDisks(grpc::ServerContext*, const v1::RestoreBackupRequest*,
                              grpc::ServerWriter<v1::BackupProgress>*) override;
  grpc::Status Health(grpc::ServerContext*, const v1::HealthRequest*, v1::HealthResponse*) override;

  // Live migration (agent_service_migration.cc).
  grpc::Status BeginMigration(grpc::ServerContext*, const v1::BeginMigrationRequest*,
                              v1::BeginMigrationResponse*) override;
  grpc::Status PrepareMigration(grpc::ServerContext*, const v1::PrepareMigrationRequest*,
                                v1::PrepareMigrationResponse*) override;
  grpc::Status PerformMigration(grpc::ServerContext*, const v1::PerformMigrationRequest*,
                                grpc::ServerWriter<v1::MigrationProgress>*) override;
  grpc::Status SwitchoverMigration(grpc::ServerContext*, const v1::SwitchoverMigrationRequest*,
                                   v1::MigrationOutcome*) override;
  grpc::Status FinishMigration(grpc::ServerContext*, const v1::FinishMigrationRequest*,
                               v1::FinishMigrationResponse*) override;
  grpc::Status AbortMigration(grpc::ServerContext*, const v1::AbortMigrationRequest*,
                              v1::AbortMigrationResponse*) override;
  grpc::Status ConfirmMigration(grpc::ServerContext*, const v1::ConfirmMigrationRequest*,
                                v1::ConfirmMigrationResponse*) override;
  grpc::Status CancelMigration(grpc::ServerContext*, const v1::CancelMigrationRequest*,
                               v1::CancelMigrationResponse*) override;
  grpc::Status PrepareRecoverMigration(grpc::ServerContext*,
                                       const v1::PrepareRecoverMigrationRequest*,
                                       v1::PrepareRecoverMigrationResponse*) override;
  grpc::Status ResumeMigration(grpc::ServerContext*, const v1::ResumeMigrationRequest*,
                               v1::ResumeMigrationResponse*) override;

  const RequestLog& request_log() const { return *log_; }
  const RequestLog& console_request_log() const { return *console_log_; }

 private:
  // Runs `run` at most once per request id: a repeat returns the remembered outcome.
  template <typename Req, typename Resp>
  grpc::Status once(const char* method, const Req& request, Resp* response,
                    const std::function<Status(Resp*)>& run);
  // The same, remembered in `log` (the console's own log) instead of the persisted one.
  template <typename Req, typename Resp>
  grpc::Status once_in(RequestLog& log, const char* method, const Req& request, Resp* response,
                       const std::function<Status(Resp*)>& run);
  // A backup or restore, unary or streamed: one request-id log entry per request id.
  grpc::Status backup_vm(const v1::CreateBackupRequest& req, v1::CreateBackupResponse* resp,
                         const BackupProgressCallback& progress);
  grpc::Status restore_vm_disks(const v1::RestoreBackupRequest& req,
                                v1::RestoreBackupResponse* resp,
                                const BackupProgressCallback& progress);
  // Natural idempotency: the state-dependent lifecycle actions.
  Status start_vm(const std::string& name, const std::string& cpu_model, v1::VmStatus* out);
  Status stop_vm(const std::string& name, bool force, uint32_t timeout_ms, v1::VmStatus* out);
  Status pause_vm(const std::string& name, bool pause, v1::VmStatus* out);
  Status current(const std::string& name, v1::VmStatus* out) const;
  // Whether the level served (opts_.api_level) has post-copy migration.
  bool postcopy_level() const {
    return wire::supports(opts_.api_level, wire::AgentFeature::postcopy_migration);
  }

  // Outgoing migrations by VM name: the job runs on its own thread, independent of the
  // PerformMigration stream that started it, so a caller that went away (a manager
  // restart) follows it again with the same request id. A finished job stays until the
  // VM's Confirm/Cancel or the next migration. Lock order: migrations_mu_, then a job's mu.
  struct MigrationJob;
  std::mutex migrations_mu_;
  std::map<std::string, std::shared_ptr<MigrationJob>> migrations_;
  void join_migrations();
  // Forgets the VM's job (after Confirm/Cancel), joining its finished thread.
  void drop_migration_job(const std::string& name);

  Hypervisor& hv_;
  AgentServiceOptions opts_;
  RequestLogPtr log_;
  RequestLogPtr console_log_;  // in memory only
  std::shared_ptr<EventHub> hub_;
  std::atomic<bool> stopping_{false};
  int64_t started_unix_ms_ = 0;
};
using AgentServicePtr = std::unique_ptr<AgentService>;

}  // namespace strata::agent::service
