// The one enrollment client: POST <manager>/api/v1/hosts/enroll with a one-time join token
// (and, for TCP agents, a CSR that the manager's CA signs). Used by `strata-agent serve
// --manager` and by stratad --all-in-one for its local agent.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "strata/common/error.h"
#include "strata/enroll/tls_trust.h"

namespace strata::enroll {

struct EnrollRequest {
  std::string manager_url;  // "https://HOST:PORT" (or "http://" where stratad serves plain HTTP)
  TlsTrust trust;           // how https verifies the manager (CA PEM, CA file or CA pin)
  std::string join_token;
  std::string name;     // host name (DNS label)
  std::string address;  // where the manager reaches the agent's gRPC ("unix:/..", "host:port")
  std::string csr_pem;  // the agent's CSR; required by the manager for TCP addresses
  // A CSR for a second key: the host's migration certificate (clientAuth + serverAuth, for
  // QEMU's migration TLS; docs/internals/migration.md). Optional.
  std::string migration_csr_pem;
  nlohmann::json inventory = nlohmann::json::object();  // the agent's inventory JSON
};

struct EnrollReply {
  nlohmann::json host;      // the "host" object of the 201 response
  std::string cert_pem;     // the host certificate (when a CSR was sent)
  std::string ca_cert_pem;  // the manager's CA certificate (when a CSR was sent)
  std::string migration_cert_pem;  // when a migration CSR was sent (empty: an older manager)
};

// Errors carry the manager's error envelope (code, message, field); unavailable when the
// manager cannot be reached or answers 5xx (worth a retry).
Result<EnrollReply> enroll_host(const EnrollRequest& request);

// The machine's hostname as a DNS label ("local" if none): the default enrollment name.
std::string default_host_name();

}  // namespace strata::enroll
