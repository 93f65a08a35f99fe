// What every server of the agent's contract sets the same way: `strata-agent serve` and each
// simulated host of `strata-agent sim`.
#pragma once

#include <grpc/grpc.h>
#include <grpcpp/server_builder.h>

#include <chrono>

namespace strata::wire {

// A connection whose TLS handshake has not completed by then is closed. gRPC's default is
// 120 s; the manager stops waiting for a handshake after 20 s (gRPC's minimum connect
// timeout) and dials again, so a server that is behind kept every abandoned attempt's
// descriptor for two minutes. A client that opens connections and never finishes them holds
// descriptors for 20 s at most.
inline constexpr std::chrono::milliseconds kServerHandshakeTimeout{20000};

inline void apply_server_options(grpc::ServerBuilder& builder) {
  builder.AddChannelArgument(GRPC_ARG_SERVER_HANDSHAKE_TIMEOUT_MS,
                             static_cast<int>(kServerHandshakeTimeout.count()));
}

}  // namespace strata::wire
