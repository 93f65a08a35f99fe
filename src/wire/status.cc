// ErrorCode <-> grpc::StatusCode, and Error <-> grpc::Status with an ErrorDetail payload.
#include "strata/wire/status.h"

#include <fmt/format.h>
#include <grpcpp/channel.h>

#include <optional>
#include <string>

#include "strata/agent/v1/agent.pb.h"

namespace strata::wire {

namespace v1 = strata::agent::v1;

namespace {
std::optional<ErrorCode> error_code_from_name(std::string_view name) {
  for (ErrorCode c :
       {ErrorCode::invalid_argument, ErrorCode::not_found, ErrorCode::already_exists,
        ErrorCode::conflict, ErrorCode::failed_precondition, ErrorCode::resource_exhausted,
        ErrorCode::unauthenticated, ErrorCode::permission_denied, ErrorCode::unavailable,
        ErrorCode::deadline_exceeded, ErrorCode::payload_too_large, ErrorCode::internal}) {
    if (to_string(c) == name) return c;
  }
  return std::nullopt;
}
}  // namespace

grpc::StatusCode to_grpc_code(ErrorCode code) {
  switch (code) {
    case ErrorCode::invalid_argument:
      return grpc::StatusCode::INVALID_ARGUMENT;
    case ErrorCode::not_found:
      return grpc::StatusCode::NOT_FOUND;
    case ErrorCode::already_exists:
      return grpc::StatusCode::ALREADY_EXISTS;
    case ErrorCode::conflict:
      return grpc::StatusCode::ABORTED;
    case ErrorCode::failed_precondition:
      return grpc::StatusCode::FAILED_PRECONDITION;
    case ErrorCode::resource_exhausted:
      return grpc::StatusCode::RESOURCE_EXHAUSTED;
    case ErrorCode::unauthenticated:
      return grpc::StatusCode::UNAUTHENTICATED;
    case ErrorCode::permission_denied:
      return grpc::StatusCode::PERMISSION_DENIED;
    case ErrorCode::unavailable:
      return grpc::StatusCode::UNAVAILABLE;
    case ErrorCode::deadline_exceeded:
      return grpc::StatusCode::DEADLINE_EXCEEDED;
    case ErrorCode::payload_too_large:
      return grpc::StatusCode::OUT_OF_RANGE;
    case ErrorCode::internal:
      return grpc::StatusCode::INTERNAL;
  }
  return grpc::StatusCode::INTERNAL;
}

ErrorCode from_grpc_code(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::INVALID_ARGUMENT:
      return ErrorCode::invalid_argument;
    case grpc::StatusCode::NOT_FOUND:
      return ErrorCode::not_found;
    case grpc::StatusCode::ALREADY_EXISTS:
      return ErrorCode::already_exists;
    case grpc::StatusCode::ABORTED:
      return ErrorCode::conflict;
    case grpc::StatusCode::FAILED_PRECONDITION:
      return ErrorCode::failed_precondition;
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return ErrorCode::resource_exhausted;
    case grpc::StatusCode::UNAUTHENTICATED:
      return ErrorCode::unauthenticated;
    case grpc::StatusCode::PERMISSION_DENIED:
      return ErrorCode::permission_denied;
    case grpc::StatusCode::UNAVAILABLE:
      return ErrorCode::unavailable;
    case grpc::StatusCode::CANCELLED:
      return ErrorCode::unavailable;
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return ErrorCode::deadline_exceeded;
    case grpc::StatusCode::OUT_OF_RANGE:
      return ErrorCode::payload_too_large;
    default:
      return ErrorCode::internal;
  }
}

grpc::Status to_grpc_status(const Error& error) {
  v1::ErrorDetail detail;
  detail.set_code(std::string(to_string(error.code)));
  detail.set_field(error.field);
  detail.set_message(error.message);
  std::string message = error.message;
  if (!error.field.empty() && error.message.rfind(error.field, 0) != 0) {
    message = error.field + ": " + error.message;
  }
  return grpc::Status(to_grpc_code(error.code), message, detail.SerializeAsString());
}

Error from_grpc_status(const grpc::Status& status, std::string_view peer) {
  v1::ErrorDetail detail;
  if (!status.error_details().empty() && detail.ParseFromString(status.error_details())) {
    if (auto code = error_code_from_name(detail.code())) {
      return Error{*code, detail.message().empty() ? status.error_message() : detail.message(),
                   detail.field()};
    }
  }
  return Error{from_grpc_code(status.error_code()), std::string(peer) + status.error_message(), {}};
}

Error from_grpc_status(const grpc::Status& status, std::string_view peer, grpc::Channel& channel) {
  Error err = from_grpc_status(status, peer);
  if (status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) {
    static constexpr const char* kStates[] = {"idle", "connecting", "ready", "transient-failure",
                                              "shutdown"};
    const auto state = static_cast<int>(channel.GetState(false));
    if (state >= 0 && state < 5) err.message += fmt::format(" (channel {})", kStates[state]);
  }
  return err;
}

Status call_end_status(const grpc::Status& status, std::string_view peer) {
  if (status.ok() || status.error_code() == grpc::StatusCode::CANCELLED) return {};
  return tl::unexpected(from_grpc_status(status, peer));
}

grpc::Status unimplemented_status(std::string_view message) {
  return grpc::Status(grpc::StatusCode::UNIMPLEMENTED, std::string(message));
}

bool is_unimplemented(const grpc::Status& status) {
  return status.error_code() == grpc::StatusCode::UNIMPLEMENTED;
}

}  // namespace strata::wire
