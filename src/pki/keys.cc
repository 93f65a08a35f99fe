// Keys, CSRs, certificate inspection and chain verification (see pki.h).
#include <arpa/inet.h>

#include <openssl/params.h>

#include "ossl.h"
#include "strata/pki/pki.h"

namespace strata::pki {

using namespace detail;

Result<std::string> generate_key() {
  auto key = new_ec_key();
  if (!key) return tl::unexpected(key.error());
  return key_to_pem(key->get());
}

Result<std::string> dh_params_pem() {
  std::unique_ptr<EVP_PKEY_CTX, Deleter<EVP_PKEY_CTX_free>> ctx(
      EVP_PKEY_CTX_new_from_name(nullptr, "DH", nullptr));
  char group[] = "ffdhe2048";
  OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string("group", group, 0),
                         OSSL_PARAM_construct_end()};
  EVP_PKEY* raw = nullptr;
  if (!ctx || EVP_PKEY_paramgen_init(ctx.get()) <= 0 ||
      EVP_PKEY_CTX_set_params(ctx.get(), params) <= 0 || EVP_PKEY_generate(ctx.get(), &raw) <= 0)
    return ossl_failure("DH parameters ffdhe2048");
  KeyPtr dh(raw);
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_Parameters(bio.get(), dh.get()) != 1)
    return ossl_failure("DH parameters PEM");
  return bio_string(bio.get());
}

Result<std::string> make_csr(const std::string& key_pem, const std::string& common_name) {
  auto key = parse_key(key_pem);
  if (!key) return tl::unexpected(key.error());
  ReqPtr req(X509_REQ_new());
  if (!req || X509_REQ_set_version(req.get(), 0) != 1) return ossl_failure("CSR");
  X509_NAME* name = X509_REQ_get_subject_name(req.get());
  if (X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                                 reinterpret_cast<const unsigned char*>(common_name.c_str()), -1,
                                 -1, 0) != 1)
    return ossl_failure("CSR subject");
  if (X509_REQ_set_pubkey(req.get(), key->get()) != 1 ||
      X509_REQ_sign(req.get(), key->get(), EVP_sha256()) <= 0)
    return ossl_failure("CSR signature");
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_X509_REQ(bio.get(), req.get()) != 1) return ossl_failure("CSR PEM");
  return bio_string(bio.get());
}

Result<CertInfo> inspect_cert(const std::string& cert_pem) {
  auto cert = parse_cert(cert_pem);
  if (!cert) return tl::unexpected(cert.error());
  CertInfo info;
  char cn[256] = {};
  if (X509_NAME_get_text_by_NID(X509_get_subject_name(cert->get()), NID_commonName, cn,
                                sizeof(cn)) > 0)
    info.common_name = cn;
  auto* sans = static_cast<GENERAL_NAMES*>(
      X509_get_ext_d2i(cert->get(), NID_subject_alt_name, nullptr, nullptr));
  for (int i = 0; sans && i < sk_GENERAL_NAME_num(sans); ++i) {
    const GENERAL_NAME* g = sk_GENERAL_NAME_value(sans, i);
    if (g->type == GEN_DNS) {
      const auto* s = g->d.dNSName;
      info.dns_names.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                                  static_cast<size_t>(ASN1_STRING_length(s)));
    } else if (g->type == GEN_IPADD) {
      const auto* s = g->d.iPAddress;
      char text[INET6_ADDRSTRLEN] = {};
      int len = ASN1_STRING_length(s);
      int family = len == 4 ? AF_INET : len == 16 ? AF_INET6 : 0;
      if (family && inet_ntop(family, ASN1_STRING_get0_data(s), text, sizeof(text)))
        info.ip_addresses.emplace_back(text);
    }
  }
  GENERAL_NAMES_free(sans);
  info.is_ca = X509_check_ca(cert->get()) != 0;
  uint32_t xku = X509_get_extended_key_usage(cert->get());
  info.server_auth = (xku & XKU_SSL_SERVER) != 0;
  info.client_auth = (xku & XKU_SSL_CLIENT) != 0;
  return info;
}

