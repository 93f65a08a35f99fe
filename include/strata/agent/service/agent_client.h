// A typed client for strata.agent.v1.AgentService: connects to "unix:/path" or
// "host:port", applies a per-call deadline, and turns gRPC statuses back into Strata
// Errors (grpc_status.h). Used by `strata-agent ctl`, tests and the manager.
#pragma once

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <memory>
#include <string>

#include "strata/agent/v1/agent.grpc.pb.h"
#include "strata/common/error.h"
#include "strata/wire/status.h"

namespace strata::agent::service {

// A fresh random request id ("r-" + 32 hex digits).
std::string new_request_id();

class AgentClient {
 public:
  // `target`: "unix:/run/agent.sock", "unix:relative.sock" or "host:port". Insecure
  // channel: the agent listens on a root-only UNIX socket or a management network.
  explicit AgentClient(const std::string& target,
                       std::chrono::milliseconds default_timeout = std::chrono::seconds(30));

  v1::AgentService::Stub& stub() { return *stub_; }
  const std::shared_ptr<grpc::Channel>& channel() const { return channel_; }
  // Waits until the channel is connected (or the timeout passes).
  bool wait_connected(std::chrono::milliseconds timeout);

  // Unary call with the client's deadline: call(&Stub::GetVm, request).
  template <typename Req, typename Resp>
  Result<Resp> call(grpc::Status (v1::AgentService::Stub::*method)(grpc::ClientContext*, const Req&,
                                                                   Resp*),
                    const Req& request, std::chrono::milliseconds timeout = {}) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() +
                     (timeout.count() ? timeout : default_timeout_));
    Resp response;
    grpc::Status st = ((*stub_).*method)(&ctx, request, &response);
    if (!st.ok()) return tl::unexpected(wire::from_grpc_status(st));
    return response;
  }

 private:
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::AgentService::Stub> stub_;
  std::chrono::milliseconds default_timeout_;
};

}  // namespace strata::agent::service
