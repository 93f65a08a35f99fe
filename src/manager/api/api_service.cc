// Request pipeline: route -> auth/role -> handler -> metrics + audit (see api_service.h).
#include "strata/manager/api/api_service.h"

#include <algorithm>
#include <chrono>

#include <fmt/format.h>

#include "strata/common/log.h"
#include "strata/manager/api/session_auth.h"
#include "strata/manager/api/static_files.h"

namespace strata::manager {

ApiService::ApiService(ApiDeps deps)
    : limiter_(deps.stream_caps),
      fanout_(deps.events ? std::make_unique<EventFanout>(*deps.events) : nullptr),
      deps_(std::move(deps)),
      enroll_limiter_(deps_.clock ? deps_.clock : system_clock(), deps_.enroll_rate),
      login_limiter_(deps_.clock ? deps_.clock : system_clock(), deps_.login_rate),
      failure_audit_(deps_.events, deps_.clock, deps_.failure_audit) {
  deps_.fanout = fanout_.get();
  deps_.streams = &limiter_;
  add_system_routes(*this);
  add_token_routes(*this);
  add_host_routes(*this);
  add_cluster_routes(*this);
  add_vm_routes(*this);
  add_snapshot_routes(*this);
  add_backup_routes(*this);
  add_clone_routes(*this);
  add_placement_routes(*this);
  add_task_event_routes(*this);
  add_console_route(*this);
  add_image_routes(*this);
  add_import_routes(*this);
  add_session_routes(*this);
  add_summary_routes(*this);
}

ApiService::~ApiService() { stop_streams(); }

void ApiService::stop_streams() {
  if (fanout_) fanout_->stop();
}

bool ApiService::streams_body(std::string_view method, std::string_view path) const {
  auto m = router_.match(method, path);
  return m.route && m.route->options.stream_body;
}

namespace {

// 429 when the client's address has used its budget for this route.
std::optional<HttpResponse> rate_limited(const Route& r, const HttpRequest& head) {
  if (!r.options.rate_limit) return std::nullopt;
  auto d = r.options.rate_limit->take(head.remote_address);
  if (d.allowed) return std::nullopt;
  auto secs =
      std::max<int64_t>(1, std::chrono::ceil<std::chrono::seconds>(d.retry_after).count());
  HttpResponse resp = error_response(Error{
      ErrorCode::resource_exhausted,
      fmt::format("too many requests to {} from this address; retry in {} s", r.pattern, secs),
      ""});
  resp.status = 429;
  resp.headers.emplace_back("Retry-After", std::to_string(secs));
  return resp;
}

}  // namespace

std::optional<HttpResponse> ApiService::admit(HttpRequest& head) {
  auto m = router_.match(head.method, head.path);
  if (!m.route) return std::nullopt;
  if (auto limited = rate_limited(*m.route, head)) return limited;
  if (!m.route->options.role) return std::nullopt;
  auto principal = authenticate_request(deps_, head);
  if (principal) head.principal = *principal;
  Status allowed = authorize(head.principal, *m.route->options.role);
  if (!principal && principal.error().code != ErrorCode::unauthenticated)
    allowed = tl::unexpected(principal.error());
  if (!allowed) return error_response(allowed.error());
  head.admitted = true;
  const Route& r = *m.route;
  if (!r.options.precheck) return std::nullopt;
  head.params = m.params;
  head.route = r.pattern;
  auto early = r.options.precheck(head);
  if (early && !r.options.action.empty()) {
    std::string actor = audit_actor(head);
    auto j = nlohmann::json::parse(early->body, nullptr, false);
    std::string message =
        !j.is_discarded() && j.contains("error") ? j["error"].value("message", "") : "";
    deps_.events->append(actor, r.options.action,
                         early->audit_target.empty() ? r.options.action.substr(
                                                           0, r.options.action.find('.'))
                                                     : early->audit_target,
                         fmt::format("error {}", early->status), message);
  }
  return early;
}

size_t ApiService::body_limit(std::string_view method, std::string_view path) const {
  auto m = router_.match(method, path);
  return m.route ? m.route->options.max_body : kDefaultBodyLimit;
}

bool is_json_media_type(std::string_view content_type) {
  auto semi = content_type.find(';');
  std::string_view type = content_type.substr(0, semi);
  while (!type.empty() && (type.back() == ' ' || type.back() == '\t')) type.remove_suffix(1);
  while (!type.empty() && (type.front() == ' ' || type.front() == '\t')) type.remove_prefix(1);
  std::string lower(type);
  for (auto& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (lower == "application/json") return true;
  // Structured-syntax suffix (RFC 6839): application/merge-patch+json and the like.
  return lower.rfind("application/", 0) == 0 && lower.size() > 17 &&
         lower.compare(lower.size() - 5, 5, "+json") == 0;
}

std::optional<HttpResponse> check_json_media_type(const HttpRequest& req,
                                                  const RouteOptions& route) {
  if (route.stream_body || req.body.empty()) return std::nullopt;
  std::string type = req.header("content-type");
  if (is_json_media_type(type)) return std::nullopt;
  HttpResponse resp = error_response(Error{
      ErrorCode::invalid_argument,
      type.empty() ? std::string("a request body needs Content-Type: application/json")
                   : fmt::format("Content-Type '{}' is not accepted here; send application/json",
                                 type.substr(0, 100)),
      "Content-Type"});
  resp.status = 415;
  return resp;
}

HttpResponse ApiService::dispatch(HttpRequest& req) {
  auto t0 = std::chrono::steady_clock::now();
  auto m = router_.match(req.method, req.path);
  if (!m.route && m.status == 404 && deps_.web && req.method == "GET" &&
      is_console_path(req.path))
    return deps_.web->serve(req.path);
  if (!m.route) {
    HttpResponse resp = error_response(
        Error{m.status == 405 ? ErrorCode::failed_precondition : ErrorCode::not_found,
              m.status == 405 ? "method not allowed on this path"
                              : fmt::format("no route for {}", req.path),
              ""});
    resp.status = m.status;
    return finish(nullptr, req, std::move(resp), t0, false);
  }
  const Route& r = *m.route;
  req.params = std::move(m.params);
  req.route = r.pattern;
  Status allowed;
  if (r.options.role && !req.admitted) {  // admitted: checked on the header, same route
    auto principal = authenticate_request(deps_, req);
    if (principal) req.principal = *principal;
    allowed = authorize(req.principal, *r.options.role);
    if (!principal && principal.error().code != ErrorCode::unauthenticated)
      allowed = tl::unexpected(principal.error());
  }
  if (!allowed) return finish(&r, req, error_response(allowed.error()), t0, false);
  if (auto bad_type = check_json_media_type(req, r.options))
    return finish(&r, req, std::move(*bad_type), t0, true);
  if (!r.options.offload) return finish(&r, req, r.handler(req), t0, true);
  // Slow work: the handler runs on a worker, the I/O thread goes back to other clients.
  HttpResponse later;
  const Route* route = &r;  // routes live as long as the service
  later.deferred = [this, route, t0, shared = std::make_shared<HttpRequest>(std::move(req))](
                       HttpResponse::Completion complete) {
    auto done = std::make_shared<HttpResponse::Completion>(std::move(complete));
    bool queued = offload_.submit([this, route, t0, shared, done] {
      (*done)(finish(route, *shared, route->handler(*shared), t0, true));
    });
    if (!queued) {
      auto busy = error_response(Error{ErrorCode::unavailable,
                                       "the manager is busy with other slow requests; retry", ""});
      busy.headers.emplace_back("Retry-After", "1");
      (*done)(finish(route, *shared, std::move(busy), t0, true));
    }
  };
  return later;
}

HttpResponse ApiService::finish(const Route* r, HttpRequest& req, HttpResponse resp,
                                std::chrono::steady_clock::time_point t0, bool audited) {
  if (r && !r->options.action.empty() && audited && !resp.audit_written) {
    std::string target = resp.audit_target;
    if (target.empty()) {
      std::string kind = r->options.action.substr(0, r->options.action.find('.'));
      std::string p = req.param("name");
      if (p.empty()) p = req.param("id");
      target = p.empty() ? kind : kind + "/" + p;
    }
    std::string actor = audit_actor(req);
    std::string result = resp.status < 400 ? "ok" : fmt::format("error {}", resp.status);
    std::string message;
    if (resp.status >= 400) {
      auto j = nlohmann::json::parse(resp.body, nullptr, false);
      if (!j.is_discarded() && j.contains("error")) message = j["error"].value("message", "");
    }
    // Failures of unauthenticated routes (bad join tokens) are bounded: anyone can cause
    // them. Anything else is written as it happens.
    if (!req.principal && resp.status >= 400) {
      failure_audit_.record(req.remote_address, r->options.action, target, result, message);
    } else {
      failure_audit_.flush_due();
      deps_.events->append(actor, r->options.action, target, result, message);
    }
  }
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  metrics_.record(r ? r->pattern : "unmatched", req.method, resp.status, secs);
  if (resp.status >= 500)
    logger("manager.api")->warn("request failed method={} path={} status={}", req.method,
                                req.path, resp.status);
  return resp;
}

}  // namespace strata::manager
