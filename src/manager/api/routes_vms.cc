// VMs over HTTP: create, list/get, actions and delete. The routes only parse the request
// and render the result (api/vm_rest.h); validation, scheduling and the one-transaction
// writes are the VM service's (vms/vm_service.h), which wakes the controller.
#include <unordered_map>

#include <fmt/format.h>

#include "strata/manager/api/api_service.h"
#include "strata/manager/api/json_fields.h"
#include "strata/manager/api/vm_rest.h"
#include "strata/manager/controllers/clusters.h"
#include "strata/manager/tasks/task_tracker.h"
#include "strata/manager/vms/vm_labels.h"
#include "strata/manager/vms/vm_service.h"

namespace strata::manager {

namespace {

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

// A committed change: 202 with the VM and its task. The service wrote the audit event in
// the change's transaction, so the pipeline does not write another.
HttpResponse change_response(ApiDeps& d, const VmChange& c) {
  return HttpResponse::audited_json(
      202, {{"vm", vm_to_json(c.vm, host_name_of(d, c.vm))}, {"task", to_json(c.task)}},
      "vm/" + c.vm.name);
}

HttpResponse create_vm(ApiDeps& d, HttpRequest& r) {
  auto body = parse_json_object(r.body);
  if (!body) return error_response(body.error());
  bool start = true;
  auto doc = vm_document_from_request(*body, &start);
  if (!doc) return error_response(doc.error());
  auto change = d.vms->create(std::move(*doc), start, audit_actor(r));
  if (!change) return error_response(change.error());
  return change_response(d, *change);
}

HttpResponse vm_action(ApiDeps& d, HttpRequest& r, VmVerb verb) {
  auto body = parse_json_object(r.body, /*allow_empty=*/true);
  if (!body) return error_response(body.error());
  if (auto st = check_vm_action_body(to_string(verb), *body); !st)
    return error_response(st.error());
  auto expected = expected_version(r, &*body);
  if (!expected) return error_response(expected.error());
  VmActOptions options;
  options.expected_version = *expected;
  if (verb == VmVerb::stop) {
    auto stop = decode_vm_stop(*body);
    if (!stop) return error_response(stop.error());
    options.stop_force = stop->force;
    options.stop_timeout_s = stop->timeout_s;
  }
  auto change = d.vms->act(r.param("name"), verb, options, audit_actor(r));
  if (!change) return error_response(change.error());
  return change_response(d, *change);
}

// POST /api/v1/vms/{name}/migrate {"host"?, "max_bandwidth"?, "downtime_max_ms"?, "tls"?,
// "auto_converge"?, "postcopy"?}
HttpResponse migrate_vm(ApiDeps& d, HttpRequest& r) {
  auto body = parse_json_object(r.body, /*allow_empty=*/true);
  if (!body) return error_response(body.error());
  using T = JsonType;
  if (auto st = check_fields(*body, {{"host", T::string},
                                     {"max_bandwidth", T::unsigned_integer},
                                     {"downtime_max_ms", T::unsigned_integer},
                                     {"tls", T::boolean},
                                     {"auto_converge", T::boolean},
                                     {"postcopy", T::boolean}});
      !st)
    return error_response(st.error());
  VmMigrateOptions o;
  o.target_host = optional_string(*body, "host");
  o.max_bandwidth = optional_uint(*body, "max_bandwidth", 0);
  uint64_t downtime = optional_uint(*body, "downtime_max_ms", 0);
  if (downtime > 60000)
    return error_response(Error{ErrorCode::invalid_argument, "must be at most 60000",
                                "downtime_max_ms"});
  o.downtime_max_ms = static_cast<int64_t>(downtime);
  if (const auto* tls = optional_member(*body, "tls")) o.tls = tls->get<bool>();
  if (const auto* ac = optional_member(*body, "auto_converge")) o.auto_converge = ac->get<bool>();
  if (const auto* pc = optional_member(*body, "postcopy")) o.postcopy = pc->get<bool>();
  auto change = d.vms->migrate(r.param("name"), o, audit_actor(r));
  if (!change) return error_response(change.error());
  return change_response(d, *change);
}

// POST /api/v1/vms/{name}/cdrom {"image": "NAME" | null}: insert (or change) the CD-ROM's
// medium, or eject it with null; 202 with the "vm.cdrom" task (vm_service.h).
HttpResponse change_cdrom(ApiDeps& d, HttpRequest& r) {
  auto body = parse_json_object(r.body);
  if (!body) return error_response(body.error());
  using T = JsonType;
  if (auto st = check_fields(*body, {{"image", T::string}}); !st) return error_response(st.error());
  if (!body->contains("image"))
    return error_response(Error{ErrorCode::invalid_argument,
                                "is required: an iso image name, or null to eject", "image"});
  auto change =
      d.vms->change_cdrom(r.param("name"), optional_string(*body, "image"), audit_actor(r));
  if (!change) return error_response(change.error());
  return change_response(d, *change);
}

// POST /api/v1/vms/{name}/disks/{disk}/resize {"size_bytes": N}: grow the disk (live when the
// VM runs); 202 with the "vm.disk.resize" task (vm_service.h).
HttpResponse resize_disk(ApiDeps& d, HttpRequest& r) {
  auto body = parse_json_object(r.body);
  if (!body) return error_response(body.error());
  using T = JsonType;
  if (auto st = check_fields(*body, {{"size_bytes", T::unsigned_integer, /*required=*/true}}); !st)
    return error_response(st.error());
  auto change = d.vms->resize_disk(r.param("name"), r.param("disk"),
                                   optional_uint(*body, "size_bytes", 0), audit_actor(r));
  if (!change) return error_response(change.error());
  return change_response(d, *change);
}

// POST /api/v1/vms/{name}/disks {"name", "size_bytes" | "image", "readonly", "datastore"}: attach a
// new disk (hot-plug when the VM runs); 202 with the "vm.disk.attach" task. DELETE
// /api/v1/vms/{name}/disks/{disk}: detach it and delete its data; 202 with "vm.disk.detach".
HttpResponse attach_disk(ApiDeps& d, HttpRequest& r) {
  auto body = parse_json_object(r.body);
  if (!body) return error_response(body.error());
  auto disk = disk_from_rest(*body, "disk.");
  if (!disk) return error_response(disk.error());
  auto change = d.vms->attach_disk(r.param("name"), *disk, audit_actor(r));
  if (!change) return error_response(change.error());
  return change_response(d, *change);
}

// POST /api/v1/vms/{name}/nics {"mode": "user" | "bridge", "bridge", "mac"}: attach a NIC
// (hot-plug when the VM runs); 202 with "vm.nic.attach". DELETE /api/v1/vms/{name}/nics/{mac}:
// detach it; 202 with "vm.nic.detach".
HttpResponse attach_nic(ApiDeps& d, HttpRequest& r) {
  auto body = parse_json_object(r.body);
  if (!body) return error_response(body.error());
  auto nic = nic_from_rest(*body, "nic.");
  if (!nic) return error_response(nic.error());
  auto change = d.vms->attach_nic(r.param("name"), *nic, audit_actor(r));
  if (!change) return error_response(change.error());
  return change_response(d, *change);
}

}  // namespace

void add_vm_routes(ApiService& api) {
  ApiDeps& d = api.deps();
  RouteOptions create;
  create.role = Role::operator_;
  create.action = "vm.create";
  api.router().add("POST", "/api/v1/vms", create, [&d](HttpRequest& r) { return create_vm(d, r); });

  api.router().add("GET", "/api/v1/vms", RouteOptions{}, [&d](HttpRequest& r) {
    auto q = decode_vm_list_query(r);
    if (!q) return error_response(q.error());
    store::VmListOptions opts;
    // One VM more than asked for says whether another page exists: `next` is null on the
    // last page even when it is full, so "Next page" never leads to an empty page.
    opts.limit = q->limit > 0 ? q->limit + 1 : 0;
    opts.name_contains = q->name_contains;
    opts.state = q->state;
    if (q->label) opts.label_selector[q->label->first] = q->label->second;
    if (q->sort == VmListQuery::Sort::id) {
      if (!q->after.empty()) {
        auto after = d.store->get_vm_by_name(q->after);
        opts.after_id = after ? after->id : q->after;
      }
    } else {
      // By name the cursor is the name itself (unique): no lookup, and a VM deleted
      // between two pages does not lose the place.
      opts.order = q->sort == VmListQuery::Sort::name ? store::VmListOptions::Order::name
                                                       : store::VmListOptions::Order::name_desc;
      opts.after_name = q->after;
    }
    if (!q->host.empty()) {
      auto h = d.store->get_host_by_name(q->host);
      if (!h) return HttpResponse::json(200, {{"vms", nlohmann::json::array()}, {"next", nullptr}});
      opts.host_id = h->id;
    }
    auto list = d.store->list_vms(opts);
    if (!list) return error_response(list.error());
    const bool more = q->limit > 0 && static_cast<int>(list->size()) > q->limit;
    if (more) list->resize(static_cast<size_t>(q->limit));
    auto names = host_names(d);
    if (!names) return error_response(names.error());
    nlohmann::json items = nlohmann::json::array();
    for (const auto& vm : *list) {
      auto h = vm.host_id ? names->find(*vm.host_id) : names->end();
      items.push_back(vm_to_json(vm, h != names->end() ? h->second : std::string()));
    }
    nlohmann::json next = nullptr;
    if (more) next = list->back().name;
    return HttpResponse::json(200, {{"vms", items}, {"next", next}});
  });
  api.router().add("GET", "/api/v1/vms/{name}", RouteOptions{}, [&d](HttpRequest& r) {
    auto vm = d.store->get_vm_by_name(r.param("name"));
    if (!vm) return error_response(vm.error());
    auto j = vm_to_json(*vm, host_name_of(d, *vm));
    // The CPU: what its QEMU runs with, the CPU it gets at its next start (the spec's, or
    // its host's cluster baseline) and, when they differ, that it adopts it then.
    if (d.clusters && vm->host_id) {
      if (auto host = d.store->get_host(*vm->host_id)) {
        std::string next = j["spec"].value("cpu_model", nlohmann::json(nullptr)).is_string()
                               ? j["spec"]["cpu_model"].get<std::string>()
                               : std::string();
        if (next.empty())
          if (auto m = d.clusters->cpu_model_for(*host)) next = *m;
        const auto& now = j["status"]["cpu_model"];
        nlohmann::json cpu = {{"model", now},
                              {"cluster", host->cluster},
                              {"next_start", next.empty() ? nlohmann::json(nullptr) : nlohmann::json(next)}};
        if (now.is_string() && !next.empty() && now.get<std::string>() != next)
          cpu["note"] = "runs with " + now.get<std::string>() + "; adopts " + next +
                        " (its cluster's CPU baseline) at its next start";
        j["cpu"] = std::move(cpu);
      }
    }
    return HttpResponse::json(200, j);
  });

  // Per-VM metrics history: the VM's entries in its host's bounded samples (the agent
  // reports every running VM in each sample), oldest first; a sample without the VM (it
  // was not running) is left out. Live: the host's metrics stream carries the same.
  api.router().add("GET", "/api/v1/vms/{name}/metrics", RouteOptions{}, [&d](HttpRequest& r) {
    auto limit = query_int(r, "limit", 60, 1, 10000);
    if (!limit) return error_response(limit.error());
    auto vm = d.store->get_vm_by_name(r.param("name"));
    if (!vm) return error_response(vm.error());
    nlohmann::json items = nlohmann::json::array();
    if (vm->host_id) {
      auto samples = d.store->list_host_metrics(*vm->host_id, *limit);
      if (!samples) return error_response(samples.error());
      for (const auto& s : *samples) {
        auto m = vm_metrics_of(nlohmann::json::parse(s.data, nullptr, false), vm->name);
        if (m.is_null()) continue;
        m["time_ms"] = s.time_ms;
        items.push_back(std::move(m));
      }
    }
    return HttpResponse::json(200, {{"vm", vm->name}, {"host", host_name_of(d, *vm)},
                                    {"samples", items}});
  });

  RouteOptions op;
  op.role = Role::operator_;
  for (VmVerb verb : {VmVerb::start, VmVerb::stop, VmVerb::reboot, VmVerb::pause, VmVerb::resume}) {
    RouteOptions o = op;
    o.action = std::string("vm.") + to_string(verb);
    api.router().add("POST", std::string("/api/v1/vms/{name}/") + to_string(verb), o,
                     [&d, verb](HttpRequest& r) { return vm_action(d, r, verb); });
  }
  // Labels: set or remove keys (the web console's bulk "add label"); no task, the agent is
  // not involved.
  RouteOptions patch = op;
  patch.action = "vm.update";
  api.router().add("PATCH", "/api/v1/vms/{name}", patch, [&d](HttpRequest& r) {
    auto body = parse_json_object(r.body);
    if (!body) return error_response(body.error());
    auto p = decode_vm_patch(*body);
    if (!p) return error_response(p.error());
    auto expected = expected_version(r, &*body);
    if (!expected) return error_response(expected.error());
    auto vm = relabel_vm(*d.store, *d.events, r.param("name"), p->labels, *expected, audit_actor(r));
    if (!vm) return error_response(vm.error());
    return HttpResponse::audited_json(200, vm_to_json(*vm, host_name_of(d, *vm)), "vm/" + vm->name);
  });

  RouteOptions cdrom = op;
  cdrom.action = "vm.cdrom";
  api.router().add("POST", "/api/v1/vms/{name}/cdrom", cdrom,
                   [&d](HttpRequest& r) { return change_cdrom(d, r); });

  RouteOptions resize = op;
  resize.action = "vm.disk.resize";
  api.router().add("POST", "/api/v1/vms/{name}/disks/{disk}/resize", resize,
                   [&d](HttpRequest& r) { return resize_disk(d, r); });

  RouteOptions disk_attach = op;
  disk_attach.action = "vm.disk.attach";
  api.router().add("POST", "/api/v1/vms/{name}/disks", disk_attach,
                   [&d](HttpRequest& r) { return attach_disk(d, r); });
  RouteOptions disk_detach = op;
  disk_detach.action = "vm.disk.detach";
  api.router().add("DELETE", "/api/v1/vms/{name}/disks/{disk}", disk_detach, [&d](HttpRequest& r) {
    auto change = d.vms->detach_disk(r.param("name"), r.param("disk"), audit_actor(r));
    if (!change) return error_response(change.error());
    return change_response(d, *change);
  });
  RouteOptions nic_attach = op;
  nic_attach.action = "vm.nic.attach";
  api.router().add("POST", "/api/v1/vms/{name}/nics", nic_attach,
                   [&d](HttpRequest& r) { return attach_nic(d, r); });
  RouteOptions nic_detach = op;
  nic_detach.action = "vm.nic.detach";
  api.router().add("DELETE", "/api/v1/vms/{name}/nics/{mac}", nic_detach, [&d](HttpRequest& r) {
    auto change = d.vms->detach_nic(r.param("name"), r.param("mac"), audit_actor(r));
    if (!change) return error_response(change.error());
    return change_response(d, *change);
  });

  RouteOptions mig = op;
  mig.action = "vm.migrate";
  api.router().add("POST", "/api/v1/vms/{name}/migrate", mig,
                   [&d](HttpRequest& r) { return migrate_vm(d, r); });
  RouteOptions mig_cancel = op;
  mig_cancel.action = "vm.migrate_cancel";
  mig_cancel.offload = true;  // tells the source agent (an RPC): not on an I/O thread
  api.router().add("POST", "/api/v1/vms/{name}/migrate/cancel", mig_cancel,
                   [&d](HttpRequest& r) {
                     auto change = d.vms->cancel_migration(r.param("name"), audit_actor(r));
                     if (!change) return error_response(change.error());
                     return change_response(d, *change);
                   });
  RouteOptions del = op;
  del.action = "vm.delete";
  api.router().add("DELETE", "/api/v1/vms/{name}", del,
                   [&d](HttpRequest& r) { return vm_action(d, r, VmVerb::remove); });
}

}  // namespace strata::manager
