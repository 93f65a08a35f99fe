// The local, synchronous client of strata.agent.v1.AgentService that `strata-agent ctl` and
// the agent's tests use: connects to "unix:/path" or "host:port" without TLS, and makes
// each unary call through wire::call (deadline, status -> Error). The manager has its own
// AgentClient (TLS, pinned peers, the callback API); docs/internals/agents.md says why.
#pragma once

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <memory>
#include <string>

#include "strata/agent/v1/agent.grpc.pb.h"
#include "strata/common/error.h"
#include "strata/wire/call.h"

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
    return wire::call(*stub_, method, request, timeout.count() ? timeout : default_timeout_);
  }

 private:
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::AgentService::Stub> stub_;
  std::chrono::milliseconds default_timeout_;
};

}  // namespace strata::agent::service
