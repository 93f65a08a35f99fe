// HTTP value helpers, role names, and the one ErrorCode -> HTTP status mapping.
#include "strata/manager/api/http.h"

#include <fmt/format.h>
#include <sys/statvfs.h>

namespace strata::manager {

std::string_view to_string(Role r) {
  switch (r) {
    case Role::viewer: return "viewer";
    case Role::operator_: return "operator";
    case Role::admin: return "admin";
  }
  return "viewer";
}

std::optional<Role> role_from_string(std::string_view s) {
  if (s == "viewer") return Role::viewer;
  if (s == "operator") return Role::operator_;
  if (s == "admin") return Role::admin;
  return std::nullopt;
}

std::string HttpRequest::header(const std::string& lower_name) const {
  auto it = headers.find(lower_name);
  return it == headers.end() ? std::string{} : it->second;
}

std::string HttpRequest::param(const std::string& name) const {
  auto it = params.find(name);
  return it == params.end() ? std::string{} : it->second;
}

HttpResponse HttpResponse::json(unsigned status, const nlohmann::json& j) {
  HttpResponse r;
  r.status = status;
  // Strings in a response can hold bytes that are not UTF-8 (a percent-decoded path echoed
  // in a 404, a key cut at 64 bytes): replace them (U+FFFD) instead of throwing, which on
  // an HTTP thread would take the whole manager down.
  r.body = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  return r;
}

HttpResponse HttpResponse::audited_json(unsigned status, const nlohmann::json& j,
                                        std::string target) {
  HttpResponse r = json(status, j);
  r.audit_target = std::move(target);
  r.audit_written = true;
  return r;
}

HttpResponse HttpResponse::text(unsigned status, std::string body, std::string content_type) {
  HttpResponse r;
  r.status = status;
  r.body = std::move(body);
  r.content_type = std::move(content_type);
  return r;
}

unsigned http_status(ErrorCode code) {
  switch (code) {
    case ErrorCode::invalid_argument: return 400;
    case ErrorCode::unauthenticated: return 401;
    case ErrorCode::permission_denied: return 403;
    case ErrorCode::not_found: return 404;
    case ErrorCode::already_exists: return 409;
    case ErrorCode::conflict: return 409;
    case ErrorCode::failed_precondition: return 409;
    case ErrorCode::payload_too_large: return 413;
    case ErrorCode::resource_exhausted: return 422;
    case ErrorCode::internal: return 500;
    case ErrorCode::unavailable: return 503;
    case ErrorCode::deadline_exceeded: return 504;
  }
  return 500;
}

HttpResponse error_response(const Error& e) {
  nlohmann::json err = {{"code", std::string(strata::to_string(e.code))}, {"message", e.message}};
  if (!e.field.empty()) err["field"] = e.field;
  HttpResponse r = HttpResponse::json(http_status(e.code), {{"error", err}});
  if (e.code == ErrorCode::unauthenticated)
    r.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"strata\"");
  return r;
}

std::optional<uint64_t> free_bytes(const std::string& dir) {
  struct statvfs v {};
  if (::statvfs(dir.c_str(), &v) != 0) return std::nullopt;
  return static_cast<uint64_t>(v.f_bavail) * v.f_frsize;
}

HttpResponse insufficient_storage(const std::string& dir, std::optional<uint64_t> needed) {
  auto avail = free_bytes(dir);
  std::string message = "not enough free space in the data folder";
  if (needed) message += fmt::format(": the body is {} bytes", *needed);
  message += avail ? fmt::format(", {} bytes are free", *avail) : ", free space unknown";
  auto r = error_response(Error{ErrorCode::resource_exhausted, message, ""});
  r.status = 507;
  return r;
}

}  // namespace strata::manager
