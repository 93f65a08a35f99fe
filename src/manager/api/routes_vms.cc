// VMs as desired state: create (validated, scheduled synchronously: 422 when nothing
// fits), list/get, actions and delete. Every change bumps control.generation, makes a task
// and wakes the controller, which talks to the agent.
#include <random>
#include <unordered_map>

#include <fmt/format.h>

#include "strata/manager/api/api_service.h"
#include "strata/manager/api/json_fields.h"
#include "strata/manager/controllers/image_distribution.h"
#include "strata/manager/controllers/vm_controller.h"
#include "strata/manager/tasks/task_tracker.h"
#include "strata/model/validation.h"

namespace strata::manager {

namespace {

uint64_t random_u64() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  return rng();
}

std::string host_name_of(ApiDeps& d, const store::VmRecord& vm) {
  if (!vm.host_id) return "";
  auto h = d.store->get_host(*vm.host_id);
  return h ? h->name : "";
}

// Host id -> name of every host, read once per list request instead of once per VM.
Result<std::unordered_map<std::string, std::string>> host_names(ApiDeps& d) {
  auto hosts = d.store->list_hosts({});
  if (!hosts) return tl::unexpected(hosts.error());
  std::unordered_map<std::string, std::string> names;
  names.reserve(hosts->size());
  for (auto& h : *hosts) names.emplace(std::move(h.id), std::move(h.name));
  return names;
}

HttpResponse create_vm(ApiDeps& d, HttpRequest& r) {
  auto body = parse_json_object(r.body);
  if (!body) return error_response(body.error());
  bool start = true;
  auto doc = vm_document_from_request(*body, &start);
  if (!doc) return error_response(doc.error());
  auto completed = model::complete(doc->spec, &random_u64);
  if (!completed) return error_response(completed.error());
  doc->spec = std::move(*completed);
  if (auto st = check_image_kinds(*d.store, doc->spec); !st) return error_response(st.error());

  store::VmRecord created;
  store::TaskRecord task;
  {
    std::lock_guard lock(d.placement->mutex());
    if (d.store->get_vm_by_name(doc->spec.name))
      return error_response(Error{ErrorCode::already_exists,
                                  fmt::format("a VM named '{}' already exists", doc->spec.name),
                                  "name"});
    auto host = d.placement->place(*doc);
    if (!host) return error_response(host.error());
    store::VmRecord vm;
    vm.name = doc->spec.name;
    vm.labels = doc->spec.labels;
    vm.host_id = host->id;
    vm.desired_state = start ? "running" : "stopped";
    VmStatusDoc st;
    st.state = "scheduled";
    vm.status = encode(st);
    vm.spec = encode(*doc);
    auto stored = d.store->create_vm(vm);
    if (!stored) return error_response(stored.error());
    d.placement->record(stored->id, host->id, *doc);
    auto t = d.tasks->create("vm.create", "vm", stored->id, "scheduled on " + host->name);
    if (!t) return error_response(t.error());
    task = *t;
    doc->control.task_id = task.id;
    stored->spec = encode(*doc);
    auto u = d.store->update_vm(*stored);
    created = u ? *u : *stored;
  }
  d.controller->enqueue_vm(created.id);
  auto resp = HttpResponse::json(
      202, {{"vm", vm_to_json(created, host_name_of(d, created))}, {"task", to_json(task)}});
  resp.audit_target = "vm/" + created.name;
  return resp;
}

// Shared path of every action: load, check version, new task, mutate, CAS write, enqueue.
using Mutator = std::function<Status(store::VmRecord&, VmDocument&, const nlohmann::json&)>;

HttpResponse vm_action(ApiDeps& d, HttpRequest& r, const std::string& kind,
                       const Mutator& mutate) {
  auto body = parse_json_object(r.body, /*allow_empty=*/true);
  if (!body) return error_response(body.error());
  if (auto st = check_vm_action_body(kind.substr(kind.find('.') + 1), *body); !st)
    return error_response(st.error());
  auto expected = expected_version(r, &*body);
  if (!expected) return error_response(expected.error());
  auto vm = d.store->get_vm_by_name(r.param("name"));
  if (!vm) return error_response(vm.error());
  if (*expected && **expected != vm->resource_version)
    return error_response(Error{ErrorCode::conflict,
                                fmt::format("resource_version is {}, not {}",
                                            vm->resource_version, **expected),
                                "resource_version"});
  if (vm->deletion_requested)
    return error_response(
        Error{ErrorCode::failed_precondition, "the VM is being deleted", ""});
  auto doc = decode_vm_document(vm->spec);
  if (!doc) return error_response(doc.error());
  auto task = d.tasks->create(kind, "vm", vm->id);
  if (!task) return error_response(task.error());
  // The VM's previous task (if still open) is superseded by this one: the controller only
  // ever finishes the task named in control.task_id, so close it here or it stays open.
  const std::string previous_task = doc->control.task_id;
  doc->control.generation += 1;
  doc->control.task_id = task->id;
  if (auto st = mutate(*vm, *doc, *body); !st) {
    d.tasks->fail(task->id, st.error().message);
    return error_response(st.error());
  }
  vm->spec = encode(*doc);
  auto u = d.store->update_vm(*vm);
  if (!u) {
    d.tasks->fail(task->id, u.error().message);
    return error_response(u.error());
  }
  if (!previous_task.empty() && previous_task != task->id)
    (void)d.tasks->fail(previous_task, "superseded by " + kind + " task " + task->id);
  d.controller->enqueue_vm(u->id);
  return HttpResponse::json(202, {{"task", to_json(*task)}, {"vm", vm_to_json(*u, host_name_of(d, *u))}});
}

}  // namespace

