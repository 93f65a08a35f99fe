// The manager's CA: creation, loading, and signing of leaf certificates (see
// certificate_authority.h).
#include "strata/pki/certificate_authority.h"

#include <arpa/inet.h>
#include <openssl/rand.h>
#include <sys/stat.h>

#include <filesystem>

#include "ossl.h"
#include "strata/pki/pki.h"

namespace strata::pki {

using namespace detail;
namespace fs = std::filesystem;

struct CertificateAuthority::Impl {
  KeyPtr key;
  X509Ptr cert;
};

namespace {

constexpr int kCaValidDays = 3650;

Status set_serial(X509* cert) {
  unsigned char bytes[16];
  if (RAND_bytes(bytes, sizeof(bytes)) != 1) return ossl_failure("random serial");
  bytes[0] &= 0x7f;  // positive
  bytes[0] |= 0x01;  // and never zero
  std::unique_ptr<BIGNUM, Deleter<BN_free>> bn(BN_bin2bn(bytes, sizeof(bytes), nullptr));
  if (!bn || !BN_to_ASN1_INTEGER(bn.get(), X509_get_serialNumber(cert)))
    return ossl_failure("serial");
  return {};
}

Status set_cn(X509_NAME* name, const std::string& cn) {
  if (X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8,
                                 reinterpret_cast<const unsigned char*>("Strata"), -1, -1,
                                 0) != 1 ||
      X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                                 reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1,
                                 0) != 1)
    return ossl_failure("subject name");
  return {};
}

Status add_ext(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  ExtPtr ext(X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str()));
  if (!ext || X509_add_ext(cert, ext.get(), -1) != 1)
    return ossl_failure("certificate extension " + value);
  return {};
}

// A certificate skeleton: version 3, random serial, validity from now (minus a minute of
// clock skew) for `days`, subject CN, issuer (= subject for the CA itself).
Result<X509Ptr> new_cert(const std::string& cn, X509* issuer, EVP_PKEY* pubkey, int days) {
  X509Ptr cert(X509_new());
  if (!cert || X509_set_version(cert.get(), 2) != 1) return ossl_failure("certificate");
  if (auto st = set_serial(cert.get()); !st) return tl::unexpected(st.error());
  if (!X509_gmtime_adj(X509_getm_notBefore(cert.get()), -60) ||
      !X509_gmtime_adj(X509_getm_notAfter(cert.get()), static_cast<long>(days) * 86400))
    return ossl_failure("validity");
  if (auto st = set_cn(X509_get_subject_name(cert.get()), cn); !st)
    return tl::unexpected(st.error());
  X509_NAME* issuer_name =
      issuer ? X509_get_subject_name(issuer) : X509_get_subject_name(cert.get());
  if (X509_set_issuer_name(cert.get(), issuer_name) != 1 ||
      X509_set_pubkey(cert.get(), pubkey) != 1)
    return ossl_failure("certificate");
  return cert;
}

// "IP:a.b.c.d" for IP literals, "DNS:name" for host names; anything else is refused so no
// input can add a second entry (',') or another kind of name.
Result<std::string> subject_alt_names(const std::vector<std::string>& sans) {
  std::string out;
  for (const auto& s : sans) {
    unsigned char buf[16];
    bool ip = inet_pton(AF_INET, s.c_str(), buf) == 1 || inet_pton(AF_INET6, s.c_str(), buf) == 1;
    if (!ip && (s.empty() || s.size() > 253 ||
                s.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                    "0123456789.-") != std::string::npos))
      return invalid_argument("address", "cannot put '" + s + "' in a certificate");
    if (!out.empty()) out += ",";
    out += (ip ? "IP:" : "DNS:") + s;
  }
  return out;
}

