// gRPC credentials from PEM material, the one place both ends of the manager <-> agent
// channel build them: the agent's TCP server requires and verifies a client certificate
// signed by the manager's CA; the manager's channel presents its client certificate and
// verifies the agent's against the same CA (and the address it dials against the SAN).
#pragma once

#include <grpcpp/security/credentials.h>
#include <grpcpp/security/server_credentials.h>

#include <functional>
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

// What the manager expects of one host's certificate, checked in the handshake of every
// connection it makes to that host (on top of the CA chain and the dialled address against
// the subjectAltName): the subject CN is the host's name, and, when pinned, the certificate
// is exactly the one signed at its enrollment. The pin is how a host's certificate is
// revoked: deleting the host drops it, and a re-enrolled host of the same name gets a new
// certificate with a new pin, so the old one is refused.
// A host enrolled before pins existed has none: `pin_first_use` (when set) is then offered
// the fingerprint of the first certificate that passes every other check (trust on first
// use); true pins it, for this channel's later handshakes too, false refuses the handshake.
// It runs on a gRPC thread during the handshake, so it must be quick.
struct PeerPin {
  std::string name;         // required subject CN
  std::string fingerprint;  // "sha256:<hex>" of the certificate; empty = any (CN still checked)
  std::function<bool(const std::string& fingerprint)> pin_first_use = nullptr;
};

// The agent's server: a client certificate signed by the CA is required, and it must be a
// client-only one (the manager's): a certificate that is also for servers (a host's, a
// host's migration certificate) is refused in the handshake.
std::shared_ptr<grpc::ServerCredentials> server_credentials(const TlsIdentity& identity);
// Without a pin: the CA chain and the dialled address against the SAN.
std::shared_ptr<grpc::ChannelCredentials> channel_credentials(const TlsIdentity& identity);
// With a pin: the same, plus the CN and (when set) the fingerprint; a mismatch fails the
// handshake (UNAVAILABLE) and is logged with what the peer presented.
std::shared_ptr<grpc::ChannelCredentials> channel_credentials(const TlsIdentity& identity,
                                                             const PeerPin& pin);

}  // namespace strata::pki
