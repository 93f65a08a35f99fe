// Backups in the manager (strata/manager/vms/backup_service.h).
#include "strata/manager/vms/backup_service.h"

#include <fmt/chrono.h>
#include <fmt/format.h>

#include <random>

#include "strata/manager/tasks/task_tracker.h"
#include "strata/model/validation.h"

namespace strata::manager {

namespace {

// A backup reads whole disks; a restore writes them.
constexpr std::chrono::hours kBackupTimeout{12};
constexpr std::chrono::hours kRestoreTimeout{12};

nlohmann::json to_json(const pb::CreateBackupResponse& r) {
  return {{"kind", r.kind()},
          {"parent", r.parent()},
          {"full_reason", r.full_reason()},
          {"frozen", r.frozen()},
          {"bytes_read", r.bytes_read()},
          {"bytes_new", r.bytes_new()},
          {"disk_bytes", r.disk_bytes()}};
}

}  // namespace

BackupService::BackupService(store::Store& store, EventLog& events, ClockPtr clock,
                             AgentLookup agents, std::optional<backup::Repository> repo)
    : store_(store),
      events_(events),
      clock_(std::move(clock)),
      agents_(std::move(agents)),
      repo_(std::move(repo)) {}

BackupService::~BackupService() = default;

Status BackupService::check_configured() const {
  if (!repo_)
    return make_error(ErrorCode::failed_precondition,
                      "no backup repository configured (stratad --backup-repo PATH)");
  return {};
}

std::string BackupService::new_id(const std::string& vm) const {
  std::random_device rd;
  auto t = std::chrono::floor<std::chrono::seconds>(clock_->wall());
  // "<vm>-<utc time>-<4 hex>", cut to the 64 characters an id may have.
  std::string id = fmt::format("{}-{:%Y%m%d-%H%M%S}-{:04x}", vm, t, rd() & 0xffff);
  if (id.size() > 64) id = id.substr(id.size() - 64);
  while (!id.empty() && id.front() == '-') id.erase(0, 1);
  return id;
}

Result<store::TaskRecord> BackupService::record(const std::string& kind, const std::string& target,
                                                const std::string& detail,
                                                const std::string& actor) {
  store::TaskRecord task;
  store::EventRecord audit;
  auto st = store_.transaction([&](store::Store& tx) -> Status {
    auto t = create_task_in(tx, kind, "backup", target, detail);
    if (!t) return tl::unexpected(t.error());
    auto ev = EventLog::append_in(tx, actor, kind, "backup/" + target, "ok", detail);
    if (!ev) return tl::unexpected(ev.error());
    task = *t;
    audit = *ev;
    return {};
  });
  if (!st) return tl::unexpected(st.error());
  events_.published(audit);
  return task;
}

Result<BackupTask> BackupService::create(const std::string& name, bool full,
                                         const std::string& actor) {
  if (auto st = check_configured(); !st) return tl::unexpected(st.error());
  if (auto st = model::validate_name("name", name); !st) return tl::unexpected(st.error());
  auto vm = store_.get_vm_by_name(name);
  if (!vm) return tl::unexpected(vm.error());
  if (vm->deletion_requested)
    return make_error(ErrorCode::failed_precondition, "the VM is being deleted");
  if (!vm->host_id)
    return make_error(ErrorCode::failed_precondition, "the VM is not placed on a host yet");
  const std::string id = new_id(name);
  auto task =
      record("backup.create", id, fmt::format("vm {}{}", name, full ? " (full)" : ""), actor);
  if (!task) return tl::unexpected(task.error());
  workers_.start([this, host = *vm->host_id, name, id, full, task_id = task->id] {
    TaskTracker tasks(store_);
    (void)tasks.update(task_id, "running", 0, "backing up " + name);
    AgentClientPtr client = agents_ ? agents_(host) : nullptr;
    if (!client) {
      (void)tasks.fail(task_id, "the VM's host is not connected");
      return;
    }
    auto r = client->create_backup(task_id, name, repo_->root(), id, full, kBackupTimeout);
    if (!r) {
      (void)tasks.fail(task_id, r.error().to_string());
      return;
    }
    auto result = to_json(*r);
    result["id"] = id;
    (void)tasks.update(task_id, "succeeded", 100, fmt::format("backup {} ({})", id, r->kind()),
                       result);
  });
  return BackupTask{id, name, *task};
}

Result<std::vector<backup::Manifest>> BackupService::list(const std::string& vm) {
  if (auto st = check_configured(); !st) return tl::unexpected(st.error());
  if (!vm.empty())
    if (auto st = model::validate_name("vm", vm); !st) return tl::unexpected(st.error());
  return repo_->list(vm);
}

Result<backup::Manifest> BackupService::show(const std::string& id) {
  if (auto st = check_configured(); !st) return tl::unexpected(st.error());
  if (auto st = backup::validate_backup_id(id); !st) return tl::unexpected(st.error());
  return repo_->read_manifest(id);
}

Result<BackupTask> BackupService::verify(const std::string& id, const std::string& actor) {
  auto m = show(id);
  if (!m) return tl::unexpected(m.error());
  auto task = record("backup.verify", id, "verify", actor);
  if (!task) return tl::unexpected(task.error());
  workers_.start([this, id, task_id = task->id] {
    TaskTracker tasks(store_);
    (void)tasks.update(task_id, "running", 0, "verifying " + id);
    auto rep = repo_->verify(id);
    if (!rep) {
      (void)tasks.fail(task_id, rep.error().to_string());
      return;
    }
    nlohmann::json result = {{"id", id},
                             {"chunks_checked", rep->chunks_checked},
                             {"bytes_checked", rep->bytes_checked},
                             {"problems", rep->problems},
                             {"ok", rep->problems.empty()}};
    if (!rep->problems.empty()) {
      (void)tasks.update(task_id, "failed", 100,
                         fmt::format("backup {}: {} problem(s): {}", id, rep->problems.size(),
                                     rep->problems.front()),
                         result);
      return;
    }
    (void)tasks.update(task_id, "succeeded", 100,
                       fmt::format("backup {}: {} chunks intact", id, rep->chunks_checked), result);
  });
  return BackupTask{id, m->vm, *task};
}

Result<BackupTask> BackupService::restore(const std::string& id, const std::string& name,
                                          const std::string& actor) {
  auto m = show(id);
  if (!m) return tl::unexpected(m.error());
  if (auto st = model::validate_name("vm", name); !st) return tl::unexpected(st.error());
  auto vm = store_.get_vm_by_name(name);
  if (!vm) return tl::unexpected(vm.error());
  if (vm->desired_state == "running")
    return make_error(ErrorCode::failed_precondition,
                      "VM " + name +
                          " is meant to run; stop it first: disks are restored on a "
                          "stopped VM");
  if (!vm->host_id)
    return make_error(ErrorCode::failed_precondition, "the VM is not placed on a host yet");
  auto task = record("backup.restore", id, "restore into vm " + name, actor);
  if (!task) return tl::unexpected(task.error());
  workers_.start([this, host = *vm->host_id, name, id, task_id = task->id] {
    TaskTracker tasks(store_);
    (void)tasks.update(task_id, "running", 0, "restoring " + id + " into " + name);
    AgentClientPtr client = agents_ ? agents_(host) : nullptr;
    if (!client) {
      (void)tasks.fail(task_id, "the VM's host is not connected");
      return;
    }
    if (auto st = client->restore_backup(task_id, name, repo_->root(), id, kRestoreTimeout); !st) {
      (void)tasks.fail(task_id, st.error().to_string());
      return;
    }
    (void)tasks.update(task_id, "succeeded", 100, "restored " + id + " into " + name,
                       nlohmann::json{{"id", id}, {"vm", name}});
  });
  return BackupTask{id, name, *task};
}

Result<backup::GcReport> BackupService::remove(const std::string& id, const std::string& actor) {
  auto m = show(id);
  if (!m) return tl::unexpected(m.error());
  auto lock = repo_->lock_exclusive();
  if (!lock) return tl::unexpected(lock.error());
  if (auto st = repo_->remove(id); !st) return tl::unexpected(st.error());
  auto gc = repo_->gc();
  if (!gc) return tl::unexpected(gc.error().wrap("backup deleted; garbage collection"));
  auto ev = events_.append(actor, "backup.delete", "backup/" + id, "ok",
                           fmt::format("{} chunks removed", gc->chunks_removed));
  (void)ev;
  return gc;
}

}  // namespace strata::manager
