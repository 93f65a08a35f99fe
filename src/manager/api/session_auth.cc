// Request authentication (bearer or session cookie + CSRF) and the session routes; see
// session_auth.h and docs/internals/web.md.
#include "strata/manager/api/session_auth.h"

#include <cctype>

#include <fmt/format.h>

#include "strata/manager/api/json_fields.h"
#include "strata/manager/auth/sessions.h"

namespace strata::manager {

namespace {

bool is_safe_method(std::string_view m) { return m == "GET" || m == "HEAD" || m == "OPTIONS"; }

// "scheme://host[:port]" of the Origin header equals this request's Host, whatever scheme.
bool same_origin(std::string_view origin, std::string_view host) {
  auto sep = origin.find("://");
  if (sep == std::string_view::npos || host.empty()) return false;
  return origin.substr(sep + 3) == host;
}

// A WebSocket upgrade (RFC 6455: "Upgrade: websocket", any case).
bool is_websocket_upgrade(const HttpRequest& req) {
  std::string up = req.header("upgrade");
  for (auto& c : up) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return up.find("websocket") != std::string::npos;
}

Result<Principal> cookie_principal(const ApiDeps& deps, const HttpRequest& req,
                                   const std::string& id) {
  auto session = deps.sessions->find(id);
  if (!session)
    return make_error(ErrorCode::unauthenticated, "session expired or unknown; log in again");
  std::string origin = req.header("origin");
  if (!origin.empty() && !same_origin(origin, req.header("host")))
    return make_error(ErrorCode::permission_denied,
                      "cross-origin request refused for a session cookie");
  // Browsers send Origin with every WebSocket handshake and the same-origin policy does not
  // apply to WebSockets (cross-site WebSocket hijacking): a cookie opens one only with an
  // Origin that is this server's own.
  if (origin.empty() && is_websocket_upgrade(req))
    return make_error(ErrorCode::permission_denied,
                      "a WebSocket opened with a session cookie needs a same-origin Origin header");
  if (!is_safe_method(req.method) &&
      !constant_time_equal(req.header(std::string(kCsrfHeader)), session->csrf))
    return make_error(ErrorCode::permission_denied,
                      "missing or wrong X-CSRF-Token for this session");
  auto principal = deps.auth->authenticate_id(session->token_id);
  if (!principal && principal.error().code == ErrorCode::unauthenticated) {
    deps.sessions->remove(id);
    return make_error(ErrorCode::unauthenticated,
                      "the token this session was opened with is no longer valid");
  }
  return principal;
}

nlohmann::json session_json(const Principal& p, const std::string& csrf) {
  return {{"name", p.name}, {"role", std::string(to_string(p.role))}, {"csrf_token", csrf}};
}

}  // namespace

Result<Principal> authenticate_request(const ApiDeps& deps, HttpRequest& req) {
  std::string authorization = req.header("authorization");
  if (!authorization.empty() || !deps.sessions) return deps.auth->authenticate(authorization);
  auto id = cookie_value(req.header("cookie"), kSessionCookie);
  if (!id || id->empty()) return deps.auth->authenticate(authorization);
  return cookie_principal(deps, req, *id);
}

void add_session_routes(ApiService& api) {
  ApiDeps& d = api.deps();
  if (!d.sessions) return;

  // Login: the API token in the body (never in a URL); answers the session's CSRF token
  // and sets the HttpOnly cookie. Audited as the token's name.
  RouteOptions login;
  login.role = std::nullopt;
  login.max_body = 4096;
  login.action = "session.login";
  login.rate_limit = &api.login_limiter();  // per address, before the body is read
  api.router().add("POST", "/api/v1/session", login, [&d](HttpRequest& r) {
    // Login CSRF (a page elsewhere logging the browser in as someone else): the body must
    // be JSON (415 otherwise, so no plain form can send it) and an Origin must be ours.
    std::string origin = r.header("origin");
    if (!origin.empty() && !same_origin(origin, r.header("host")))
      return error_response(Error{ErrorCode::permission_denied, "cross-origin login refused", ""});
    auto body = parse_json_object(r.body);
    if (!body) return error_response(body.error());
    if (auto st = check_fields(*body, {{"token", JsonType::string, true}}); !st)
      return error_response(st.error());
    auto principal = d.auth->authenticate("Bearer " + (*body)["token"].get<std::string>());
    if (!principal) {
      if (principal.error().code != ErrorCode::unauthenticated)
        return error_response(principal.error());
      return error_response(Error{ErrorCode::unauthenticated, "invalid, revoked or expired token",
                                  "token"});
    }
    auto session = d.sessions->create(principal->token_id);
    if (!session) return error_response(session.error());
    r.principal = *principal;
    auto resp = HttpResponse::json(200, session_json(*principal, session->csrf));
    resp.headers.emplace_back("Set-Cookie",
                              session_set_cookie(session->id, d.secure_cookies,
                                                 d.sessions->config().max_age));
    resp.headers.emplace_back("Cache-Control", "no-store");
    resp.audit_target = "session/" + principal->name;
    return resp;
  });

  // Who is logged in (the page asks after a reload): name, role and the CSRF token; a
  // bearer-token caller gets an empty csrf_token (it needs none).
  api.router().add("GET", "/api/v1/session", RouteOptions{}, [&d](HttpRequest& r) {
    std::string csrf;
    if (r.header("authorization").empty())
      if (auto id = cookie_value(r.header("cookie"), kSessionCookie))
        if (auto s = d.sessions->find(*id)) csrf = s->csrf;
    auto resp = HttpResponse::json(200, session_json(*r.principal, csrf));
    resp.headers.emplace_back("Cache-Control", "no-store");
    return resp;
  });

  // Logout (CSRF-checked like every unsafe method): the session ends, the cookie is cleared.
  RouteOptions logout;
  logout.action = "session.logout";
  api.router().add("DELETE", "/api/v1/session", logout, [&d](HttpRequest& r) {
    if (auto id = cookie_value(r.header("cookie"), kSessionCookie)) d.sessions->remove(*id);
    auto resp = HttpResponse::json(200, {{"logged_out", true}});
    resp.headers.emplace_back("Set-Cookie", session_clear_cookie(d.secure_cookies));
    resp.audit_target = "session/" + (r.principal ? r.principal->name : std::string("unknown"));
    return resp;
  });
}

}  // namespace strata::manager
