// VM disk snapshots over HTTP: POST/GET /api/v1/vms/{name}/snapshots,
// POST .../snapshots/{snap}/revert, DELETE .../snapshots/{snap}. The routes parse and
// render; the VM service records each operation's task and audit event in one transaction
// and runs it on the VM's host (vms/vm_service.h).
#include "strata/manager/api/api_service.h"
#include "strata/manager/api/json_fields.h"
#include "strata/manager/api/vm_rest.h"
#include "strata/manager/tasks/task_tracker.h"
#include "strata/manager/vms/vm_service.h"

namespace strata::manager {

namespace {

// 202 with the task; the service wrote the audit event in the change's transaction.
HttpResponse accepted(const VmChange& c, const std::string& snap) {
  return HttpResponse::audited_json(
      202, {{"vm", c.vm.name}, {"snapshot", snap}, {"task", to_json(c.task)}}, "vm/" + c.vm.name);
}

HttpResponse run(ApiDeps& d, HttpRequest& r, SnapshotOp op, const std::string& snap) {
  auto change = d.vms->snapshot(r.param("name"), op, snap, audit_actor(r));
  if (!change) return error_response(change.error());
  return accepted(*change, snap);
}

}  // namespace

void add_snapshot_routes(ApiService& api) {
  ApiDeps& d = api.deps();
  RouteOptions create;
  create.role = Role::operator_;
  create.action = "vm.snapshot.create";
  api.router().add("POST", "/api/v1/vms/{name}/snapshots", create, [&d](HttpRequest& r) {
    auto body = parse_json_object(r.body);
    if (!body) return error_response(body.error());
    if (auto st = check_fields(*body, {{"name", JsonType::string, true}}); !st)
      return error_response(st.error());
    return run(d, r, SnapshotOp::create, (*body)["name"].get<std::string>());
  });
  api.router().add("GET", "/api/v1/vms/{name}/snapshots", RouteOptions{}, [&d](HttpRequest& r) {
    auto list = d.vms->list_snapshots(r.param("name"));
    if (!list) return error_response(list.error());
    nlohmann::json items = nlohmann::json::array();
    for (auto& s : *list)
      items.push_back(
          {{"name", s.name},
           {"parent", s.parent.empty() ? nlohmann::json(nullptr) : nlohmann::json(s.parent)},
           {"created_unix_ms", s.created_unix_ms},
           {"consistency", s.consistency},
           {"vm_state", s.vm_state},
           {"current", s.current}});
    return HttpResponse::json(200, {{"snapshots", items}});
  });
  RouteOptions revert = create;
  revert.action = "vm.snapshot.revert";
  api.router().add("POST", "/api/v1/vms/{name}/snapshots/{snap}/revert", revert,
                   [&d](HttpRequest& r) {
                     auto body = parse_json_object(r.body, /*allow_empty=*/true);
                     if (!body) return error_response(body.error());
                     if (auto st = check_fields(*body, std::initializer_list<FieldDecl>{}); !st)
                       return error_response(st.error());
                     return run(d, r, SnapshotOp::revert, r.param("snap"));
                   });
  RouteOptions del = create;
  del.action = "vm.snapshot.delete";
  api.router().add("DELETE", "/api/v1/vms/{name}/snapshots/{snap}", del,
                   [&d](HttpRequest& r) { return run(d, r, SnapshotOp::remove, r.param("snap")); });
}

}  // namespace strata::manager
