// AgentClient: channel setup and request-id generation.
#include "strata/agent/service/agent_client.h"

#include <fmt/format.h>

#include <random>

namespace strata::agent::service {

std::string new_request_id() {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  return fmt::format("r-{:016x}{:016x}", rng(), rng());
}

AgentClient::AgentClient(const std::string& target, std::chrono::milliseconds default_timeout)
    : channel_(grpc::CreateChannel(target, grpc::InsecureChannelCredentials())),
      stub_(v1::AgentService::NewStub(channel_)),
      default_timeout_(default_timeout) {}

bool AgentClient::wait_connected(std::chrono::milliseconds timeout) {
  return channel_->WaitForConnected(std::chrono::system_clock::now() + timeout);
}

}  // namespace strata::agent::service
