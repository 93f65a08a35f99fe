// Templates and clones over HTTP: POST /api/v1/vms/{name}/template (200 with the VM) and
// POST /api/v1/vms/{name}/clone {"name", "linked"?} (202 with the new VM and its task). The
// routes parse and render; the VM service decides and writes (vms/vm_service.h).
#include "strata/manager/api/api_service.h"
#include "strata/manager/api/json_fields.h"
#include "strata/manager/api/vm_rest.h"
#include "strata/manager/tasks/task_tracker.h"
#include "strata/manager/vms/vm_service.h"

namespace strata::manager {

namespace {

std::string host_of(ApiDeps& d, const store::VmRecord& vm) {
  if (!vm.host_id) return "";
  auto h = d.store->get_host(*vm.host_id);
  return h ? h->name : "";
}

}  // namespace

void add_clone_routes(ApiService& api) {
  ApiDeps& d = api.deps();
  RouteOptions tpl;
  tpl.role = Role::operator_;
  tpl.action = "vm.template";
  api.router().add("POST", "/api/v1/vms/{name}/template", tpl, [&d](HttpRequest& r) {
    auto body = parse_json_object(r.body, /*allow_empty=*/true);
    if (!body) return error_response(body.error());
    if (auto st = check_fields(*body, std::initializer_list<FieldDecl>{}); !st)
      return error_response(st.error());
    auto vm = d.vms->make_template(r.param("name"), audit_actor(r));
    if (!vm) return error_response(vm.error());
    return HttpResponse::audited_json(200, vm_to_json(*vm, host_of(d, *vm)), "vm/" + vm->name);
  });
  RouteOptions cl = tpl;
  cl.action = "vm.clone";
  api.router().add("POST", "/api/v1/vms/{name}/clone", cl, [&d](HttpRequest& r) {
    auto body = parse_json_object(r.body);
    if (!body) return error_response(body.error());
    if (auto st = check_fields(*body, {{"name", JsonType::string, true},
                                       {"linked", JsonType::boolean, false}});
        !st)
      return error_response(st.error());
    std::optional<bool> linked;
    if (body->contains("linked") && !(*body)["linked"].is_null())
      linked = (*body)["linked"].get<bool>();
    auto c = d.vms->clone(r.param("name"), (*body)["name"].get<std::string>(), linked,
                          audit_actor(r));
    if (!c) return error_response(c.error());
    return HttpResponse::audited_json(
        202, {{"vm", vm_to_json(c->vm, host_of(d, c->vm))}, {"task", to_json(c->task)}},
        "vm/" + c->vm.name);
  });
}

}  // namespace strata::manager
