// AgentClient: channel setup and request-id generation.
#include "strata/agent/service/agent_client.h"

#include <fmt/format.h>

#include "strata/common/random.h"

namespace strata::agent::service {

std::string new_request_id() { return fmt::format("r-{:016x}{:016x}", random_u64(), random_u64()); }

AgentClient::AgentClient(const std::string& target, std::chrono::milliseconds default_timeout)
    : channel_(grpc::CreateChannel(target, grpc::InsecureChannelCredentials())),
      stub_(v1::AgentService::NewStub(channel_)),
      default_timeout_(default_timeout) {}

bool AgentClient::wait_connected(std::chrono::milliseconds timeout) {
  return channel_->WaitForConnected(std::chrono::system_clock::now() + timeout);
}

}  // namespace strata::agent::service
