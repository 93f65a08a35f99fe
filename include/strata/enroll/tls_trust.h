// How an https client of stratad (the CLI, the enrollment client) decides to trust the
// server, and the OpenSSL context that does it. Trust comes from, in this order: the CA
// PEM text given (stratad's own local agent), a CA file (--ca-file / STRATA_CA_FILE), the
// fingerprint of the manager's CA (what join tokens carry: the CA is taken from the chain
// the server presents only if its sha256 matches, then the server is verified against it),
// or else the system trust store. The server's certificate must always chain to the
// trusted CA and name the host (DNS name or IP address) the client dialled.
#pragma once

#include <boost/asio/ssl/context.hpp>
#include <boost/system/error_code.hpp>
#include <chrono>
#include <memory>
#include <string>

#include "strata/common/error.h"

struct ssl_st;

namespace strata::enroll {

struct TlsTrust {
  std::string ca_pem;          // PEM certificate(s) to trust as anchors (CA or served chain)
  std::string ca_file;         // file of PEM CA certificates to trust
  std::string ca_fingerprint;  // "sha256:<hex>" of the CA (colons and case tolerated)
};

// A verifying TLS client context for `trust`. With only a fingerprint it first fetches the
// server's chain from host:port (without trusting it) to find the CA with that fingerprint.
Result<std::shared_ptr<boost::asio::ssl::context>> client_context(
    const TlsTrust& trust, const std::string& host, const std::string& port,
    std::chrono::milliseconds timeout);

// Before the handshake: SNI (for a DNS name) and the name or IP the certificate must carry.
Status expect_server_name(ssl_st* ssl, const std::string& host);

// A failed handshake, said with OpenSSL's verdict on the certificate and what to do.
Error handshake_error(ssl_st* ssl, const boost::system::error_code& ec, const std::string& where);

}  // namespace strata::enroll
