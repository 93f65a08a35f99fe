// All-in-one mode: the local strata-agent (spawned with an argv, output to
// <data_dir>/agent.log, or adopted when one already serves <data_dir>/agent) and its
// automatic enrollment through the manager's own API.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include "strata/common/error.h"
#include "strata/enroll/tls_trust.h"
#include "strata/store/store.h"

namespace strata::manager {

class LocalAgent {
 public:
  ~LocalAgent();
  // Returns once the local agent's socket answers Health (or fails after a timeout). An
  // agent that still holds <data_dir>/agent/agent.lock (it outlived a killed stratad) is
  // adopted, not doubled: a second agent on one state folder is refused by the agent
  // itself, and would have fought the first over the VMs' QMP sockets.
  // `datastores` ("NAME=PATH") become the agent's --datastore flags.
  Status start(const std::string& binary, const std::string& data_dir, const std::string& accel,
               const std::vector<std::string>& datastores = {});
  // Makes sure a host for this agent is enrolled (join token + POST /hosts/enroll).
  // `trust` verifies the manager when api_url is https.
  Status enroll(store::Store& store, const std::string& api_url, const enroll::TlsTrust& trust,
                const std::string& name);
  // SIGTERM and wait (VMs keep running under their shims). An adopted agent is stopped
  // the same way: stratad's normal exit ends the local agent whoever started it.
  void stop();
  const std::string& address() const { return address_; }
  bool adopted() const { return adopted_; }

 private:
  // Spawns `strata-agent serve` on the state folder and waits for Health.
  Status spawn(const std::string& binary, const std::string& state, const std::string& data_dir,
               const std::string& accel, const std::vector<std::string>& datastores);
  // Takes over the agent that holds the state folder's lock (pid from the lock file).
  Status adopt(int pid);
  // Polls Health until it serves (120 s at most); stops early with `alive()`'s error.
  // `conflict` from either means the folder changed hands: start() tries again.
  Status wait_healthy(const std::function<Status()>& alive);

  pid_t pid_ = -1;       // our child (waitpid works) or the adopted agent (it does not)
  bool adopted_ = false;
  std::string address_;
  std::string lock_path_;
  std::string log_;
};

std::string default_agent_binary();

}  // namespace strata::manager
