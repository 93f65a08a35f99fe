// Backups over HTTP (docs/internals/backup.md): POST /api/v1/vms/{name}/backups,
// GET /api/v1/backups[?vm=], GET /api/v1/backups/{id}, POST .../{id}/verify,
// POST .../{id}/restore, DELETE /api/v1/backups/{id}. The routes parse and render; the
// backup service records tasks and audit events and runs the work (vms/backup_service.h).
#include "strata/manager/api/api_service.h"
#include "strata/manager/api/json_fields.h"
#include "strata/manager/tasks/task_tracker.h"
#include "strata/manager/vms/backup_service.h"

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
  RouteOptions restore = op;
  restore.action = "backup.restore";
  api.router().add("POST", "/api/v1/backups/{id}/restore", restore, [&d](HttpRequest& r) {
    if (!d.backups) return unavailable_backups();
    auto body = parse_json_object(r.body);
    if (!body) return error_response(body.error());
    if (auto st = check_fields(*body, {{"vm", JsonType::string, true}}); !st)
      return error_response(st.error());
    auto t = d.backups->restore(r.param("id"), (*body)["vm"].get<std::string>(), audit_actor(r));
    if (!t) return error_response(t.error());
    return accepted(*t, "backup/" + t->backup_id);
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
