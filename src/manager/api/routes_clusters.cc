// Clusters and their CPU baseline (controllers/clusters.h): list, show (with each host's
// fit), create, change the baseline setting, delete. Moving a host is PATCH
// /api/v1/hosts/{name} {"cluster"}.
#include "strata/manager/api/api_service.h"
#include "strata/manager/api/json_fields.h"
#include "strata/manager/controllers/clusters.h"

namespace strata::manager {

namespace {

nlohmann::json cluster_json(const store::ClusterRecord& c) {
  return {{"name", c.name},
          {"cpu_baseline", c.cpu_baseline},
          {"cpu_model", c.cpu_model.empty() ? nlohmann::json(nullptr) : nlohmann::json(c.cpu_model)},
          {"cpu_reason", c.cpu_reason},
          {"resource_version", c.resource_version},
          {"created_ms", c.created_ms},
          {"updated_ms", c.updated_ms}};
}

HttpResponse unavailable_response() {
  return error_response(Error{ErrorCode::unavailable, "clusters are not running", ""});
}

}  // namespace

void add_cluster_routes(ApiService& api) {
  ApiDeps& d = api.deps();
  api.router().add("GET", "/api/v1/clusters", RouteOptions{}, [&d](HttpRequest&) {
    if (!d.clusters) return unavailable_response();
    auto list = d.clusters->list();
    if (!list) return error_response(list.error());
    auto hosts = d.store->list_hosts({});
    if (!hosts) return error_response(hosts.error());
    nlohmann::json items = nlohmann::json::array();
    for (const auto& c : *list) {
      auto j = cluster_json(c);
      int n = 0;
      for (const auto& h : *hosts) n += h.cluster == c.name ? 1 : 0;
      j["hosts"] = n;
      items.push_back(std::move(j));
    }
    return HttpResponse::json(200, {{"clusters", items}});
  });

  api.router().add("GET", "/api/v1/clusters/{name}", RouteOptions{}, [&d](HttpRequest& r) {
    if (!d.clusters) return unavailable_response();
    auto v = d.clusters->view(r.param("name"));
    if (!v) return error_response(v.error());
    auto j = cluster_json(v->cluster);
    nlohmann::json hosts = nlohmann::json::array();
    for (const auto& h : v->hosts) {
      nlohmann::json hj = {{"name", h.name},
                           {"state", h.state},
                           {"cpu_models_probed", h.probed},
                           {"offers_baseline", h.offers},
                           {"best_cpu_model", h.best_model.empty() ? nlohmann::json(nullptr)
                                                                   : nlohmann::json(h.best_model)}};
      if (!h.why_not.empty()) hj["why_not"] = h.why_not;
      hosts.push_back(std::move(hj));
    }
    j["hosts"] = std::move(hosts);
    return HttpResponse::json(200, j);
  });

  RouteOptions create;
  create.role = Role::admin;
  create.action = "cluster.create";
  api.router().add("POST", "/api/v1/clusters", create, [&d](HttpRequest& r) {
    if (!d.clusters) return unavailable_response();
    auto body = parse_json_object(r.body);
    if (!body) return error_response(body.error());
    if (auto st = check_fields(*body, {{"name", JsonType::string, true},
                                       {"cpu_baseline", JsonType::string}});
        !st)
      return error_response(st.error());
    auto c = d.clusters->create((*body)["name"].get<std::string>(),
                                optional_string(*body, "cpu_baseline", "auto"), audit_actor(r));
    if (!c) return error_response(c.error());
    return HttpResponse::audited_json(201, cluster_json(*c), "cluster/" + c->name);
  });

  RouteOptions patch;
  patch.role = Role::admin;
  patch.action = "cluster.update";
  api.router().add("PATCH", "/api/v1/clusters/{name}", patch, [&d](HttpRequest& r) {
    if (!d.clusters) return unavailable_response();
    auto body = parse_json_object(r.body);
    if (!body) return error_response(body.error());
    if (auto st = check_fields(*body, {{"cpu_baseline", JsonType::string, true}}); !st)
      return error_response(st.error());
    auto c = d.clusters->set_baseline(r.param("name"), (*body)["cpu_baseline"].get<std::string>(),
                                      audit_actor(r));
    if (!c) return error_response(c.error());
    return HttpResponse::audited_json(200, cluster_json(*c), "cluster/" + c->name);
  });

  RouteOptions del;
  del.role = Role::admin;
  del.action = "cluster.delete";
  api.router().add("DELETE", "/api/v1/clusters/{name}", del, [&d](HttpRequest& r) {
    if (!d.clusters) return unavailable_response();
    if (auto st = d.clusters->remove(r.param("name"), audit_actor(r)); !st)
      return error_response(st.error());
    return HttpResponse::audited_json(200, {{"deleted", r.param("name")}},
                                      "cluster/" + r.param("name"));
  });
}

}  // namespace strata::manager
