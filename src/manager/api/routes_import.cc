// VM import over HTTP (docs/internals/import.md):
//   POST /api/v1/vms/import/plan {"format", "descriptor"}: the descriptor mapped, nothing
//     stored (the CLI learns which disk files a libvirt domain needs; a dry run for OVFs).
//   POST /api/v1/vms/import?format=ova|libvirt&name=&host=&start= with a tar body streamed
//     to a file (an OVA as it is, or domain.xml + disk-<i> as the CLI writes it): disks
//     converted into the catalog and the VM created (vms/vm_import.h).
#include <fmt/format.h>

#include <charconv>

#include "strata/manager/api/api_service.h"
#include "strata/manager/api/json_fields.h"
#include "strata/manager/api/vm_rest.h"
#include "strata/manager/tasks/task_tracker.h"
#include "strata/manager/vms/vm_import.h"
#include "strata/model/validation.h"
#include "strata/model/vm_spec_json.h"

namespace strata::manager {

namespace {

nlohmann::json plan_json(const model::ImportPlan& p) {
  nlohmann::json disks = nlohmann::json::array();
  for (const auto& d : p.disks)
    disks.push_back({{"name", d.name},
                     {"source", d.source},
                     {"format", d.format},
                     {"capacity_bytes", d.capacity_bytes},
                     {"boot", d.boot},
                     {"readonly", d.readonly},
                     {"compression", d.compression}});
  return {{"descriptor_name", p.descriptor_name},
          {"spec", model::to_json(p.spec)},
          {"disks", disks},
          {"unmapped", p.unmapped}};
}

Result<model::ImportFormat> format_param(const HttpRequest& r) {
  std::string f = r.query.count("format") ? r.query.at("format") : "";
  auto format = model::import_format_from_string(f);
  if (!format) return invalid_argument("format", "format must be ova or libvirt");
  return *format;
}

// {"source network": "bridge", ...} (the plan's body field, the import's query parameter).
Result<model::NetworkMap> network_map_from_json(const nlohmann::json& j) {
  if (!j.is_object())
    return invalid_argument("network_map", "an object mapping source network names to bridges");
  model::NetworkMap map;
  for (const auto& [source, bridge] : j.items()) {
    if (!bridge.is_string())
      return invalid_argument("network_map", "each source network maps to a bridge name");
    map[source] = bridge.get<std::string>();
  }
  if (auto st = model::validate_network_map("network_map", map); !st)
    return tl::unexpected(st.error());
  return map;
}

// network_map=<JSON object>, URL-encoded; absent: no mapping.
Result<model::NetworkMap> network_map_param(const HttpRequest& r) {
  auto it = r.query.find("network_map");
  if (it == r.query.end()) return model::NetworkMap{};
  if (it->second.size() > 16384)
    return invalid_argument("network_map", "the network map is too long");
  auto j = nlohmann::json::parse(it->second, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded())
    return invalid_argument("network_map",
                            "a JSON object {\"source network\": \"bridge\"} (URL-encoded)");
  return network_map_from_json(j);
}

std::optional<HttpResponse> check_import_head(ApiDeps& d, const HttpRequest& r, bool before_body) {
  if (!d.importer || !d.images)
    return error_response(Error{ErrorCode::unavailable, "this manager cannot import VMs", ""});
  if (auto f = format_param(r); !f) return error_response(f.error());
  std::string name = r.query.count("name") ? r.query.at("name") : "";
  if (!name.empty()) {
    if (auto st = model::validate_name("name", name); !st) return error_response(st.error());
    if (d.store->get_vm_by_name(name))
      return error_response(
          Error{ErrorCode::already_exists, fmt::format("vm {} already exists", name), "name"});
  }
  if (r.query.count("host"))
    if (auto st = model::validate_name("host", r.query.at("host")); !st)
      return error_response(st.error());
  if (auto m = network_map_param(r); !m) return error_response(m.error());
  if (r.query.count("start") && r.query.at("start") != "true" && r.query.at("start") != "false")
    return error_response(
        Error{ErrorCode::invalid_argument, "start must be true or false", "start"});
  std::string ctype = r.header("content-type");
  if (!ctype.empty() && ctype.rfind("application/octet-stream", 0) != 0 &&
      ctype.rfind("application/x-tar", 0) != 0)
    return error_response(Error{ErrorCode::invalid_argument,
                                "the body must be a tar archive (application/x-tar)",
                                "Content-Type"});
  // The converted disks land next to the upload: a body larger than the free space
  // cannot be imported (507 before the transfer).
  std::string length = r.header("content-length");
  uint64_t announced = 0;
  if (before_body && !length.empty() &&
      std::from_chars(length.data(), length.data() + length.size(), announced).ec == std::errc()) {
    auto avail = free_bytes(d.images->catalog_dir());
    if (avail && announced > *avail)
      return insufficient_storage(d.images->catalog_dir(), announced);
  }
  return std::nullopt;
}

HttpResponse import_vm(ApiDeps& d, HttpRequest& r) {
  if (auto early = check_import_head(d, r, /*before_body=*/false)) return std::move(*early);
  ImportRequest req;
  req.format = *format_param(r);
  req.archive_path = r.body_file;
  if (req.archive_path.empty())
    return error_response(Error{ErrorCode::invalid_argument, "the archive is empty", "body"});
  req.name = r.query.count("name") ? r.query.at("name") : "";
  req.host = r.query.count("host") ? r.query.at("host") : "";
  req.start = r.query.count("start") && r.query.at("start") == "true";
  req.actor = audit_actor(r);
  req.networks = *network_map_param(r);  // judged by check_import_head
  auto done = d.importer->import(req);
  if (!done) {
    auto resp = error_response(done.error());
    if (!req.name.empty()) resp.audit_target = "vm/" + req.name;
    return resp;
  }
  std::string host;
  if (done->change.vm.host_id)
    if (auto h = d.store->get_host(*done->change.vm.host_id)) host = h->name;
  nlohmann::json disks = nlohmann::json::array();
  for (const auto& x : done->disks)
    disks.push_back({{"disk", x.disk},
                     {"image", x.image},
                     {"source_format", x.source_format},
                     {"virtual_size", x.virtual_size}});
  nlohmann::json answer = {{"vm", vm_to_json(done->change.vm, host)},
                           {"task", to_json(done->change.task)},
                           {"disks", disks},
                           {"unmapped", done->unmapped}};
  // The import's own task (its progress while the disks converted), ended.
  if (done->import_task) answer["import_task"] = to_json(*done->import_task);
  auto resp = HttpResponse::json(202, answer);
  resp.audit_target = "vm/" + done->change.vm.name;
  return resp;
}

HttpResponse plan_import(HttpRequest& r) {
  auto body = parse_json_object(r.body);
  if (!body) return error_response(body.error());
  for (const auto& [k, v] : body->items())
    if (k != "format" && k != "descriptor" && k != "network_map")
      return error_response(Error{ErrorCode::invalid_argument, "unknown field", k});
  auto fit = body->find("format");
  if (fit == body->end() || !fit->is_string())
    return error_response(
        Error{ErrorCode::invalid_argument, "format must be ova or libvirt", "format"});
  auto format = model::import_format_from_string(fit->get<std::string>());
  if (!format)
    return error_response(
        Error{ErrorCode::invalid_argument, "format must be ova or libvirt", "format"});
  auto dit = body->find("descriptor");
  if (dit == body->end() || !dit->is_string())
    return error_response(Error{ErrorCode::invalid_argument,
                                "descriptor must be the XML text (domain XML or OVF)",
                                "descriptor"});
  model::NetworkMap networks;
  if (auto nit = body->find("network_map"); nit != body->end()) {
    auto m = network_map_from_json(*nit);
    if (!m) return error_response(m.error());
    networks = std::move(*m);
  }
  auto plan = VmImporter::plan(*format, dit->get_ref<const std::string&>(), networks);
  if (!plan) return error_response(plan.error());
  return HttpResponse::json(200, plan_json(*plan));
}

}  // namespace

void add_import_routes(ApiService& api) {
  ApiDeps& d = api.deps();
  RouteOptions plan;
  plan.role = Role::operator_;
  plan.max_body = 2 * model::kMaxDescriptorBytes + 4096;  // JSON-escaped XML
  api.router().add("POST", "/api/v1/vms/import/plan", plan,
                   [](HttpRequest& r) { return plan_import(r); });
  RouteOptions upload;
  upload.role = Role::operator_;
  upload.action = "vm.import";
  upload.stream_body = true;
  upload.offload = true;  // qemu-img convert of every disk
  upload.max_body = d.image_max_bytes;
  upload.precheck = [&d](HttpRequest& head) {
    return check_import_head(d, head, /*before_body=*/true);
  };
  api.router().add("POST", "/api/v1/vms/import", upload,
                   [&d](HttpRequest& r) { return import_vm(d, r); });
}

}  // namespace strata::manager
