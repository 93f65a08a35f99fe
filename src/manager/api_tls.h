// The REST API's TLS identity: a certificate the manager's CA issues for the addresses
// stratad listens on (made anew at every start, like the manager's client certificate),
// or the operator's own certificate and key files (--tls-cert/--tls-key).
#pragma once

#include <string>
#include <vector>

#include "strata/common/error.h"
#include "strata/manager/api/http_server.h"
#include "strata/pki/certificate_authority.h"

namespace strata::manager {

// The subjectAltNames for listening on `host`: that address or name; for a wildcard
// (0.0.0.0, ::) localhost, 127.0.0.1, ::1, the machine's host name and the addresses of
// its network interfaces instead, since clients may dial any of them.
std::vector<std::string> listen_sans(const std::string& host);

// Whether `host` is a wildcard listen address (0.0.0.0, ::, or empty).
bool is_wildcard(const std::string& host);

// Certificate chain (leaf, then the CA, so clients pinning the CA's fingerprint find it)
// and key for listening on `host`, issued by `ca` (valid 825 days).
Result<ServerTls> issue_api_tls(const pki::CertificateAuthority& ca, const std::string& host);

// The operator's PEM certificate chain and key, read from files.
Result<ServerTls> load_api_tls(const std::string& cert_file, const std::string& key_file);

}  // namespace strata::manager
