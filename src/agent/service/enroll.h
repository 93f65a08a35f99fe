// Agent-side enrollment with a manager: POST <manager>/api/v1/hosts/enroll with a one-time
// join token, once; the result is kept in <state-dir>/enrollment.json so a restarted agent
// does not enroll again (the token is spent).
#pragma once

#include <atomic>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "strata/common/error.h"

namespace strata::agent::cli {

struct EnrollOptions {
  std::string manager_url;  // http://HOST:PORT
  std::string join_token;
  std::string name;     // host name (DNS label)
  std::string address;  // where the manager reaches this agent's gRPC (HOST:PORT)
  std::string state_dir;
  nlohmann::json inventory = nlohmann::json::object();
};

// The stored enrollment for this manager URL, if any.
std::optional<nlohmann::json> load_enrollment(const std::string& state_dir,
                                              const std::string& manager_url);

// One attempt: POST, then record the enrolled host. Error codes: unavailable when the
// manager cannot be reached (retry), unauthenticated/invalid_argument/already_exists as
// the manager said (do not retry).
Result<nlohmann::json> enroll_once(const EnrollOptions& options);

// Enrolls unless already enrolled, retrying while the manager is unreachable, until
// success, a permanent error, or *stop. Returns the outcome for the log.
Status enroll_until_done(const EnrollOptions& options, const std::atomic<bool>& stop);

// The machine's hostname as a DNS label ("local" if none).
std::string default_host_name();

}  // namespace strata::agent::cli
