// All-in-one mode: the local strata-agent child process (spawned with an argv, output to
// <data_dir>/agent.log) and its automatic enrollment through the manager's own API.
#pragma once

#include <sys/types.h>

#include <string>

#include "strata/common/error.h"
#include "strata/store/store.h"

namespace strata::manager {

class LocalAgent {
 public:
  ~LocalAgent();
  // Spawns the agent; returns once its socket answers Health (or fails after a timeout).
  Status start(const std::string& binary, const std::string& data_dir, const std::string& accel);
  // Makes sure a host for this agent is enrolled (join token + POST /hosts/enroll).
  Status enroll(store::Store& store, const std::string& api_url, const std::string& name);
  // SIGTERM and wait (VMs keep running under their shims).
  void stop();
  const std::string& address() const { return address_; }

 private:
  pid_t pid_ = -1;
  std::string address_;
};

std::string default_agent_binary();

}  // namespace strata::manager
