// A real AgentService served over gRPC on a UNIX socket, for tests of the service layer and
// of the manager's agent-facing parts (connections, image distribution). stop() (also run
// by the destructor) shuts the service down first, so open streams end with UNAVAILABLE
// the way clients see an agent going away, then the gRPC server.
// Header-only: tests include it directly.
#pragma once

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>
#include <utility>

#include "strata/agent/hypervisor.h"
#include "strata/agent/service/agent_service.h"
#include "strata/common/error.h"

namespace strata::agent::testing {

class ServedAgent {
 public:
  // Serves on unix:`socket_path`; `opts.state_dir` must be set by the caller.
  static Result<std::unique_ptr<ServedAgent>> start(Hypervisor& hv,
                                                    service::AgentServiceOptions opts,
                                                    const std::string& socket_path) {
    auto svc = service::AgentService::create(hv, std::move(opts));
    if (!svc) return tl::unexpected(svc.error());
    auto served = std::unique_ptr<ServedAgent>(new ServedAgent());
    served->service_ = std::move(*svc);
    served->address_ = "unix:" + socket_path;
    grpc::ServerBuilder builder;
    builder.AddListeningPort(served->address_, grpc::InsecureServerCredentials());
    builder.RegisterService(served->service_.get());
    served->server_ = builder.BuildAndStart();
    if (!served->server_) return internal_error("cannot serve the agent on " + served->address_);
    return served;
  }

  ~ServedAgent() { stop(); }
  ServedAgent(const ServedAgent&) = delete;
  ServedAgent& operator=(const ServedAgent&) = delete;

  void stop() {
    if (!server_) return;
    service_->shutdown();
    server_->Shutdown();
    server_.reset();
  }

  const std::string& address() const { return address_; }
  service::AgentService& service() { return *service_; }

 private:
  ServedAgent() = default;
  std::string address_;
  std::unique_ptr<service::AgentService> service_;
  std::unique_ptr<grpc::Server> server_;
};

}  // namespace strata::agent::testing
