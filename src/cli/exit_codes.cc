// Error -> exit code mapping and the server error envelope decoder (see exit_codes.h).
#include "strata/cli/exit_codes.h"

#include <nlohmann/json.hpp>

#include "strata/common/json.h"

namespace strata::cli {

namespace {
constexpr ErrorCode kAllCodes[] = {
    ErrorCode::invalid_argument,  ErrorCode::not_found,           ErrorCode::already_exists,
    ErrorCode::conflict,          ErrorCode::failed_precondition, ErrorCode::resource_exhausted,
    ErrorCode::unauthenticated,   ErrorCode::permission_denied,   ErrorCode::unavailable,
    ErrorCode::deadline_exceeded, ErrorCode::payload_too_large,   ErrorCode::internal,
};
}  // namespace

ExitCode exit_code_for(ErrorCode code) {
  switch (code) {
    case ErrorCode::invalid_argument:
    case ErrorCode::payload_too_large:
    case ErrorCode::resource_exhausted:
      return ExitCode::invalid;
    case ErrorCode::not_found:
      return ExitCode::not_found;
    case ErrorCode::already_exists:
    case ErrorCode::conflict:
    case ErrorCode::failed_precondition:
      return ExitCode::conflict;
    case ErrorCode::unauthenticated:
    case ErrorCode::permission_denied:
      return ExitCode::unauthorized;
    case ErrorCode::unavailable:
      return ExitCode::unavailable;
    case ErrorCode::deadline_exceeded:
    case ErrorCode::internal:
      return ExitCode::generic;
  }
  return ExitCode::generic;
}

std::optional<ErrorCode> error_code_from_string(std::string_view name) {
  for (ErrorCode c : kAllCodes)
    if (to_string(c) == name) return c;
  return std::nullopt;
}

ErrorCode error_code_for_http_status(unsigned status) {
  switch (status) {
    case 400:
      return ErrorCode::invalid_argument;
    case 401:
      return ErrorCode::unauthenticated;
    case 403:
      return ErrorCode::permission_denied;
    case 404:
      return ErrorCode::not_found;
    case 409:
      return ErrorCode::conflict;
    case 413:
      return ErrorCode::payload_too_large;
    case 422:
      return ErrorCode::resource_exhausted;
    case 502:
    case 503:
      return ErrorCode::unavailable;
    case 504:
      return ErrorCode::deadline_exceeded;
    default:
      return ErrorCode::internal;
  }
}

Error error_from_response(unsigned status, std::string_view body) {
  Error e;
  e.code = error_code_for_http_status(status);
  auto parsed = parse_json(body, JsonLimits{.max_depth = 16, .max_values = 10000});
  nlohmann::json j = parsed ? std::move(*parsed) : nlohmann::json();
  if (j.is_object() && j.contains("error") && j["error"].is_object()) {
    const auto& err = j["error"];
    // The status decides when the code is unknown to this client (a newer server).
    if (err.contains("code") && err["code"].is_string())
      if (auto c = error_code_from_string(err["code"].get<std::string>())) e.code = *c;
    if (err.contains("message") && err["message"].is_string())
      e.message = err["message"].get<std::string>();
    if (err.contains("field") && err["field"].is_string())
      e.field = err["field"].get<std::string>();
  }
  if (e.message.empty()) {
    std::string text(body.substr(0, 200));
    while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
    e.message = "HTTP " + std::to_string(status) + (text.empty() ? "" : ": " + text);
  }
  return e;
}

std::string format_error(const Error& e) {
  std::string out = "error: ";
  out += to_string(e.code);
  if (!e.field.empty()) out += " (" + e.field + ")";
  out += ": " + e.message;
  return out;
}

}  // namespace strata::cli
