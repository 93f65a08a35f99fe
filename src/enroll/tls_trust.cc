// Client-side TLS trust for stratad's REST API (see tls_trust.h).
#include "strata/enroll/tls_trust.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <fmt/format.h>

namespace strata::enroll {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace ssl = boost::asio::ssl;

namespace {

bool is_ip(const std::string& host) {
  boost::system::error_code ec;
  asio::ip::make_address(host, ec);
  return !ec;
}

// "sha256:" + 64 lowercase hex digits, or empty when `text` is not a fingerprint.
std::string normalise_fingerprint(const std::string& text) {
  static const std::string kPrefix = "sha256:";
  if (text.size() > 200 || text.compare(0, kPrefix.size(), kPrefix) != 0) return {};
  std::string out = kPrefix;
  for (size_t i = kPrefix.size(); i < text.size(); ++i) {
    char c = text[i];
    if (c == ':') continue;
    if (c >= 'A' && c <= 'F') c = static_cast<char>(c - 'A' + 'a');
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return {};
    out += c;
  }
  return out.size() == kPrefix.size() + 64 ? out : std::string();
}

std::string fingerprint_of(X509* cert) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (X509_digest(cert, EVP_sha256(), md, &len) != 1) return {};
  static const char* kHex = "0123456789abcdef";
  std::string out = "sha256:";
  for (unsigned int i = 0; i < len; ++i) {
    out += kHex[md[i] >> 4];
    out += kHex[md[i] & 0xf];
  }
  return out;
}

std::string pem_of(X509* cert) {
  BIO* bio = BIO_new(BIO_s_mem());
  if (!bio) return {};
  std::string out;
  if (PEM_write_bio_X509(bio, cert) == 1) {
    char* data = nullptr;
    long n = BIO_get_mem_data(bio, &data);
    if (n > 0) out.assign(data, static_cast<size_t>(n));
  }
  BIO_free(bio);
  return out;
}

// The certificate in the server's chain whose fingerprint is `pin`, as PEM. Nothing the
// server sends is trusted here: the caller verifies the server against this CA afterwards.
Result<std::string> fetch_pinned_ca(const std::string& pin, const std::string& host,
                                    const std::string& port, std::chrono::milliseconds timeout) {
  std::string where = host + ":" + port;
  ssl::context ctx(ssl::context::tls_client);
  ctx.set_verify_mode(ssl::verify_none);
  asio::io_context ioc;
  beast::ssl_stream<beast::tcp_stream> stream(ioc, ctx);
  beast::error_code ec;
  asio::ip::tcp::resolver resolver(ioc);
  auto addrs = resolver.resolve(host, port, ec);
  if (ec) return unavailable("cannot resolve " + host + ": " + ec.message());
  beast::get_lowest_layer(stream).expires_after(timeout);
  beast::get_lowest_layer(stream).connect(addrs, ec);
  if (ec) return unavailable("cannot connect to " + where + ": " + ec.message());
  if (!is_ip(host)) SSL_set_tlsext_host_name(stream.native_handle(), host.c_str());
  stream.handshake(ssl::stream_base::client, ec);
  if (ec) return unavailable("TLS handshake with " + where + " failed: " + ec.message());
  std::string found;
  STACK_OF(X509)* chain = SSL_get_peer_cert_chain(stream.native_handle());
  for (int i = 0; chain && i < sk_X509_num(chain) && found.empty(); ++i) {
    X509* c = sk_X509_value(chain, i);
    if (fingerprint_of(c) == pin) found = pem_of(c);
  }
  beast::get_lowest_layer(stream).socket().close(ec);
  if (found.empty())
    return make_error(ErrorCode::unauthenticated,
                      fmt::format("{} presents no CA certificate with fingerprint {} (the "
                                  "ca_fingerprint of its join tokens): refusing to trust it",
                                  where, pin));
  return found;
}

}  // namespace

Result<std::shared_ptr<ssl::context>> client_context(const TlsTrust& trust,
                                                     const std::string& host,
                                                     const std::string& port,
                                                     std::chrono::milliseconds timeout) {
  auto ctx = std::make_shared<ssl::context>(ssl::context::tls_client);
  ctx->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                   ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
  ctx->set_verify_mode(ssl::verify_peer | ssl::verify_fail_if_no_peer_cert);
  beast::error_code ec;
  std::string ca_pem = trust.ca_pem;
  if (ca_pem.empty() && trust.ca_file.empty() && !trust.ca_fingerprint.empty()) {
    std::string pin = normalise_fingerprint(trust.ca_fingerprint);
    if (pin.empty())
      return invalid_argument("ca-fingerprint", "expected sha256:<64 hex digits>, got '" +
                                                    trust.ca_fingerprint + "'");
    auto ca = fetch_pinned_ca(pin, host, port, timeout);
    if (!ca) return tl::unexpected(ca.error());
    ca_pem = std::move(*ca);
  }
  if (!ca_pem.empty()) {
    ctx->add_certificate_authority(asio::buffer(ca_pem), ec);
    if (ec) return invalid_argument("ca", "not a PEM CA certificate: " + ec.message());
    // Given in memory, these certificates are the anchors even when not self-signed
    // (stratad's local agent trusting the operator's --tls-cert chain as served).
    X509_STORE_set_flags(SSL_CTX_get_cert_store(ctx->native_handle()), X509_V_FLAG_PARTIAL_CHAIN);
  } else if (!trust.ca_file.empty()) {
    ctx->load_verify_file(trust.ca_file, ec);
    if (ec)
      return invalid_argument("ca-file", "cannot load CA certificates from " + trust.ca_file +
                                             ": " + ec.message());
  } else {
    ctx->set_default_verify_paths(ec);
    if (ec) return internal_error("cannot load the system trust store: " + ec.message());
  }
  return ctx;
}

Status expect_server_name(ssl_st* ssl, const std::string& host) {
  X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
  X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
  if (is_ip(host)) {
    if (X509_VERIFY_PARAM_set1_ip_asc(param, host.c_str()) != 1)
      return invalid_argument("server", "bad IP address " + host);
    return {};
  }
  if (SSL_set_tlsext_host_name(ssl, host.c_str()) != 1 ||
      X509_VERIFY_PARAM_set1_host(param, host.c_str(), host.size()) != 1)
    return invalid_argument("server", "bad host name " + host);
  return {};
}

Error handshake_error(ssl_st* ssl, const boost::system::error_code& ec, const std::string& where) {
  long verdict = ssl ? SSL_get_verify_result(ssl) : X509_V_OK;
  if (verdict != X509_V_OK)
    return Error{ErrorCode::unavailable,
                 fmt::format("TLS: the certificate of {} is not trusted ({}); give the "
                             "manager's CA with --ca-file or STRATA_CA_FILE (stratad writes it "
                             "to DATA_DIR/pki/ca.crt)",
                             where, X509_verify_cert_error_string(verdict)),
                 ""};
  return Error{ErrorCode::unavailable,
               fmt::format("TLS handshake with {} failed: {}", where, ec.message()), ""};
}

}  // namespace strata::enroll
