// Keys, certificate signing requests and certificate inspection for the manager <-> agent
// mutual TLS (OpenSSL libcrypto; PEM strings in and out). The manager's CA is in
// certificate_authority.h; turning PEM material into gRPC credentials is in grpc_tls.h.
#pragma once

#include <string>
#include <vector>

#include "strata/common/error.h"

namespace strata::pki {

// A new private key (EC P-256) as PKCS#8 PEM. It never leaves the machine that made it.
Result<std::string> generate_key();

// The RFC 7919 ffdhe2048 Diffie-Hellman group as PKCS#3 PEM ("DH PARAMETERS"): a named,
// well-known group, so nothing is generated (QEMU's TLS server loads it as dh-params.pem
// instead of generating 2048-bit parameters of its own each time).
Result<std::string> dh_params_pem();

// A CSR (PEM) for key_pem's public key with subject CN=common_name, self-signed with the
// key (proof of possession).
Result<std::string> make_csr(const std::string& key_pem, const std::string& common_name);

struct CertInfo {
  std::string common_name;
  std::vector<std::string> dns_names;     // subjectAltName DNS entries
  std::vector<std::string> ip_addresses;  // subjectAltName IP entries, textual
  bool is_ca = false;
  bool server_auth = false;  // extendedKeyUsage
  bool client_auth = false;
};
Result<CertInfo> inspect_cert(const std::string& cert_pem);

// Checks that cert_pem chains to ca_cert_pem (signature, validity period, CA constraints).
// unauthenticated when it does not.
Status verify_cert(const std::string& cert_pem, const std::string& ca_cert_pem);

// "sha256:<64 lowercase hex>" of the certificate's DER encoding, as `openssl x509
// -fingerprint -sha256` shows it (without the colons). Used to pin the manager's CA when a
// host enrolls (the join token travels with it; the agent checks the CA it is sent).
Result<std::string> cert_fingerprint(const std::string& cert_pem);

// Checks a user-given fingerprint: "sha256:" + 64 hex digits (either case, colons between
// byte pairs allowed, as openssl prints them). Returns it normalised (lowercase, no colons).
Result<std::string> parse_fingerprint(const std::string& text, const std::string& field);

// True when cert_pem carries key_pem's public key.
Result<bool> cert_matches_key(const std::string& cert_pem, const std::string& key_pem);

// Splits a "HOST:PORT" / "[V6]:PORT" address and says whether HOST is an IP literal.
struct HostPort {
  std::string host;
  std::string port;
  bool is_ip = false;
};
Result<HostPort> split_host_port(const std::string& address);

// Writes content to path through a temporary file and rename, with mode (0600 for keys)
// set before any byte is written.
Status write_file_atomic(const std::string& path, const std::string& content, unsigned mode);
Result<std::string> read_file(const std::string& path);

}  // namespace strata::pki
