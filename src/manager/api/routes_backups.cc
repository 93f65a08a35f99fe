// Backups over HTTP (docs/internals/backup.md): POST /api/v1/vms/{name}/backups,
// GET /api/v1/backups[?vm=], GET /api/v1/backups/{id}, POST .../{id}/verify,
// POST .../{id}/restore, DELETE /api/v1/backups/{id}, POST /api/v1/backups/sync. The routes parse and render; the
// backup service records tasks and audit events and runs the work (vms/backup_service.h).
#include "strata/manager/api/api_service.h"
#include "strata/manager/api/json_fields.h"
#include "strata/manager/api/request_bodies.h"
#include "strata/manager/tasks/task_tracker.h"
#include "strata/manager/vms/backup_schedules.h"
#include "strata/manager/vms/backup_service.h"
#include "strata/model/validation.h"

namespace strata::manager {

namespace {

nlohmann::json backup_json(const backup::Manifest& m) {
  nlohmann::json disks = nlohmann::json::array();
  uint64_t read = 0, stored = 0, size = 0;
  for (auto& d : m.disks) {
    disks.push_back({{"name", d.name},
                     {"size_bytes", d.size},
                     {"bytes_read", d.bytes_read},
                     {"bytes_new", d.bytes_new},
                     {"zero_chunks", d.zero_chunks}});
    read += d.bytes_read;
    stored += d.bytes_new;
    size += d.size;
  }
  return {{"id", m.id},
          {"vm", m.vm},
          {"created_unix_ms", m.created_unix_ms},
          {"kind", m.kind},
          {"parent", m.parent.empty() ? nlohmann::json(nullptr) : nlohmann::json(m.parent)},
          {"frozen", m.frozen},
          {"size_bytes", size},
          {"bytes_read", read},
          {"bytes_new", stored},
          {"disks", disks}};
}

HttpResponse unavailable_backups() {
  return error_response(Error{ErrorCode::unavailable, "backups are not available", ""});
}

HttpResponse accepted(const BackupTask& t, const std::string& target) {
  return HttpResponse::audited_json(
      202, {{"backup", t.backup_id}, {"vm", t.vm}, {"task", to_json(t.task)}}, target);
}

// {"vm": NAME} or {"selector": {k: v}} (exactly one): whose backups. Errors name the field.
struct BackupTarget {
  std::string vm;
  store::Labels selector;
};
Result<BackupTarget> decode_backup_target(const nlohmann::json& body) {
  const nlohmann::json* vm = optional_member(body, "vm");
  const nlohmann::json* sel = optional_member(body, "selector");
  if ((vm && !vm->is_null()) == (sel && !sel->is_null()))
    return invalid_argument("vm", "name exactly one of vm (a VM name) or selector (labels)");
  BackupTarget t;
  if (vm && !vm->is_null()) {
    t.vm = vm->get<std::string>();
    if (auto st = model::validate_name("vm", t.vm); !st) return tl::unexpected(st.error());
    return t;
  }
  auto m = label_map(*sel, "selector");
  if (!m) return tl::unexpected(m.error());
  if (m->empty()) return invalid_argument("selector", "selector needs at least one label");
  t.selector = std::move(*m);
  return t;
}

Result<RetentionPolicy> decode_retention(const nlohmann::json& body) {
  RetentionPolicy p;
  p.keep_last = static_cast<int64_t>(
      std::min<uint64_t>(optional_uint(body, "keep_last", 0), kMaxRetentionKeep + 1));
  p.keep_daily = static_cast<int64_t>(
      std::min<uint64_t>(optional_uint(body, "keep_daily", 0), kMaxRetentionKeep + 1));
  p.keep_weekly = static_cast<int64_t>(
      std::min<uint64_t>(optional_uint(body, "keep_weekly", 0), kMaxRetentionKeep + 1));
  p.keep_monthly = static_cast<int64_t>(
      std::min<uint64_t>(optional_uint(body, "keep_monthly", 0), kMaxRetentionKeep + 1));
  p.keep_yearly = static_cast<int64_t>(
      std::min<uint64_t>(optional_uint(body, "keep_yearly", 0), kMaxRetentionKeep + 1));
  if (auto st = validate_retention(p); !st) return tl::unexpected(st.error());
  return p;
}

nlohmann::json schedule_json(const BackupSchedule& s, int64_t now_ms) {
  nlohmann::json j = schedule_spec_json(s.spec);
  j["name"] = s.record.name;
  j["created_unix_ms"] = s.record.created_ms;
  // The newest slot claimed; at creation the slot before it, which counts as done.
  j["last_slot_unix_ms"] = s.record.last_slot_ms;
  j["next_run_unix_ms"] = next_due_ms(s.spec, std::max(now_ms, s.record.last_slot_ms));
  j["resource_version"] = s.record.resource_version;
  return j;
}

int64_t now_unix_ms(const ApiDeps& d) {
  auto t = d.clock ? d.clock->wall() : std::chrono::system_clock::now();
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

HttpResponse unavailable_schedules() {
  return error_response(Error{ErrorCode::unavailable, "backup schedules are not available", ""});
}

nlohmann::json prune_json(const PruneResult& r) {
  nlohmann::json keep = nlohmann::json::array(), prune = nlohmann::json::array();
  for (auto& k : r.keep)
    keep.push_back({{"id", k.decision.id},
                    {"vm", k.vm},
                    {"created_unix_ms", k.decision.created_unix_ms},
                    {"rule", k.decision.rule},
                    {"period", k.decision.period.empty() ? nlohmann::json(nullptr)
                                                         : nlohmann::json(k.decision.period)}});
  for (auto& p : r.prune)
    prune.push_back(
        {{"id", p.decision.id}, {"vm", p.vm}, {"created_unix_ms", p.decision.created_unix_ms}});
  return {{"dry_run", r.dry_run},
          {"sync_target", r.sync_target},
          {"vms", r.vms},
          {"keep", keep},
          {"prune", prune},
          {"chunks_removed", r.gc.chunks_removed},
          {"bytes_removed", r.gc.bytes_removed}};
}

}  // namespace

void add_backup_routes(ApiService& api) {
  ApiDeps& d = api.deps();
  RouteOptions op;
  op.role = Role::operator_;
  op.action = "backup.create";
  api.router().add("POST", "/api/v1/vms/{name}/backups", op, [&d](HttpRequest& r) {
    if (!d.backups) return unavailable_backups();
    auto body = parse_json_object(r.body, /*allow_empty=*/true);
    if (!body) return error_response(body.error());
    if (auto st = check_fields(*body, {{"full", JsonType::boolean, false}}); !st)
      return error_response(st.error());
    bool full = body->contains("full") && (*body)["full"].get<bool>();
    auto t = d.backups->create(r.param("name"), full, audit_actor(r));
    if (!t) return error_response(t.error());
    return accepted(*t, "vm/" + t->vm);
  });
  api.router().add("GET", "/api/v1/backups", RouteOptions{}, [&d](HttpRequest& r) {
    if (!d.backups) return unavailable_backups();
    for (auto& [k, v] : r.query)
      if (k != "vm")
        return error_response(Error{ErrorCode::invalid_argument, "unknown query parameter", k});
    auto it = r.query.find("vm");
    auto list = d.backups->list(it == r.query.end() ? "" : it->second);
    if (!list) return error_response(list.error());
    nlohmann::json items = nlohmann::json::array();
    for (auto& m : *list) items.push_back(backup_json(m));
    return HttpResponse::json(200, {{"backups", items}});
  });
  api.router().add("GET", "/api/v1/backups/{id}", RouteOptions{}, [&d](HttpRequest& r) {
    if (!d.backups) return unavailable_backups();
    auto m = d.backups->show(r.param("id"));
    if (!m) return error_response(m.error());
    return HttpResponse::json(200, backup_json(*m));
  });
  RouteOptions verify = op;
  verify.action = "backup.verify";
  api.router().add("POST", "/api/v1/backups/{id}/verify", verify, [&d](HttpRequest& r) {
    if (!d.backups) return unavailable_backups();
    auto body = parse_json_object(r.body, /*allow_empty=*/true);
    if (!body) return error_response(body.error());
    if (auto st = check_fields(*body, std::initializer_list<FieldDecl>{}); !st)
      return error_response(st.error());
    auto t = d.backups->verify(r.param("id"), audit_actor(r));
    if (!t) return error_response(t.error());
    return accepted(*t, "backup/" + t->backup_id);
  });
  // Sync: POST /api/v1/backups/sync {"verify"?: bool, "remove_vanished"?: bool}: a task
  // copying into the sync target configured on the manager (--backup-sync-repo; never a
  // path from the request), then removing there what the repository no longer has.
  RouteOptions sync = op;
  sync.action = "backup.sync";
  api.router().add("POST", "/api/v1/backups/sync", sync, [&d](HttpRequest& r) {
    if (!d.backups) return unavailable_backups();
    auto body = parse_json_object(r.body, /*allow_empty=*/true);
    if (!body) return error_response(body.error());
    if (auto st = check_fields(*body, {{"verify", JsonType::boolean, false},
                                       {"remove_vanished", JsonType::boolean, false}});
        !st)
      return error_response(st.error());
    const bool verify = optional_bool(*body, "verify", false);
    const bool remove_vanished = optional_bool(*body, "remove_vanished", false);
    auto t = d.backups->sync(verify, remove_vanished, audit_actor(r));
    if (!t) return error_response(t.error());
    return HttpResponse::audited_json(202, {{"task", to_json(*t)}}, "backup/sync");
  });
  RouteOptions restore = op;
  restore.action = "backup.restore";
  api.router().add("POST", "/api/v1/backups/{id}/restore", restore, [&d](HttpRequest& r) {
    if (!d.backups) return unavailable_backups();
    auto body = parse_json_object(r.body);
    if (!body) return error_response(body.error());
    if (auto st = check_fields(*body, {{"vm", JsonType::string},
                                       {"new_vm", JsonType::string},
                                       {"datastore", JsonType::string}});
        !st)
      return error_response(st.error());
    // {"vm": a stopped VM whose disks are replaced} or {"new_vm": a VM made for it}.
    const std::string vm = optional_string(*body, "vm");
    const std::string new_vm = optional_string(*body, "new_vm");
    if (vm.empty() == new_vm.empty())
      return error_response(Error{ErrorCode::invalid_argument,
                                  "name exactly one of vm (a stopped VM whose disks are replaced) "
                                  "or new_vm (a new VM made from the backup)",
                                  "vm"});
    // {"datastore": where the new VM's disks go; "" the host's local store}.
    std::optional<std::string> datastore;
    if (body->contains("datastore")) {
      if (!vm.empty())
        return error_response(Error{ErrorCode::invalid_argument,
                                    "datastore applies to a new VM (new_vm); a restore into an "
                                    "existing VM writes its disks where they are",
                                    "datastore"});
      datastore = (*body)["datastore"].get<std::string>();
    }
    auto t = vm.empty() ? d.backups->restore_new(r.param("id"), new_vm, audit_actor(r), datastore)
                        : d.backups->restore(r.param("id"), vm, audit_actor(r));
    if (!t) return error_response(t.error());
    return accepted(*t, "backup/" + t->backup_id);
  });
  // Retention: POST /api/v1/backups/prune. The service writes the audit events (one per
  // deleted backup and one "backup.prune"); a dry run writes none.
  RouteOptions prune = op;
  prune.action = "backup.prune";
  api.router().add("POST", "/api/v1/backups/prune", prune, [&d](HttpRequest& r) {
    if (!d.backups) return unavailable_backups();
    auto body = parse_json_object(r.body);
    if (!body) return error_response(body.error());
    using T = JsonType;
    if (auto st = check_fields(*body, {{"vm", T::string},
                                       {"selector", T::object},
                                       {"keep_last", T::unsigned_integer},
                                       {"keep_daily", T::unsigned_integer},
                                       {"keep_weekly", T::unsigned_integer},
                                       {"keep_monthly", T::unsigned_integer},
                                       {"keep_yearly", T::unsigned_integer},
                                       {"dry_run", T::boolean},
                                       {"sync_target", T::boolean}});
        !st)
      return error_response(st.error());
    auto target = decode_backup_target(*body);
    if (!target) return error_response(target.error());
    auto policy = decode_retention(*body);
    if (!policy) return error_response(policy.error());
    std::vector<std::string> vms;
    if (!target->vm.empty()) vms.push_back(target->vm);
    auto res =
        d.backups->prune(vms, target->selector, *policy, optional_bool(*body, "dry_run", false),
                         audit_actor(r), optional_bool(*body, "sync_target", false));
    if (!res) return error_response(res.error());
    return HttpResponse::audited_json(200, prune_json(*res), "backup");
  });
  // Schedules: POST/GET /api/v1/backup-schedules, GET/DELETE /api/v1/backup-schedules/{name}.
  RouteOptions sched_create = op;
  sched_create.action = "backup.schedule.create";
  api.router().add("POST", "/api/v1/backup-schedules", sched_create, [&d](HttpRequest& r) {
    if (!d.backup_schedules) return unavailable_schedules();
    auto body = parse_json_object(r.body);
    if (!body) return error_response(body.error());
    auto name = body->find("name");
    if (name == body->end() || name->is_null())
      return error_response(Error{ErrorCode::invalid_argument, "name is required", "name"});
    if (!name->is_string())
      return error_response(Error{ErrorCode::invalid_argument, "name must be a string", "name"});
    const std::string n = name->get<std::string>();
    nlohmann::json spec_body = *body;
    spec_body.erase("name");
    auto spec = parse_schedule_spec(spec_body);
    if (!spec) return error_response(spec.error());
    auto s = d.backup_schedules->create(n, *spec, audit_actor(r));
    if (!s) return error_response(s.error());
    return HttpResponse::audited_json(201, schedule_json(*s, now_unix_ms(d)),
                                      "backup-schedule/" + n);
  });
  api.router().add("GET", "/api/v1/backup-schedules", RouteOptions{}, [&d](HttpRequest&) {
    if (!d.backup_schedules) return unavailable_schedules();
    auto list = d.backup_schedules->list();
    if (!list) return error_response(list.error());
    nlohmann::json items = nlohmann::json::array();
    const int64_t now = now_unix_ms(d);
    for (auto& s : *list) items.push_back(schedule_json(s, now));
    return HttpResponse::json(200, {{"schedules", items}});
  });
  api.router().add("GET", "/api/v1/backup-schedules/{name}", RouteOptions{}, [&d](HttpRequest& r) {
    if (!d.backup_schedules) return unavailable_schedules();
    auto s = d.backup_schedules->get(r.param("name"));
    if (!s) return error_response(s.error());
    return HttpResponse::json(200, schedule_json(*s, now_unix_ms(d)));
  });
  RouteOptions sched_del = op;
  sched_del.action = "backup.schedule.delete";
  api.router().add("DELETE", "/api/v1/backup-schedules/{name}", sched_del, [&d](HttpRequest& r) {
    if (!d.backup_schedules) return unavailable_schedules();
    if (auto st = d.backup_schedules->remove(r.param("name"), audit_actor(r)); !st)
      return error_response(st.error());
    return HttpResponse::audited_json(200, {{"deleted", r.param("name")}},
                                      "backup-schedule/" + r.param("name"));
  });
  RouteOptions del = op;
  del.action = "backup.delete";
  api.router().add("DELETE", "/api/v1/backups/{id}", del, [&d](HttpRequest& r) {
    if (!d.backups) return unavailable_backups();
    auto gc = d.backups->remove(r.param("id"), audit_actor(r));
    if (!gc) return error_response(gc.error());
    return HttpResponse::audited_json(200,
                                      {{"deleted", r.param("id")},
                                       {"chunks_removed", gc->chunks_removed},
                                       {"bytes_removed", gc->bytes_removed}},
                                      "backup/" + r.param("id"));
  });
}

}  // namespace strata::manager
