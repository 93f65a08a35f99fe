// Error helpers: names for codes and human-readable rendering.
#include "strata/common/error.h"

namespace strata {

std::string_view to_string(ErrorCode code) {
  switch (code) {
    case ErrorCode::invalid_argument: return "invalid_argument";
    case ErrorCode::not_found: return "not_found";
    case ErrorCode::already_exists: return "already_exists";
    case ErrorCode::conflict: return "conflict";
    case ErrorCode::failed_precondition: return "failed_precondition";
    case ErrorCode::resource_exhausted: return "resource_exhausted";
    case ErrorCode::unauthenticated: return "unauthenticated";
    case ErrorCode::permission_denied: return "permission_denied";
    case ErrorCode::unavailable: return "unavailable";
    case ErrorCode::deadline_exceeded: return "deadline_exceeded";
    case ErrorCode::payload_too_large: return "payload_too_large";
    case ErrorCode::internal: return "internal";
  }
  return "internal";
}

Error Error::wrap(std::string_view context) const {
  Error e = *this;
  e.message = std::string(context) + ": " + message;
  return e;
}

std::string Error::to_string() const {
  std::string s(strata::to_string(code));
  if (!field.empty()) s += " [" + field + "]";
  s += ": " + message;
  return s;
}

}  // namespace strata