Status verify_cert(const std::string& cert_pem, const std::string& ca_cert_pem) {
  auto cert = parse_cert(cert_pem);
  if (!cert) return tl::unexpected(cert.error());
  auto ca = parse_cert(ca_cert_pem, "ca_certificate");
  if (!ca) return tl::unexpected(ca.error());
  StorePtr store(X509_STORE_new());
  StoreCtxPtr ctx(X509_STORE_CTX_new());
  if (!store || !ctx || X509_STORE_add_cert(store.get(), ca->get()) != 1 ||
      X509_STORE_CTX_init(ctx.get(), store.get(), cert->get(), nullptr) != 1)
    return ossl_failure("certificate store");
  if (X509_verify_cert(ctx.get()) != 1) {
    int err = X509_STORE_CTX_get_error(ctx.get());
    ERR_clear_error();
    return make_error(ErrorCode::unauthenticated,
                      std::string("certificate not signed by the expected CA: ") +
                          X509_verify_cert_error_string(err));
  }
  return {};
}

Result<std::string> cert_fingerprint(const std::string& cert_pem) {
  auto cert = parse_cert(cert_pem);
  if (!cert) return tl::unexpected(cert.error());
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (X509_digest(cert->get(), EVP_sha256(), md, &len) != 1) return ossl_failure("fingerprint");
  static const char* kHex = "0123456789abcdef";
  std::string out = "sha256:";
  for (unsigned int i = 0; i < len; ++i) {
    out += kHex[md[i] >> 4];
    out += kHex[md[i] & 0xf];
  }
  return out;
}

Result<std::string> parse_fingerprint(const std::string& text, const std::string& field) {
  static const std::string kPrefix = "sha256:";
  auto bad = [&] {
    return invalid_argument(field, "expected sha256:<64 hex digits> (the ca_fingerprint of "
                                   "`strata join-token create`), got '" + text + "'");
  };
  if (text.size() > 200 || text.compare(0, kPrefix.size(), kPrefix) != 0) return bad();
  std::string hex;
  for (size_t i = kPrefix.size(); i < text.size(); ++i) {
    char c = text[i];
    if (c == ':') continue;
    if (c >= 'A' && c <= 'F') c = static_cast<char>(c - 'A' + 'a');
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return bad();
    hex += c;
  }
  if (hex.size() != 64) return bad();
  return kPrefix + hex;
}

Result<bool> cert_matches_key(const std::string& cert_pem, const std::string& key_pem) {
  auto cert = parse_cert(cert_pem);
  if (!cert) return tl::unexpected(cert.error());
  auto key = parse_key(key_pem);
  if (!key) return tl::unexpected(key.error());
  bool same = X509_check_private_key(cert->get(), key->get()) == 1;
  ERR_clear_error();
  return same;
}

Result<HostPort> split_host_port(const std::string& address) {
  HostPort hp;
  if (!address.empty() && address.front() == '[') {
    auto close = address.find(']');
    if (close == std::string::npos || close + 1 >= address.size() || address[close + 1] != ':')
      return invalid_argument("address", "expected [IPV6]:PORT, got '" + address + "'");
    hp.host = address.substr(1, close - 1);
    hp.port = address.substr(close + 2);
  } else {
    auto colon = address.rfind(':');
    if (colon == std::string::npos || address.find(':') != colon)
      return invalid_argument("address", "expected HOST:PORT, got '" + address + "'");
    hp.host = address.substr(0, colon);
    hp.port = address.substr(colon + 1);
  }
  if (hp.host.empty() || hp.port.empty() ||
      hp.port.find_first_not_of("0123456789") != std::string::npos || hp.port.size() > 5)
    return invalid_argument("address", "expected HOST:PORT, got '" + address + "'");
  unsigned char buf[16];
  hp.is_ip = inet_pton(AF_INET, hp.host.c_str(), buf) == 1 ||
             inet_pton(AF_INET6, hp.host.c_str(), buf) == 1;
  return hp;
}

}  // namespace strata::pki
