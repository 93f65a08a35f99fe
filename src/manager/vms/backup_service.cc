// Backups in the manager (strata/manager/vms/backup_service.h).
#include "strata/manager/vms/backup_service.h"

#include <fmt/chrono.h>
#include <fmt/format.h>

#include <algorithm>
#include <map>

#include "strata/common/log.h"
#include "strata/common/random.h"
#include "strata/manager/tasks/task_tracker.h"
#include "strata/model/validation.h"
#include "strata/model/vm_spec_json.h"

namespace strata::manager {

namespace {

// The task's progress while the agent copies a VM's disks (BackupVm / RestoreVmDisks
// stream it): the percent scaled into [from, to), a write only when it moves.
AgentClient::CopyProgress task_progress(TaskTracker& tasks, const std::string& task_id,
                                        std::string what, int from, int to) {
  auto last = std::make_shared<int>(-1);
  return [&tasks, task_id, what = std::move(what), from, to, last](uint64_t done, uint64_t total) {
    if (total == 0) return;
    const int pct = from + static_cast<int>(std::min(done, total) * (to - from - 1) / total);
    if (pct == *last) return;
    *last = pct;
    (void)tasks.update(
        task_id, "running", pct,
        fmt::format("{}: {} of {} MiB", what, std::min(done, total) >> 20, total >> 20));
  };
}

// A backup reads whole disks; a restore writes them.
constexpr std::chrono::hours kBackupTimeout{12};
constexpr std::chrono::hours kRestoreTimeout{12};
// A restore into a new VM waits this long for the controller to define the VM on its host.
constexpr std::chrono::minutes kDefineTimeout{10};

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

// A running sync stops at its next chunk (the target keeps what was committed), so the
// workers join promptly.
BackupService::~BackupService() { stopping_ = true; }

Status BackupService::check_configured() const {
  if (!repo_)
    return make_error(ErrorCode::failed_precondition,
                      "no backup repository configured (stratad --backup-repo PATH)");
  return {};
}

std::string BackupService::new_id(const std::string& vm) const {
  auto t = std::chrono::floor<std::chrono::seconds>(clock_->wall());
  // "<vm>-<utc time>-<4 hex>", cut to the 64 characters an id may have.
  std::string id = fmt::format("{}-{:%Y%m%d-%H%M%S}-{:04x}", vm, t, random_u64() & 0xffff);
  if (id.size() > 64) id = id.substr(id.size() - 64);
  while (!id.empty() && id.front() == '-') id.erase(0, 1);
  return id;
}

Result<store::TaskRecord> BackupService::record(InProcessTaskKind kind, const std::string& target,
                                                const std::string& detail, const std::string& actor,
                                                const nlohmann::json& result) {
  store::TaskRecord task;
  store::EventRecord audit;
  auto st = store_.transaction([&](store::Store& tx) -> Status {
    store::TaskRecord rec;
    rec.kind = std::string(kind.name());
    rec.target_kind = "backup";
    rec.target_id = target;
    rec.message = detail;
    rec.result = result.dump();
    auto t = tx.create_task(rec);
    if (!t) return tl::unexpected(t.error());
    auto ev = EventLog::append_in(tx, actor, rec.kind, "backup/" + target, "ok", detail);
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
  // The spec as the store holds it now: recorded in the manifest once the backup exists.
  nlohmann::json spec_json;
  if (auto doc = decode_vm_document(vm->spec)) spec_json = model::to_json(doc->spec);
  auto task = record(TaskKind::backup_create, id,
                     fmt::format("vm {}{}", name, full ? " (full)" : ""), actor);
  if (!task) return tl::unexpected(task.error());
  workers_.start([this, host = *vm->host_id, name, id, full, spec_json, task_id = task->id] {
    auto lease = RunningTasks::enter(running_, TaskKind::backup_create, task_id);
    TaskTracker tasks(store_);
    (void)tasks.update(task_id, "running", 0, "backing up " + name);
    AgentClientPtr client = agents_ ? agents_(host) : nullptr;
    if (!client) {
      (void)tasks.fail(task_id, "the VM's host is not connected");
      return;
    }
    auto r =
        client->create_backup(task_id, name, repo_->root(), id, full, repo_key(), kBackupTimeout,
                              task_progress(tasks, task_id, "backing up " + name, 0, 100));
    if (!r) {
      (void)tasks.fail(task_id, r.error().to_string());
      return;
    }
    auto result = to_json(*r);
    result["id"] = id;
    bool recorded = false;
    if (!spec_json.is_null()) {
      auto st = repo_->record_vm_spec(id, spec_json);
      if (!st)
        logger("manager.backup")
            ->warn("backup {}: the VM's spec is not recorded in its manifest: {}", id,
                   st.error().to_string());
      recorded = st.has_value();
    }
    result["vm_spec_recorded"] = recorded;
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
  auto task = record(TaskKind::backup_verify, id, "verify", actor);
  if (!task) return tl::unexpected(task.error());
  workers_.start([this, id, task_id = task->id] {
    auto lease = RunningTasks::enter(running_, TaskKind::backup_verify, task_id);
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
  auto task = record(TaskKind::backup_restore, id, "restore into vm " + name, actor);
  if (!task) return tl::unexpected(task.error());
  workers_.start([this, host = *vm->host_id, name, id, task_id = task->id] {
    auto lease = RunningTasks::enter(running_, TaskKind::backup_restore, task_id);
    TaskTracker tasks(store_);
    (void)tasks.update(task_id, "running", 0, "restoring " + id + " into " + name);
    AgentClientPtr client = agents_ ? agents_(host) : nullptr;
    if (!client) {
      (void)tasks.fail(task_id, "the VM's host is not connected");
      return;
    }
    if (auto st = client->restore_backup(
            task_id, name, repo_->root(), id, repo_key(), kRestoreTimeout,
            task_progress(tasks, task_id, "restoring " + id + " into " + name, 0, 100));
        !st) {
      (void)tasks.fail(task_id, st.error().to_string());
      return;
    }
    (void)tasks.update(task_id, "succeeded", 100, "restored " + id + " into " + name,
                       nlohmann::json{{"id", id}, {"vm", name}});
  });
  return BackupTask{id, name, *task};
}

Result<BackupTask> BackupService::restore_new(const std::string& id, const std::string& new_vm,
                                              const std::string& actor,
                                              const std::optional<std::string>& datastore) {
  auto m = show(id);
  if (!m) return tl::unexpected(m.error());
  if (auto st = model::validate_name("new_vm", new_vm); !st) return tl::unexpected(st.error());
  if (!vm_create_)
    return make_error(ErrorCode::unavailable, "restoring into a new VM is not available");
  model::VmSpec spec;
  if (!m->vm_spec.is_null()) {
    auto parsed = model::vm_spec_from_json(m->vm_spec);
    if (!parsed)
      return make_error(ErrorCode::failed_precondition,
                        fmt::format("backup {}: the VM spec it records does not read: {}", id,
                                    parsed.error().to_string()));
    spec = std::move(*parsed);
  } else {
    auto src = store_.get_vm_by_name(m->vm);
    if (!src && src.error().code == ErrorCode::not_found)
      return make_error(ErrorCode::failed_precondition,
                        fmt::format("backup {} records no VM spec (it was made before backups "
                                    "recorded one) and VM {} no longer exists: create a stopped "
                                    "VM with disks of the same names and restore into it (\"vm\")",
                                    id, m->vm));
    if (!src) return tl::unexpected(src.error());
    auto doc = decode_vm_document(src->spec);
    if (!doc) return tl::unexpected(doc.error());
    spec = doc->spec;
  }
  for (const auto& d : m->disks) {
    auto it = std::find_if(spec.disks.begin(), spec.disks.end(),
                           [&](const model::DiskSpec& s) { return s.name == d.name; });
    if (it == spec.disks.end())
      return make_error(
          ErrorCode::failed_precondition,
          fmt::format("backup {} holds disk {}, which the VM's spec does not have", id, d.name));
    // Restored elsewhere: the create below resolves the datastore's UUID (and refuses one no
    // host mounts), as for any new VM.
    if (datastore) {
      it->datastore = *datastore;
      it->datastore_id.clear();
    }
  }
  if (store_.get_vm_by_name(new_vm))
    return make_error(ErrorCode::already_exists,
                      fmt::format("a VM named '{}' already exists", new_vm), "new_vm");
  // As a clone: the backed-up VM's spec under a new name, uuid and MACs (create fills them).
  VmDocument doc;
  doc.spec = std::move(spec);
  doc.spec.name = new_vm;
  doc.spec.uuid.clear();
  for (auto& n : doc.spec.nics) n.mac.clear();
  if (doc.spec.cloud_init) doc.spec.cloud_init->hostname.clear();
  doc.spec.labels.erase(kVmIdLabel);
  auto made = vm_create_(std::move(doc), actor);
  if (!made) {
    Error e = made.error();
    if (e.code == ErrorCode::already_exists) e.field = "new_vm";
    // The disks' datastore is the request's: its field, not the spec's.
    if (datastore && e.field.rfind("disks[", 0) == 0 && e.field.size() > 10 &&
        e.field.compare(e.field.size() - 10, 10, ".datastore") == 0)
      e.field = "datastore";
    return tl::unexpected(e);
  }
  // The new VM in the result from the start: a sweep that finds this task's manager gone
  // removes the VM (abandon_restore).
  auto task = record(
      TaskKind::backup_restore, id, "restore into the new vm " + new_vm, actor,
      nlohmann::json{{"id", id}, {"vm", new_vm}, {"vm_id", made->first.id}, {"new_vm", true}});
  if (!task) {
    if (vm_remove_) vm_remove_(new_vm, actor);
    return tl::unexpected(task.error());
  }
  workers_.start([this, id, name = new_vm, vm_id = made->first.id, create_task = made->second.id,
                  actor, task_id = task->id] {
    auto lease = RunningTasks::enter(running_, TaskKind::backup_restore, task_id);
    TaskTracker tasks(store_);
    (void)tasks.update(task_id, "running", 0,
                       "creating the VM " + name + " to restore " + id + " into");
    // A restore that cannot finish takes its new VM with it: nothing half-made stays. The
    // deletion is asked for before the task ends, so whoever sees the task failed also sees
    // the VM going (the other order was a race RestoreNewTest lost under ASan).
    auto give_up = [&](const std::string& why) {
      if (vm_remove_) vm_remove_(name, actor);
      (void)tasks.fail(task_id, why + " (the new VM " + name + " is deleted again)");
    };
    std::string host;
    const auto deadline = clock_->now() + kDefineTimeout;
    for (;;) {
      auto vm = store_.get_vm(vm_id);
      if (!vm) return give_up("the new VM " + name + " is gone: " + vm.error().message);
      const std::string state = decode_vm_status(vm->status).state;
      if (vm->host_id && (state == "defined" || state == "stopped")) {
        host = *vm->host_id;
        break;
      }
      auto created = store_.get_task(create_task);
      if (created && created->state == "failed")
        return give_up("creating the VM " + name + " failed: " + created->message);
      if (clock_->now() >= deadline)
        return give_up(fmt::format("the new VM {} was not defined on a host within {} minutes",
                                   name, kDefineTimeout.count()));
      clock_->sleep_for(std::chrono::seconds(1));
    }
    (void)tasks.update(task_id, "running", 10, "restoring " + id + " into the new VM " + name);
    AgentClientPtr client = agents_ ? agents_(host) : nullptr;
    if (!client) return give_up("the new VM's host is not connected");
    if (auto st = client->restore_backup(
            task_id, name, repo_->root(), id, repo_key(), kRestoreTimeout,
            task_progress(tasks, task_id, "restoring " + id + " into the new VM " + name, 10, 100));
        !st)
      return give_up(st.error().to_string());
    (void)tasks.update(task_id, "succeeded", 100, "restored " + id + " into the new VM " + name,
                       nlohmann::json{{"id", id}, {"vm", name}, {"new_vm", true}});
  });
  return BackupTask{id, new_vm, *task};
}

void BackupService::abandon_restore(const store::TaskRecord& task) {
  if (task.kind != "backup.restore" || task.state != "failed" || !vm_remove_) return;
  auto result = nlohmann::json::parse(task.result, nullptr, false);
  if (!result.is_object() || !result.value("new_vm", false)) return;
  const std::string name = result.value("vm", "");
  const std::string vm_id = result.value("vm_id", "");
  auto vm = store_.get_vm(vm_id);
  if (name.empty() || !vm || vm->name != name || vm->deletion_requested) return;
  logger("manager.backup")
      ->warn("removing the new VM of a restore whose manager stopped vm={} task={}", name, task.id);
  vm_remove_(name, "stratad");
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

Result<std::vector<std::string>> BackupService::select_vms(const store::Labels& selector) {
  if (selector.empty())
    return invalid_argument("selector", "a label selector needs at least one label");
  store::VmListOptions opts;
  opts.label_selector = selector;
  opts.order = store::VmListOptions::Order::name;
  auto vms = store_.list_vms(opts);
  if (!vms) return tl::unexpected(vms.error());
  std::vector<std::string> names;
  for (auto& v : *vms)
    if (!v.deletion_requested) names.push_back(v.name);
  return names;
}

Result<PruneResult> BackupService::prune(const std::vector<std::string>& vms,
                                         const store::Labels& selector,
                                         const RetentionPolicy& policy, bool dry_run,
                                         const std::string& actor, bool on_sync_target) {
  if (auto st = check_configured(); !st) return tl::unexpected(st.error());
  if (auto st = validate_retention(policy); !st) return tl::unexpected(st.error());
  if (on_sync_target && !sync_target_)
    return make_error(ErrorCode::failed_precondition,
                      "no sync target configured (stratad --backup-sync-repo PATH)", "sync_target");
  // The repository whose backups are pruned: the manager's, or its off-site copy.
  backup::Repository& repo = on_sync_target ? *sync_target_ : *repo_;
  const std::string where = on_sync_target ? " on the sync target" : "";
  PruneResult out;
  out.dry_run = dry_run;
  out.sync_target = on_sync_target;
  if (!vms.empty()) {
    for (auto& v : vms)
      if (auto st = model::validate_name("vm", v); !st) return tl::unexpected(st.error());
    out.vms = vms;
  } else {
    auto names = select_vms(selector);
    if (!names) return tl::unexpected(names.error());
    out.vms = std::move(*names);
  }
  std::optional<backup::RepoLock> lock;
  if (!dry_run) {
    // Taken before the listing: no backup can complete between the plan and the deletions.
    auto l = repo.lock_exclusive();
    if (!l) return tl::unexpected(l.error());
    lock.emplace(std::move(*l));
  }
  auto all = repo.list("");
  if (!all) return tl::unexpected(all.error());
  std::map<std::string, std::vector<RetentionInput>> by_vm;
  for (auto& v : out.vms) by_vm.try_emplace(v);
  for (auto& m : *all) {
    auto it = by_vm.find(m.vm);
    if (it != by_vm.end()) it->second.push_back({m.id, m.created_unix_ms});
  }
  for (auto& v : out.vms) {
    auto plan = plan_retention(by_vm[v], policy);
    for (auto& d : plan.keep) out.keep.push_back({v, std::move(d)});
    for (auto& d : plan.prune) out.prune.push_back({v, std::move(d)});
  }
  if (dry_run || out.prune.empty()) return out;
  const std::string why = fmt::format(
      "pruned (keep_last {}, keep_daily {}, keep_weekly {}, keep_monthly {}, keep_yearly {})",
      policy.keep_last, policy.keep_daily, policy.keep_weekly, policy.keep_monthly,
      policy.keep_yearly);
  for (auto& p : out.prune) {
    if (auto st = repo.remove(p.decision.id); !st)
      return tl::unexpected(st.error().wrap("prune: delete backup " + p.decision.id + where));
    (void)events_.append(actor, "backup.delete", "backup/" + p.decision.id, "ok",
                         why + " of vm " + p.vm + where);
  }
  auto gc = repo.gc();
  if (!gc)
    return tl::unexpected(gc.error().wrap("backups pruned" + where + "; garbage collection"));
  out.gc = *gc;
  (void)events_.append(
      actor, "backup.prune", "backup", "ok",
      fmt::format("{} of {} vm(s){}: {} deleted, {} kept, {} chunks removed", why, out.vms.size(),
                  where, out.prune.size(), out.keep.size(), gc->chunks_removed));
  return out;
}

Result<store::TaskRecord> BackupService::sync(bool verify, bool remove_vanished,
                                              const std::string& actor) {
  if (auto st = check_configured(); !st) return tl::unexpected(st.error());
  if (!sync_target_)
    return make_error(ErrorCode::failed_precondition,
                      "no sync target configured (stratad --backup-sync-repo PATH)");
  bool idle = false;
  if (!sync_running_.compare_exchange_strong(idle, true))
    return make_error(ErrorCode::conflict, "a repository sync is already running");
  auto task = record(TaskKind::backup_sync, "sync",
                     fmt::format("sync{}{}", verify ? ", verified" : "",
                                 remove_vanished ? ", removing vanished backups" : ""),
                     actor);
  if (!task) {
    sync_running_ = false;
    return tl::unexpected(task.error());
  }
  workers_.start([this, verify, remove_vanished, task_id = task->id] {
    auto lease = RunningTasks::enter(running_, TaskKind::backup_sync, task_id);
    TaskTracker tasks(store_);
    (void)tasks.update(task_id, "running", 0, "listing the repositories");
    backup::SyncOptions o;
    o.verify = verify;
    o.remove_vanished = remove_vanished;
    o.stop = [this] { return stopping_.load(); };
    // The task's progress: backups done of those missing; the store is written when a
    // backup completes and every 32 chunks, not for each chunk.
    uint64_t last_chunks = 0;
    o.progress = [&](const backup::SyncProgress& p) {
      if (p.phase == "removing") {
        (void)tasks.update(task_id, "running", 99,
                           fmt::format("{} backups copied; removing {} (gone from the source)",
                                       p.backups_done, p.backup));
        return;
      }
      uint64_t chunks = p.chunks_copied + p.chunks_skipped;
      if (p.phase != "done" && p.phase != "" && chunks < last_chunks + 32) return;
      last_chunks = chunks;
      int pct = p.backups_total ? static_cast<int>(p.backups_done * 100 / p.backups_total) : 0;
      (void)tasks.update(task_id, "running", std::min(pct, 99),
                         fmt::format("{} of {} backups copied, {} bytes{}", p.backups_done,
                                     p.backups_total, p.bytes_copied,
                                     p.backup.empty() ? "" : "; copying " + p.backup));
    };
    auto rep = backup::sync_repository(*repo_, *sync_target_, o);
    sync_running_ = false;
    if (!rep) {
      (void)tasks.fail(task_id, rep.error().to_string());
      return;
    }
    const auto& t = rep->totals;
    nlohmann::json result = {{"copied", rep->copied},
                             {"already_present", rep->already_present.size()},
                             {"backups_done", t.backups_done},
                             {"bytes_copied", t.bytes_copied},
                             {"chunks_copied", t.chunks_copied},
                             {"chunks_skipped", t.chunks_skipped},
                             {"verified", verify},
                             {"chunks_verified", rep->chunks_verified},
                             {"problems", rep->problems},
                             {"ok", rep->problems.empty()},
                             {"remove_vanished", remove_vanished},
                             {"removed", rep->removed},
                             {"chunks_removed", rep->gc.chunks_removed},
                             {"bytes_removed", rep->gc.bytes_removed}};
    if (!rep->removal_skipped.empty()) result["removal_skipped"] = rep->removal_skipped;
    if (!rep->problems.empty()) {
      (void)tasks.update(task_id, "failed", 100,
                         fmt::format("sync: {} problem(s) reading the copy back: {}",
                                     rep->problems.size(), rep->problems.front()),
                         result);
      return;
    }
    (void)tasks.update(task_id, "succeeded", 100,
                       fmt::format("{} backups copied ({} bytes, {} chunks already there){}",
                                   t.backups_done, t.bytes_copied, t.chunks_skipped,
                                   !remove_vanished ? ""
                                   : !rep->removal_skipped.empty()
                                       ? "; nothing removed: " + rep->removal_skipped
                                       : fmt::format("; {} vanished backups removed ({} bytes "
                                                     "freed)",
                                                     rep->removed.size(), rep->gc.bytes_removed)),
                       result);
  });
  return *task;
}

}  // namespace strata::manager
