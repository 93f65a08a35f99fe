// Agent-side enrollment with a manager (the HTTP call itself is strata/enroll): once, with
// a one-time join token. For a TCP agent it makes its own key (kept in <state>/tls, 0600,
// never sent), sends a CSR, checks the returned host certificate against the returned CA
// and stores both. <state>/enrollment.json, written last, records the result so a
// restarted agent does not enroll again (the token is spent).
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
  // Normalised "sha256:<hex>" of the manager's CA; empty: trust the CA the reply carries.
  std::string ca_fingerprint;
  std::string ca_file;  // CA certificate(s) that verify an https manager (else the pin/system)
  std::string name;     // host name (DNS label)
  std::string address;  // where the manager reaches this agent's gRPC (HOST:PORT or unix:)
  std::string state_dir;
  nlohmann::json inventory = nlohmann::json::object();
};

// With `expected` ("sha256:<hex>", normalised) set, the CA the manager sent must have that
// fingerprint (unauthenticated otherwise: nothing is stored, the agent does not serve).
// Empty: trust on first use, with a warning.
Status check_ca_fingerprint(const std::string& ca_cert_pem, const std::string& expected);

// The join token for `serve`: read from `token_file` (--join-token-file; the file must be
// owner-only, see strata/common/secret_file.h), or `token` (--join-token) as given, with
// *warning set: every local user can read a command line in ps. Both given:
// invalid_argument. Neither: an empty token.
Result<std::string> resolve_join_token(const std::string& token, const std::string& token_file,
                                       std::string* warning);

// <state-dir>/tls: host.key, host.crt, ca.crt (pki::load_identity reads them).
std::string tls_dir(const std::string& state_dir);

// The stored enrollment for this manager URL, if any.
std::optional<nlohmann::json> load_enrollment(const std::string& state_dir,
                                              const std::string& manager_url);

// True when the record came with a certificate (agents enrolled before TLS have none).
bool enrollment_has_tls(const nlohmann::json& record);

// One attempt: (key + CSR,) POST, check and store the certificate, record the enrolled
// host. Error codes: unavailable when the manager cannot be reached (retry),
// unauthenticated/invalid_argument/already_exists as the manager said (do not retry).
Result<nlohmann::json> enroll_once(const EnrollOptions& options);

// Enrolls unless already enrolled, retrying while the manager is unreachable, until
// success, a permanent error, or *stop.
Status enroll_until_done(const EnrollOptions& options, const std::atomic<bool>& stop);

}  // namespace strata::agent::cli
