// API tokens and host join tokens (admin only).
#include <fmt/format.h>

#include "strata/manager/api/api_service.h"
#include "strata/manager/api/json_fields.h"
#include "strata/pki/certificate_authority.h"
#include "strata/pki/pki.h"

namespace strata::manager {

namespace {

nlohmann::json token_json(const store::TokenRecord& t) {
  nlohmann::json j = {{"id", t.id},           {"name", t.name},
                      {"role", t.role},       {"revoked", t.revoked},
                      {"created_ms", t.created_ms}, {"resource_version", t.resource_version}};
  j["expires_ms"] = t.expires_ms ? nlohmann::json(*t.expires_ms) : nlohmann::json(nullptr);
  return j;
}

}  // namespace

void add_token_routes(ApiService& api) {
  ApiDeps& d = api.deps();
  RouteOptions admin;
  admin.role = Role::admin;
  RouteOptions create = admin;
  create.action = "token.create";
  api.router().add("POST", "/api/v1/tokens", create, [&d](HttpRequest& r) {
    auto body = parse_json_object(r.body);
    if (!body) return error_response(body.error());
    auto req = decode_token_create(*body);
    if (!req) return error_response(req.error());
    store::TokenRecord rec;
    rec.name = req->name;
    rec.role = std::string(to_string(req->role));
    if (req->ttl_s) rec.expires_ms = unix_ms(*d.clock) + *req->ttl_s * 1000;
    auto secret = generate_secret("sta_");
    if (!secret) return error_response(secret.error());
    rec.secret_hash = sha256_hex(*secret);
    auto created = d.store->create_token(rec);
    if (!created) return error_response(created.error());
    auto j = token_json(*created);
    j["token"] = *secret;
    auto resp = HttpResponse::json(201, j);
    resp.audit_target = "token/" + created->name;
    return resp;
  });
  api.router().add("GET", "/api/v1/tokens", admin, [&d](HttpRequest&) {
    auto list = d.store->list_tokens({});
    if (!list) return error_response(list.error());
    nlohmann::json items = nlohmann::json::array();
    for (const auto& t : *list) items.push_back(token_json(t));
    return HttpResponse::json(200, {{"tokens", items}});
  });
  RouteOptions del = admin;
  del.action = "token.delete";
  api.router().add("DELETE", "/api/v1/tokens/{id}", del, [&d](HttpRequest& r) {
    if (auto st = d.store->delete_token(r.param("id")); !st) return error_response(st.error());
    return HttpResponse::json(200, {{"deleted", r.param("id")}});
  });

  RouteOptions join = admin;
  join.action = "join_token.create";
  api.router().add("POST", "/api/v1/join-tokens", join, [&d](HttpRequest& r) {
    auto body = parse_json_object(r.body, /*allow_empty=*/true);
    if (!body) return error_response(body.error());
    auto req = decode_join_token_create(*body);
    if (!req) return error_response(req.error());
    const int64_t expires_ms = unix_ms(*d.clock) + req->ttl_s * 1000;
    // One token, or `count` of them in one transaction (all or none).
    const uint64_t n = req->count.value_or(1);
    nlohmann::json tokens = nlohmann::json::array();
    auto st = d.store->transaction([&](store::Store& tx) -> Status {
      tokens = nlohmann::json::array();
      for (uint64_t i = 0; i < n; ++i) {
        auto secret = generate_secret("stj_");
        if (!secret) return tl::unexpected(secret.error());
        store::JoinTokenRecord rec;
        rec.secret_hash = sha256_hex(*secret);
        rec.expires_ms = expires_ms;
        auto created = tx.create_join_token(rec);
        if (!created) return tl::unexpected(created.error());
        tokens.push_back(
            {{"id", created->id}, {"token", *secret}, {"expires_ms", *created->expires_ms}});
      }
      return {};
    });
    if (!st) return error_response(st.error());
    nlohmann::json out = req->count ? nlohmann::json{{"join_tokens", tokens}} : tokens[0];
    // What the agent pins with --ca-fingerprint, so a join cannot be answered by another CA.
    if (d.ca) {
      auto fp = pki::cert_fingerprint(d.ca->cert_pem());
      if (!fp) return error_response(fp.error());
      out["ca_fingerprint"] = *fp;
    }
    auto resp = HttpResponse::json(201, out);
    const std::string first = tokens[0]["id"].get<std::string>();
    resp.audit_target = n == 1 ? "join_token/" + first
                               : fmt::format("join_token/{} (and {} more)", first, n - 1);
    return resp;
  });
  api.router().add("GET", "/api/v1/join-tokens", admin, [&d](HttpRequest&) {
    auto list = d.store->list_join_tokens();
    if (!list) return error_response(list.error());
    nlohmann::json items = nlohmann::json::array();
    for (const auto& t : *list)
      items.push_back({{"id", t.id},
                       {"created_ms", t.created_ms},
                       {"expires_ms", t.expires_ms ? nlohmann::json(*t.expires_ms) : nullptr},
                       {"used_by_host", t.used_by_host ? nlohmann::json(*t.used_by_host) : nullptr}});
    return HttpResponse::json(200, {{"join_tokens", items}});
  });
  // Revocation: the token is gone, so an enrollment with it gets 401 "invalid join token".
  // A used token can be deleted too (the host it enrolled stays).
  RouteOptions join_del = admin;
  join_del.action = "join_token.delete";
  api.router().add("DELETE", "/api/v1/join-tokens/{id}", join_del, [&d](HttpRequest& r) {
    if (auto st = d.store->delete_join_token(r.param("id")); !st) return error_response(st.error());
    auto resp = HttpResponse::json(200, {{"deleted", r.param("id")}});
    resp.audit_target = "join_token/" + r.param("id");
    return resp;
  });
}

}  // namespace strata::manager