Result<X509Ptr> sign_leaf(EVP_PKEY* ca_key, X509* ca_cert, EVP_PKEY* pubkey, const std::string& cn,
                          const std::vector<std::string>& sans, CertUsage usage, int days) {
  if (cn.empty() || cn.size() > 64) return invalid_argument("name", "common name must be 1..64");
  if (days < 1 || days > kCaValidDays) return invalid_argument("days", "validity 1..3650 days");
  auto cert = new_cert(cn, ca_cert, pubkey, days);
  if (!cert) return tl::unexpected(cert.error());
  X509* c = cert->get();
  if (auto st = add_ext(c, ca_cert, NID_basic_constraints, "critical,CA:FALSE"); !st)
    return tl::unexpected(st.error());
  if (auto st = add_ext(c, ca_cert, NID_key_usage, "critical,digitalSignature,keyEncipherment");
      !st)
    return tl::unexpected(st.error());
  const char* eku = usage == CertUsage::server   ? "serverAuth"
                    : usage == CertUsage::client ? "clientAuth"
                                                 : "serverAuth,clientAuth";
  if (auto st = add_ext(c, ca_cert, NID_ext_key_usage, eku); !st) return tl::unexpected(st.error());
  if (auto st = add_ext(c, ca_cert, NID_subject_key_identifier, "hash"); !st)
    return tl::unexpected(st.error());
  if (auto st = add_ext(c, ca_cert, NID_authority_key_identifier, "keyid:always"); !st)
    return tl::unexpected(st.error());
  if (!sans.empty()) {
    auto alt = subject_alt_names(sans);
    if (!alt) return tl::unexpected(alt.error());
    if (auto st = add_ext(c, ca_cert, NID_subject_alt_name, *alt); !st)
      return tl::unexpected(st.error());
  }
  if (X509_sign(c, ca_key, EVP_sha256()) <= 0) return ossl_failure("signing");
  return cert;
}

Result<std::pair<KeyPtr, X509Ptr>> make_ca(const std::string& cn) {
  auto key = new_ec_key();
  if (!key) return tl::unexpected(key.error());
  auto cert = new_cert(cn, nullptr, key->get(), kCaValidDays);
  if (!cert) return tl::unexpected(cert.error());
  X509* c = cert->get();
  for (auto [nid, value] : {std::pair{NID_basic_constraints, "critical,CA:TRUE,pathlen:0"},
                            std::pair{NID_key_usage, "critical,keyCertSign,cRLSign"},
                            std::pair{NID_subject_key_identifier, "hash"}})
    if (auto st = add_ext(c, c, nid, value); !st) return tl::unexpected(st.error());
  if (X509_sign(c, key->get(), EVP_sha256()) <= 0) return ossl_failure("signing the CA");
  return std::make_pair(std::move(*key), std::move(*cert));
}

}  // namespace

CertificateAuthority::CertificateAuthority(std::unique_ptr<Impl> impl, std::string cert_pem)
    : impl_(std::move(impl)), cert_pem_(std::move(cert_pem)) {}
CertificateAuthority::CertificateAuthority(CertificateAuthority&&) noexcept = default;
CertificateAuthority& CertificateAuthority::operator=(CertificateAuthority&&) noexcept = default;
CertificateAuthority::~CertificateAuthority() = default;

Result<CertificateAuthority> CertificateAuthority::create(const std::string& common_name) {
  auto ca = make_ca(common_name);
  if (!ca) return tl::unexpected(ca.error());
  auto pem = cert_to_pem(ca->second.get());
  if (!pem) return tl::unexpected(pem.error());
  auto impl = std::make_unique<Impl>();
  impl->key = std::move(ca->first);
  impl->cert = std::move(ca->second);
  return CertificateAuthority(std::move(impl), std::move(*pem));
}

