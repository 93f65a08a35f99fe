// gRPC server and channel credentials from a TlsIdentity (see grpc_tls.h).
#include "strata/pki/grpc_tls.h"

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

std::shared_ptr<grpc::ServerCredentials> server_credentials(const TlsIdentity& identity) {
  grpc::SslServerCredentialsOptions opts(
      GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  opts.pem_root_certs = identity.ca_cert_pem;
  opts.pem_key_cert_pairs.push_back({identity.key_pem, identity.cert_pem});
  return grpc::SslServerCredentials(opts);
}

std::shared_ptr<grpc::ChannelCredentials> channel_credentials(const TlsIdentity& identity) {
  grpc::SslCredentialsOptions opts;
  opts.pem_root_certs = identity.ca_cert_pem;
  opts.pem_private_key = identity.key_pem;
  opts.pem_cert_chain = identity.cert_pem;
  return grpc::SslCredentials(opts);
}

}  // namespace strata::pki
