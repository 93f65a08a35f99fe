// The manager-owned certificate authority: made once in stratad's data folder (key 0600),
// it signs host certificates from the agents' CSRs at enrollment and the manager's own
// client certificate. Host certificates are for TLS servers (serverAuth), the manager's for
// TLS clients (clientAuth), so one host's certificate cannot call another host's agent.
// Migration certificates (one per host, for QEMU's migration stream and NBD mirror, where
// each end must present a certificate) carry both; the agents' gRPC port refuses any client
// certificate that is also a server's (grpc_tls.h), so they cannot call an agent either.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "strata/common/error.h"

namespace strata::pki {

enum class CertUsage { server, client, migration };

struct KeyAndCert {
  std::string key_pem;
  std::string cert_pem;
};

class CertificateAuthority {
 public:
  // Loads <dir>/ca.key and <dir>/ca.crt, or creates both (dir 0700, key 0600) when neither
  // exists. Exactly one of them present is an error (a half-written or tampered folder).
  static Result<CertificateAuthority> load_or_create(const std::string& dir,
                                                     const std::string& common_name);
  // A CA held only in memory (tests).
  static Result<CertificateAuthority> create(const std::string& common_name);

  CertificateAuthority(CertificateAuthority&&) noexcept;
  CertificateAuthority& operator=(CertificateAuthority&&) noexcept;
  ~CertificateAuthority();

  const std::string& cert_pem() const { return cert_pem_; }

  // Signs the CSR's public key (after checking the CSR's own signature) into a leaf
  // certificate with subject CN=common_name and subjectAltName = sans (IP literals become
  // IP entries, other names DNS entries). The CSR's subject and extensions are ignored:
  // the manager decides what the certificate says.
  Result<std::string> sign_csr(const std::string& csr_pem, const std::string& common_name,
                               const std::vector<std::string>& sans, CertUsage usage,
                               int valid_days) const;

  // A fresh key and a certificate for it (the manager's client identity).
  Result<KeyAndCert> issue(const std::string& common_name, const std::vector<std::string>& sans,
                           CertUsage usage, int valid_days) const;

 private:
  struct Impl;
  explicit CertificateAuthority(std::unique_ptr<Impl> impl, std::string cert_pem);
  std::unique_ptr<Impl> impl_;
  std::string cert_pem_;
};

}  // namespace strata::pki
