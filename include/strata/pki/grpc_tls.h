// gRPC credentials from PEM material, the one place both ends of the manager <-> agent
// channel build them: the agent's TCP server requires and verifies a client certificate
// signed by the manager's CA; the manager's channel presents its client certificate and
// verifies the agent's against the same CA (and the address it dials against the SAN).
#pragma once

#include <grpcpp/security/credentials.h>
#include <grpcpp/security/server_credentials.h>

#include <memory>
#include <string>

#include "strata/common/error.h"

namespace strata::pki {

struct TlsIdentity {
  std::string ca_cert_pem;  // the CA that must have signed the peer
  std::string cert_pem;     // our certificate
  std::string key_pem;      // our private key
};

// Reads <dir>/ca.crt, <dir>/host.crt, <dir>/host.key (the agent's files after enrollment).
Result<TlsIdentity> load_identity(const std::string& dir);

std::shared_ptr<grpc::ServerCredentials> server_credentials(const TlsIdentity& identity);
std::shared_ptr<grpc::ChannelCredentials> channel_credentials(const TlsIdentity& identity);

}  // namespace strata::pki
