// Agent-side enrollment: POST <manager>/api/v1/hosts/enroll with a one-time join token.
// Used by stratad --all-in-one for its local agent, and meant for `strata-agent serve
// --manager URL --join-token T --advertise ADDR --name NAME`.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "strata/common/error.h"

namespace strata::manager {

struct EnrollRequest {
  std::string manager_url;  // "http://127.0.0.1:7480" (http only for now)
  std::string join_token;
  std::string name;         // host name (DNS label)
  std::string address;      // where the manager reaches the agent's gRPC ("unix:/..", "h:p")
  nlohmann::json inventory = nlohmann::json::object();  // the agent's inventory JSON
};

// The enrolled host (the "host" object of the 201 response). Errors carry the manager's
// error envelope (code, message, field); unavailable when it cannot be reached.
Result<nlohmann::json> enroll_host(const EnrollRequest& request);

// Small synchronous HTTP/1.1 client used by enroll_host and tests.
struct HttpResult {
  unsigned status = 0;
  std::string body;
  std::string content_type;
};
Result<HttpResult> http_request(const std::string& base_url, const std::string& method,
                                const std::string& target, const std::string& body,
                                const std::string& bearer = {});

}  // namespace strata::manager
