// The one place where Strata's ErrorCode and gRPC status codes are mapped, both ways, for
// both ends of the agent's gRPC contract: the agent service turns every Error into a
// grpc::Status here; its clients (the manager, `strata-agent ctl`) turn statuses back into
// Errors here.
#pragma once

#include <grpcpp/support/status.h>

#include <string_view>

#include "strata/common/error.h"

namespace grpc {
class Channel;
}  // namespace grpc

namespace strata::wire {

grpc::StatusCode to_grpc_code(ErrorCode code);
// Inverse of to_grpc_code for the codes it produces; other gRPC codes map to the closest
// Strata code (CANCELLED -> unavailable, UNKNOWN/UNIMPLEMENTED/DATA_LOSS -> internal).
ErrorCode from_grpc_code(grpc::StatusCode code);

// Message is "<field>: <message>" for an error with a field; error details carry a
// serialized strata.agent.v1.ErrorDetail with the exact code and field.
grpc::Status to_grpc_status(const Error& error);
// Recovers the Error: from the ErrorDetail when present (the exact code, message and
// field), else from the code and message, the message prefixed with `peer` (e.g.
// "agent: ", so a transport failure says which side it came from).
Error from_grpc_status(const grpc::Status& status, std::string_view peer = {});
// The same for a call on `channel`; a missed deadline also says the channel's state
// ("... (channel connecting)"), which tells an agent that is slow from one never reached.
Error from_grpc_status(const grpc::Status& status, std::string_view peer, grpc::Channel& channel);
// How a call, typically a stream, ended: ok when it succeeded or was cancelled (by its own
// caller: not an error), else the Error as from_grpc_status.
Status call_end_status(const grpc::Status& status, std::string_view peer = {});

// A method this agent does not have: one older than the method (the agent service answers
// so for an RPC its API level predates) or a driver without the feature. gRPC's own
// UNIMPLEMENTED, as an agent built before the method answers, so the manager's fallback
// (is_unimplemented) is one check for both.
grpc::Status unimplemented_status(std::string_view message);
bool is_unimplemented(const grpc::Status& status);

}  // namespace strata::wire
