// The deadline of one agent RPC, as a bound from now (the AgentClient files share it).
#pragma once

#include <grpcpp/client_context.h>

#include <chrono>

namespace strata::manager {

inline void set_deadline(grpc::ClientContext& ctx, std::chrono::milliseconds t) {
  ctx.set_deadline(std::chrono::system_clock::now() + t);
}

}  // namespace strata::manager
