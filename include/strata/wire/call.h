// One synchronous unary call to an agent, as both of its clients make it (the manager's
// AgentClient and the local one of `strata-agent ctl`): a deadline from now, the stub's
// method, and a failure turned into an Error here (wire/status.h). The clients keep what
// differs between them: how the channel is made (mutual TLS and a pinned peer, or a local
// socket), their default deadlines, and the manager's callback-API calls.
#pragma once

#include <grpcpp/client_context.h>
#include <grpcpp/support/status.h>

#include <chrono>
#include <string_view>

#include "strata/common/error.h"
#include "strata/wire/status.h"

namespace strata::wire {

// The call's deadline, `timeout` from now.
inline void set_deadline(grpc::ClientContext& ctx, std::chrono::milliseconds timeout) {
  ctx.set_deadline(std::chrono::system_clock::now() + timeout);
}

// call(stub, &Stub::GetVm, request, timeout): the response, or the Error the status maps to
// (`peer` prefixes the message of a status without the agent's ErrorDetail, e.g. "agent: ").
template <class Stub, class Req, class Resp>
Result<Resp> call(Stub& stub, grpc::Status (Stub::*method)(grpc::ClientContext*, const Req&, Resp*),
                  const Req& request, std::chrono::milliseconds timeout,
                  std::string_view peer = {}) {
  grpc::ClientContext ctx;
  set_deadline(ctx, timeout);
  Resp response;
  grpc::Status st = (stub.*method)(&ctx, request, &response);
  if (!st.ok()) return tl::unexpected(from_grpc_status(st, peer));
  return response;
}

}  // namespace strata::wire