Result<CertificateAuthority> CertificateAuthority::load_or_create(const std::string& dir,
                                                                  const std::string& common_name) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return internal_error("cannot create " + dir + ": " + ec.message());
  ::chmod(dir.c_str(), 0700);
  std::string key_path = dir + "/ca.key", cert_path = dir + "/ca.crt";
  bool has_key = fs::exists(key_path), has_cert = fs::exists(cert_path);
  if (has_key != has_cert)
    return make_error(ErrorCode::failed_precondition,
                      "CA folder " + dir + " has only one of ca.key and ca.crt; restore the " +
                          "missing file (agents trust this CA), or remove both to make a new " +
                          "CA and re-enroll every host");
  if (!has_key) {
    auto ca = create(common_name);
    if (!ca) return tl::unexpected(ca.error());
    auto key_pem = key_to_pem(ca->impl_->key.get());
    if (!key_pem) return tl::unexpected(key_pem.error());
    if (auto st = write_file_atomic(key_path, *key_pem, 0600); !st)
      return tl::unexpected(st.error());
    if (auto st = write_file_atomic(cert_path, ca->cert_pem(), 0644); !st)
      return tl::unexpected(st.error());
    return ca;
  }
  struct stat st {};
  if (::stat(key_path.c_str(), &st) == 0 && (st.st_mode & 077) != 0)
    return make_error(ErrorCode::failed_precondition,
                      key_path + " is readable by group or others; chmod 0600 it");
  auto key_pem = read_file(key_path);
  if (!key_pem) return tl::unexpected(key_pem.error());
  auto cert_pem = read_file(cert_path);
  if (!cert_pem) return tl::unexpected(cert_pem.error());
  auto key = parse_key(*key_pem);
  if (!key) return tl::unexpected(key.error().wrap(key_path));
  auto cert = parse_cert(*cert_pem);
  if (!cert) return tl::unexpected(cert.error().wrap(cert_path));
  if (X509_check_private_key(cert->get(), key->get()) != 1) {
    ERR_clear_error();
    return make_error(ErrorCode::failed_precondition, cert_path + " does not match " + key_path);
  }
  auto impl = std::make_unique<Impl>();
  impl->key = std::move(*key);
  impl->cert = std::move(*cert);
  return CertificateAuthority(std::move(impl), std::move(*cert_pem));
}

Result<std::string> CertificateAuthority::sign_csr(const std::string& csr_pem,
                                                   const std::string& common_name,
                                                   const std::vector<std::string>& sans,
                                                   CertUsage usage, int valid_days) const {
  auto bio = mem_bio(csr_pem);
  ReqPtr req(PEM_read_bio_X509_REQ(bio.get(), nullptr, nullptr, nullptr));
  if (!req) {
    ERR_clear_error();
    return invalid_argument("csr", "not a PEM certificate signing request");
  }
  EVP_PKEY* pub = X509_REQ_get0_pubkey(req.get());
  if (!pub || X509_REQ_verify(req.get(), pub) != 1) {
    ERR_clear_error();
    return invalid_argument("csr", "the CSR's signature does not verify");
  }
  if (EVP_PKEY_get_bits(pub) < 256 ||
      (EVP_PKEY_get_base_id(pub) == EVP_PKEY_RSA && EVP_PKEY_get_bits(pub) < 2048))
    return invalid_argument("csr", "the CSR's key is too small");
  auto cert =
      sign_leaf(impl_->key.get(), impl_->cert.get(), pub, common_name, sans, usage, valid_days);
  if (!cert) return tl::unexpected(cert.error());
  return cert_to_pem(cert->get());
}

Result<KeyAndCert> CertificateAuthority::issue(const std::string& common_name,
                                               const std::vector<std::string>& sans,
                                               CertUsage usage, int valid_days) const {
  auto key = new_ec_key();
  if (!key) return tl::unexpected(key.error());
  auto cert = sign_leaf(impl_->key.get(), impl_->cert.get(), key->get(), common_name, sans, usage,
                        valid_days);
  if (!cert) return tl::unexpected(cert.error());
  auto key_pem = key_to_pem(key->get());
  if (!key_pem) return tl::unexpected(key_pem.error());
  auto cert_pem = cert_to_pem(cert->get());
  if (!cert_pem) return tl::unexpected(cert_pem.error());
  return KeyAndCert{std::move(*key_pem), std::move(*cert_pem)};
}

}  // namespace strata::pki
