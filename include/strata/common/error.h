// Errors as values, shared by every layer. One code enum; the REST layer maps codes to
// HTTP statuses in one place (manager/api), the CLI maps them to exit codes in one place.
#pragma once

#include <string>
#include <string_view>
#include <utility>

#include <tl/expected.hpp>

namespace strata {

enum class ErrorCode {
  invalid_argument,    // bad input; `field` names the offending field
  not_found,
  already_exists,
  conflict,            // state or version conflict (compare-and-swap failed)
  failed_precondition, // operation not valid in the current state
  resource_exhausted,  // does not fit (scheduling, quota)
  unauthenticated,
  permission_denied,
  unavailable,         // a dependency (host, QEMU, DB) cannot be reached right now
  deadline_exceeded,
  payload_too_large,
  internal,
};

std::string_view to_string(ErrorCode code);

struct Error {
  ErrorCode code = ErrorCode::internal;
  std::string message;  // for humans
  std::string field;    // for invalid_argument: the offending field ("spec.memory_mib")

  // Returns a copy whose message is prefixed with `context: `.
  Error wrap(std::string_view context) const;
  std::string to_string() const;
};

template <typename T>
using Result = tl::expected<T, Error>;
using Status = tl::expected<void, Error>;

inline tl::unexpected<Error> make_error(ErrorCode code, std::string message,
                                        std::string field = {}) {
  return tl::unexpected<Error>(Error{code, std::move(message), std::move(field)});
}
inline tl::unexpected<Error> invalid_argument(std::string field, std::string message) {
  return make_error(ErrorCode::invalid_argument, std::move(message), std::move(field));
}
inline tl::unexpected<Error> not_found(std::string message) {
  return make_error(ErrorCode::not_found, std::move(message));
}
inline tl::unexpected<Error> internal_error(std::string message) {
  return make_error(ErrorCode::internal, std::move(message));
}
inline tl::unexpected<Error> unavailable(std::string message) {
  return make_error(ErrorCode::unavailable, std::move(message));
}

}  // namespace strata
