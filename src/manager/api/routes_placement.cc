// Dry-run placement: POST /api/v1/placement takes the body of POST /api/v1/vms and answers
// where the VM would go now and why not on each other host (the scheduler's explanation),
// creating nothing. The web console's create wizard shows it before "Create"; the same
// question serves what-if checks from scripts. Validated exactly as a create (400 naming
// the field, 409 for a taken name), so what it accepts a create accepts too.
#include <fmt/format.h>

#include "strata/manager/api/api_service.h"
#include "strata/manager/api/json_fields.h"
#include "strata/manager/api/vm_rest.h"
#include "strata/manager/controllers/datastores.h"
#include "strata/manager/controllers/image_distribution.h"
#include "strata/manager/controllers/placement.h"
#include "strata/model/validation.h"

namespace strata::manager {

namespace {

// complete() fills an empty uuid and MACs from this; a preview never keeps them, but each
// call must differ (two NICs with the same generated MAC would be refused). splitmix64.
uint64_t preview_random() {
  thread_local uint64_t state = 0x2545f4914f6cdd1dull;
  uint64_t z = (state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

nlohmann::json preview_to_json(const PlacementPreview& p) {
  nlohmann::json candidates = nlohmann::json::array();
  for (const auto& c : p.candidates) candidates.push_back({{"host", c.host_name}, {"score", c.score}});
  nlohmann::json rejected = nlohmann::json::array();
  for (const auto& r : p.rejected)
    rejected.push_back(
        {{"host", r.host_name}, {"filter", std::string(sched::to_string(r.filter))}, {"reason", r.reason}});
  nlohmann::json host = nullptr;
  if (!p.candidates.empty()) host = p.candidates.front().host_name;
  return {{"fits", !p.candidates.empty()}, {"host", host},        {"hosts", p.hosts},
          {"summary", p.summary},          {"candidates", candidates}, {"rejected", rejected}};
}

HttpResponse preview_placement(ApiDeps& d, HttpRequest& r) {
  auto body = parse_json_object(r.body);
  if (!body) return error_response(body.error());
  bool start = true;
  auto doc = vm_document_from_request(*body, &start);
  if (!doc) return error_response(doc.error());
  auto completed = model::complete(doc->spec, &preview_random);
  if (!completed) return error_response(completed.error());
  doc->spec = std::move(*completed);
  if (auto st = check_image_kinds(*d.store, doc->spec); !st) return error_response(st.error());
  {
    auto hosts = d.store->list_hosts({});
    if (!hosts) return error_response(hosts.error());
    if (auto st = resolve_datastores(doc->spec, *hosts); !st) return error_response(st.error());
  }
  if (d.store->get_vm_by_name(doc->spec.name))
    return error_response(Error{ErrorCode::already_exists,
                                fmt::format("a VM named '{}' already exists", doc->spec.name),
                                "name"});
  if (!d.placement) return error_response(Error{ErrorCode::unavailable, "no scheduler", ""});
  auto preview = d.placement->preview(*doc);
  if (!preview) return error_response(preview.error());
  return HttpResponse::json(200, preview_to_json(*preview));
}

}  // namespace

void add_placement_routes(ApiService& api) {
  ApiDeps& d = api.deps();
  // A question, not a change: any role may ask, nothing is audited.
  api.router().add("POST", "/api/v1/placement", RouteOptions{},
                   [&d](HttpRequest& r) { return preview_placement(d, r); });
}

}  // namespace strata::manager