void add_vm_routes(ApiService& api) {
  ApiDeps& d = api.deps();
  RouteOptions create;
  create.role = Role::operator_;
  create.action = "vm.create";
  api.router().add("POST", "/api/v1/vms", create, [&d](HttpRequest& r) { return create_vm(d, r); });

  api.router().add("GET", "/api/v1/vms", RouteOptions{}, [&d](HttpRequest& r) {
    store::VmListOptions opts;
    auto limit = query_int(r, "limit", 0, 0, 10000);
    if (!limit) return error_response(limit.error());
    opts.limit = *limit;
    if (auto it = r.query.find("after"); it != r.query.end()) {
      auto after = d.store->get_vm_by_name(it->second);
      opts.after_id = after ? after->id : it->second;
    }
    if (auto it = r.query.find("label"); it != r.query.end()) {
      auto eq = it->second.find('=');
      if (eq == std::string::npos)
        return error_response(Error{ErrorCode::invalid_argument, "label must be key=value", "label"});
      opts.label_selector[it->second.substr(0, eq)] = it->second.substr(eq + 1);
    }
    if (auto it = r.query.find("host"); it != r.query.end() && !it->second.empty()) {
      auto h = d.store->get_host_by_name(it->second);
      if (!h) return HttpResponse::json(200, {{"vms", nlohmann::json::array()}, {"next", nullptr}});
      opts.host_id = h->id;
    }
    auto list = d.store->list_vms(opts);
    if (!list) return error_response(list.error());
    auto names = host_names(d);
    if (!names) return error_response(names.error());
    nlohmann::json items = nlohmann::json::array();
    for (const auto& vm : *list) {
      auto h = vm.host_id ? names->find(*vm.host_id) : names->end();
      items.push_back(vm_to_json(vm, h != names->end() ? h->second : std::string()));
    }
    nlohmann::json next = nullptr;
    if (opts.limit > 0 && static_cast<int>(list->size()) == opts.limit) next = list->back().name;
    return HttpResponse::json(200, {{"vms", items}, {"next", next}});
  });
  api.router().add("GET", "/api/v1/vms/{name}", RouteOptions{}, [&d](HttpRequest& r) {
    auto vm = d.store->get_vm_by_name(r.param("name"));
    if (!vm) return error_response(vm.error());
    return HttpResponse::json(200, vm_to_json(*vm, host_name_of(d, *vm)));
  });

  RouteOptions op;
  op.role = Role::operator_;
  auto add_action = [&](const std::string& verb, Mutator m) {
    RouteOptions o = op;
    o.action = "vm." + verb;
    api.router().add("POST", "/api/v1/vms/{name}/" + verb, o,
                     [&d, verb, m](HttpRequest& r) { return vm_action(d, r, "vm." + verb, m); });
  };
  add_action("start",
             [](store::VmRecord& vm, VmDocument& doc, const nlohmann::json&) -> Status {
               vm.desired_state = "running";
               doc.control.paused = false;
               return {};
             });
  add_action("stop",
             [](store::VmRecord& vm, VmDocument& doc, const nlohmann::json& b) -> Status {
               auto stop = decode_vm_stop(b);
               if (!stop) return tl::unexpected(stop.error());
               vm.desired_state = "stopped";
               doc.control.paused = false;
               doc.control.stop_force = stop->force;
               doc.control.stop_timeout_s = stop->timeout_s;
               return {};
             });
  add_action("reboot",
             [](store::VmRecord& vm, VmDocument& doc, const nlohmann::json&) -> Status {
               if (vm.desired_state != "running")
                 return make_error(ErrorCode::failed_precondition, "the VM is not meant to run");
               doc.control.reboot_generation = doc.control.generation;
               return {};
             });
  add_action("pause",
             [](store::VmRecord& vm, VmDocument& doc, const nlohmann::json&) -> Status {
               if (vm.desired_state != "running")
                 return make_error(ErrorCode::failed_precondition, "the VM is not meant to run");
               doc.control.paused = true;
               return {};
             });
  add_action("resume",
             [](store::VmRecord& vm, VmDocument& doc, const nlohmann::json&) -> Status {
               vm.desired_state = "running";
               doc.control.paused = false;
               return {};
             });

  RouteOptions del = op;
  del.action = "vm.delete";
  api.router().add("DELETE", "/api/v1/vms/{name}", del, [&d](HttpRequest& r) {
    return vm_action(d, r, "vm.delete",
                     [&d](store::VmRecord& vm, VmDocument&, const nlohmann::json&) -> Status {
                       vm.deletion_requested = true;
                       vm.deletion_requested_ms = unix_ms(*d.clock);
                       return {};
                     });
  });
}

}  // namespace strata::manager
