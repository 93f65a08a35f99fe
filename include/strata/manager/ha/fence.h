// Fencing: powering a failed host off for certain before its VMs restart elsewhere, through
// a fence agent of the ClusterLabs fence-agents protocol (fence_ipmilan, fence_redfish, ...
// from Debian's `fence-agents`). The protocol: the agent reads "key=value" lines on stdin
// (`action=off`, then `action=status`, plus the device's parameters: ip, username,
// password, plug, ...); for `status` it exits 0 when the target is on, 2 when it is off,
// anything else when it does not know. A host counts as fenced only after `off` succeeded
// AND a following `status` answered off: never on a guess.
//
// Devices are configured per host in a file stratad reads at start (--fence-config, like
// Proxmox's ha/fence.cfg): secrets stay out of the database and the API.
//   {"agent_dir": "/usr/sbin",              optional; where fence agents are looked up
//    "hosts": {"h1": {"agent": "fence_ipmilan", "timeout_s": 60,
//                     "params": {"ip": "10.0.0.11", "username": "admin", "password": "..."}}}}
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "strata/common/error.h"

namespace strata::manager {

struct FenceDevice {
  std::string agent;                         // "fence_ipmilan": [a-z0-9_]+, starts "fence_"
  std::map<std::string, std::string> params; // keys [a-z0-9_]+, values one printable line
  std::chrono::seconds timeout{60};          // per fence-agent run (off, status)
};

struct FenceConfig {
  std::string agent_dir = "/usr/sbin";
  std::map<std::string, FenceDevice> hosts;  // by host name
};

// Validates a parsed config; errors name the field ("hosts.h1.params.ip").
Result<FenceConfig> parse_fence_config(const nlohmann::json& j);
// Reads and validates the file (owner-only permissions are not enforced, but said in the
// docs: it holds power-controller passwords).
Result<FenceConfig> load_fence_config(const std::string& path);

// The stdin text of one fence-agent run: "action=<action>\n" then the parameters, one per
// line. `action` and every parameter are validated before (no newline can inject a key).
std::string fence_agent_input(const FenceDevice& device, const std::string& action);

struct FenceOutcome {
  std::string detail;  // what the agent said (last status line), for the event
};

// Powers a host off and confirms it. Errors: not_found (no device configured for the host:
// never fenced, never guessed), unavailable (the agent failed, timed out or status did
// not confirm off; retry later).
class Fencer {
 public:
  virtual ~Fencer() = default;
  virtual Result<FenceOutcome> fence_off(const std::string& host_name) = 0;
  virtual bool configured(const std::string& host_name) const = 0;
};
using FencerPtr = std::shared_ptr<Fencer>;

// Runs the configured fence agents (posix_spawn, no shell).
FencerPtr make_fence_agent_runner(FenceConfig config);

}  // namespace strata::manager
