// The strata CLI's exit codes and the one place that maps errors (server envelopes, HTTP
// statuses, local failures) onto them. Scripts rely on these numbers: keep them stable.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "strata/common/error.h"

namespace strata::cli {

enum class ExitCode : int {
  ok = 0,
  generic = 1,       // anything not listed below (internal errors, failed tasks, timeouts)
  usage = 2,         // bad command line (unknown flag, missing argument, bad size string)
  not_found = 3,     // 404
  conflict = 4,      // 409: already exists, version mismatch, wrong state
  unauthorized = 5,  // 401 / 403
  unavailable = 6,   // 503, connection refused, network timeout
  invalid = 7,       // 400 / 413 / 422: the server rejected the input
};

inline int to_int(ExitCode c) { return static_cast<int>(c); }

// ErrorCode -> exit code. The single mapping used by every command.
ExitCode exit_code_for(ErrorCode code);
inline ExitCode exit_code_for(const Error& e) { return exit_code_for(e.code); }

// Parses an ErrorCode name as sent by the server ("invalid_argument").
std::optional<ErrorCode> error_code_from_string(std::string_view name);

// HTTP status -> ErrorCode, used when a response carries no (readable) error envelope.
ErrorCode error_code_for_http_status(unsigned status);

// Builds the Error for a non-2xx response: the envelope {"error":{code,message,field}} when
// present and well-formed, else the status code and the start of the body.
Error error_from_response(unsigned status, std::string_view body);

// "error: invalid_argument (memory_mib): memory_mib must be 64..1048576"
std::string format_error(const Error& e);

}  // namespace strata::cli
