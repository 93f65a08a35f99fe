// API tokens and host join tokens (admin only).
#include <fmt/format.h>

#include "strata/manager/api/api_service.h"
#include "strata/manager/api/json_fields.h"
#include "strata/model/validation.h"
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

constexpr int64_t kMaxTtlS = 10ll * 365 * 24 * 3600;
// A join token is a bearer credential for becoming a host (and getting a certificate the
// manager trusts): short-lived, one hour unless asked, a week at most.
constexpr int64_t kJoinDefaultTtlS = 3600;
constexpr int64_t kJoinMaxTtlS = 7ll * 24 * 3600;

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
    using T = JsonType;
    if (auto st = check_fields(*body, {{"name", T::string, true},
                                       {"role", T::string, true},
                                       {"ttl_s", T::unsigned_integer}});
        !st)
      return error_response(st.error());
    store::TokenRecord rec;
    rec.name = (*body)["name"].get<std::string>();
    if (auto st = model::validate_name("name", rec.name); !st) return error_response(st.error());
    rec.role = (*body)["role"].get<std::string>();
    if (!role_from_string(rec.role))
      return error_response(
          Error{ErrorCode::invalid_argument, "role must be admin, operator or viewer", "role"});
    if (body->contains("ttl_s") && !(*body)["ttl_s"].is_null()) {
      int64_t ttl = (*body)["ttl_s"].get<int64_t>();
      if (ttl < 1 || ttl > kMaxTtlS)
        return error_response(Error{ErrorCode::invalid_argument,
                                    fmt::format("ttl_s must be 1..{}", kMaxTtlS), "ttl_s"});
      rec.expires_ms = unix_ms(*d.clock) + ttl * 1000;
    }
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
    if (auto st = check_fields(*body, {{"ttl_s", JsonType::unsigned_integer}}); !st)
      return error_response(st.error());
    int64_t ttl = body->value("ttl_s", kJoinDefaultTtlS);
    if (ttl < 1 || ttl > kJoinMaxTtlS)
      return error_response(Error{ErrorCode::invalid_argument,
                                  fmt::format("ttl_s must be 1..{} (7 days)", kJoinMaxTtlS),
                                  "ttl_s"});
    auto secret = generate_secret("stj_");
    if (!secret) return error_response(secret.error());
    store::JoinTokenRecord rec;
    rec.secret_hash = sha256_hex(*secret);
    rec.expires_ms = unix_ms(*d.clock) + ttl * 1000;
    auto created = d.store->create_join_token(rec);
    if (!created) return error_response(created.error());
    nlohmann::json out = {
        {"id", created->id}, {"token", *secret}, {"expires_ms", *created->expires_ms}};
    // What the agent pins with --ca-fingerprint, so a join cannot be answered by another CA.
    if (d.ca) {
      auto fp = pki::cert_fingerprint(d.ca->cert_pem());
      if (!fp) return error_response(fp.error());
      out["ca_fingerprint"] = *fp;
    }
    auto resp = HttpResponse::json(201, out);
    resp.audit_target = "join_token/" + created->id;
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
