// gRPC server and channel credentials from a TlsIdentity (see grpc_tls.h).
#include "strata/pki/grpc_tls.h"

#include <grpcpp/security/tls_certificate_provider.h>
#include <grpcpp/security/tls_certificate_verifier.h>
#include <grpcpp/security/tls_credentials_options.h>

#include <atomic>
#include <mutex>

#include "strata/common/log.h"
#include "strata/pki/pki.h"

namespace strata::pki {

Result<TlsIdentity> load_identity(const std::string& dir) {
  TlsIdentity id;
  for (auto [file, out] :
       {std::pair{"/ca.crt", &id.ca_cert_pem}, std::pair{"/host.crt", &id.cert_pem},
        std::pair{"/host.key", &id.key_pem}}) {
    auto text = read_file(dir + file);
    if (!text) return tl::unexpected(text.error());
    *out = std::move(*text);
  }
  return id;
}


std::shared_ptr<grpc::ChannelCredentials> channel_credentials(const TlsIdentity& identity) {
  grpc::SslCredentialsOptions opts;
  opts.pem_root_certs = identity.ca_cert_pem;
  opts.pem_private_key = identity.key_pem;
  opts.pem_cert_chain = identity.cert_pem;
  return grpc::SslCredentials(opts);
}

namespace {

std::string str(grpc::string_ref r) { return std::string(r.data(), r.size()); }

// Runs after OpenSSL has verified the chain against the CA: the dialled host against the
// SAN (what gRPC's own host-name verifier does, which a custom verifier replaces), then
// the CN and the pinned fingerprint.
class PinVerifier : public grpc::experimental::ExternalCertificateVerifier {
 public:
  explicit PinVerifier(PeerPin pin) : pin_(std::move(pin)) {}

  bool Verify(grpc::experimental::TlsCustomVerificationCheckRequest* request,
              std::function<void(grpc::Status)>, grpc::Status* sync_status) override {
    *sync_status = check(*request);
    // Once per channel: gRPC redials every few seconds, the manager replaces channels that
    // keep failing, and its heartbeat log already says the host is unreachable.
    if (!sync_status->ok() && !logged_.exchange(true))
      logger("pki")->warn("agent certificate refused host={} target={} reason={}", pin_.name,
                          str(request->target_name()), sync_status->error_message());
    return true;
  }
  void Cancel(grpc::experimental::TlsCustomVerificationCheckRequest*) override {}

 private:
  grpc::Status check(grpc::experimental::TlsCustomVerificationCheckRequest& r) {
    auto refuse = [](std::string why) {
      return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, std::move(why));
    };
    std::string target = str(r.target_name());
    auto hp = split_host_port(target);
    std::string host = hp ? hp->host : target;
    bool san = false;
    for (const auto& n : r.ip_names()) san = san || str(n) == host;
    for (const auto& n : r.dns_names()) san = san || str(n) == host;
    if (!san) return refuse("the certificate does not name " + host);
    if (str(r.common_name()) != pin_.name)
      return refuse("the certificate is for host '" + str(r.common_name()) + "', not '" +
                    pin_.name + "'");
    std::string pinned;
    {
      std::lock_guard lock(mu_);
      pinned = pin_.fingerprint;
    }
    if (pinned.empty() && !pin_.pin_first_use) return grpc::Status::OK;
    auto fp = cert_fingerprint(str(r.peer_cert()));
    if (!fp) return refuse("unreadable peer certificate: " + fp.error().message);
    if (pinned.empty()) {
      // Trust on first use: whoever owns the pin decides (and records it).
      if (!pin_.pin_first_use(*fp))
        return refuse("certificate " + *fp + " is not the one pinned for this host");
      std::lock_guard lock(mu_);
      if (pin_.fingerprint.empty()) pin_.fingerprint = *fp;
      pinned = pin_.fingerprint;
    }
    if (*fp != pinned)
      return refuse("certificate " + *fp + " is not the one enrolled (" + pinned +
                    "): revoked or never issued to this host");
    return grpc::Status::OK;
  }

  std::mutex mu_;  // guards pin_.fingerprint (set on first use)
  PeerPin pin_;
  std::atomic<bool> logged_{false};
};

// The agent's server, after OpenSSL verified the chain (and clientAuth): refuses a client
// certificate that is also for servers (serverAuth), i.e. a host's migration certificate
// (clientAuth + serverAuth for QEMU's migration TLS): only the manager's client-only
// certificate may call an agent.
class ClientOnlyVerifier : public grpc::experimental::ExternalCertificateVerifier {
 public:
  bool Verify(grpc::experimental::TlsCustomVerificationCheckRequest* request,
              std::function<void(grpc::Status)>, grpc::Status* sync_status) override {
    auto info = inspect_cert(str(request->peer_cert()));
    if (!info)
      *sync_status = grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                                  "unreadable client certificate: " + info.error().message);
    else if (!info->client_auth || info->server_auth)
      *sync_status = grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                                  "client certificate '" + info->common_name +
                                      "' is not a manager's (a host or migration certificate)");
    else
      *sync_status = grpc::Status::OK;
    if (!sync_status->ok())
      logger("pki")->warn("client certificate refused reason={}", sync_status->error_message());
    return true;
  }
  void Cancel(grpc::experimental::TlsCustomVerificationCheckRequest*) override {}
};

}  // namespace

std::shared_ptr<grpc::ServerCredentials> server_credentials(const TlsIdentity& identity) {
  namespace gx = grpc::experimental;
  auto provider = std::make_shared<gx::StaticDataCertificateProvider>(
      identity.ca_cert_pem,
      std::vector<gx::IdentityKeyCertPair>{{identity.key_pem, identity.cert_pem}});
  gx::TlsServerCredentialsOptions opts(provider);
  opts.watch_root_certs();
  opts.watch_identity_key_cert_pairs();
  opts.set_cert_request_type(GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  opts.set_certificate_verifier(gx::ExternalCertificateVerifier::Create<ClientOnlyVerifier>());
  return gx::TlsServerCredentials(opts);
}

std::shared_ptr<grpc::ChannelCredentials> channel_credentials(const TlsIdentity& identity,
                                                             const PeerPin& pin) {
  namespace gx = grpc::experimental;
  auto provider = std::make_shared<gx::StaticDataCertificateProvider>(
      identity.ca_cert_pem,
      std::vector<gx::IdentityKeyCertPair>{{identity.key_pem, identity.cert_pem}});
  gx::TlsChannelCredentialsOptions opts;
  opts.set_certificate_provider(provider);
  opts.watch_root_certs();
  opts.watch_identity_key_cert_pairs();
  opts.set_verify_server_certs(true);
  opts.set_check_call_host(false);
  opts.set_certificate_verifier(gx::ExternalCertificateVerifier::Create<PinVerifier>(pin));
  return gx::TlsCredentials(opts);
}

}  // namespace strata::pki
