// /healthz, /metrics, /api/v1/openapi.json, /api/v1/version.
#include <fmt/format.h>

#include "strata/manager/api/api_service.h"

namespace strata::manager {

namespace {

void append_state_gauges(ApiDeps& d, std::string& out) {
  std::map<std::string, int> hosts, vms;
  for (const char* s : {"up", "unreachable", "maintenance", "enrolling"}) hosts[s] = 0;
  if (auto hs = d.store->list_hosts({}))
    for (const auto& h : *hs) ++hosts[h.state];
  if (auto vs = d.store->list_vms({}))
    for (const auto& v : *vs) {
      auto j = nlohmann::json::parse(v.status, nullptr, false);
      std::string st = (!j.is_discarded() && j.is_object()) ? j.value("state", "pending") : "pending";
      ++vms[st];
    }
  render_families({gauge_family("strata_hosts", "Hosts by state.", "state", hosts),
                   gauge_family("strata_vms", "VMs by observed state.", "state", vms)},
                  out);
}

}  // namespace

void add_system_routes(ApiService& api) {
  ApiDeps& d = api.deps();
  RouteOptions open;
  open.role = std::nullopt;
  api.router().add("GET", "/healthz", open, [&d](HttpRequest&) {
    if (auto st = d.store->ping(); !st)
      return HttpResponse::json(503, {{"status", "unavailable"}, {"store", st.error().message}});
    return HttpResponse::json(200, {{"status", "ok"}});
  });
  api.router().add("GET", "/metrics", open, [&api, &d](HttpRequest&) {
    std::string out;
    api.metrics().render(out);
    append_state_gauges(d, out);
    return HttpResponse::text(200, std::move(out), "text/plain; version=0.0.4");
  });
  api.router().add("GET", "/api/v1/openapi.json", open, [](HttpRequest&) {
    return HttpResponse::text(200, openapi_document(), "application/json");
  });
  api.router().add("GET", "/api/v1/version", RouteOptions{}, [&d](HttpRequest&) {
    return HttpResponse::json(200, {{"version", d.version},
                                    {"api", "v1"},
                                    {"store", d.store->backend()}});
  });
}

}  // namespace strata::manager
