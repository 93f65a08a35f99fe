// The manager's CA, CSRs and host certificates: what the certificates say (CN, SAN, usage),
// that a certificate from another CA or a tampered CSR is refused, and that private keys
// are written 0600.
#include "strata/pki/pki.h"

#include <gtest/gtest.h>
#include <cstdlib>
#include <cstdio>
#include <unistd.h>
#include <sys/stat.h>

#include <cctype>
#include <filesystem>

#include "strata/pki/certificate_authority.h"

namespace strata::pki {
namespace {

namespace fs = std::filesystem;

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/strata-pki-XXXXXX";
    path_ = mkdtemp(tmpl);
  }
  ~TempDir() { fs::remove_all(path_); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

unsigned mode_of(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
  return st.st_mode & 0777;
}

// The DH parameters QEMU's TLS server gets: the named ffdhe2048 group as PKCS#3 PEM (what
// GnuTLS imports), the same every time (nothing generated), and openssl reads them back.
TEST(Pki, DhParamsAreTheFfdhe2048GroupAsPkcs3Pem) {
  auto a = dh_params_pem();
  ASSERT_TRUE(a) << a.error().to_string();
  EXPECT_EQ(a->rfind("-----BEGIN DH PARAMETERS-----\n", 0), 0u) << *a;
  EXPECT_NE(a->find("-----END DH PARAMETERS-----"), std::string::npos);
  auto b = dh_params_pem();
  ASSERT_TRUE(b);
  EXPECT_EQ(*a, *b) << "a named group, not generated parameters";
  char path[] = "/tmp/strata-dh-XXXXXX";
  int fd = ::mkstemp(path);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::write(fd, a->data(), a->size()), static_cast<ssize_t>(a->size()));
  ::close(fd);
  const std::string cmd = std::string("openssl pkeyparam -in ") + path + " -text -noout 2>&1";
  std::string out;
  if (FILE* p = ::popen(cmd.c_str(), "r")) {
    char buf[512];
    while (size_t n = ::fread(buf, 1, sizeof buf, p)) out.append(buf, n);
    ::pclose(p);
  }
  ::unlink(path);
  EXPECT_NE(out.find("2048 bit"), std::string::npos) << out;
  EXPECT_NE(out.find("ffdhe2048"), std::string::npos) << out;
}

TEST(Pki, HostCertificateFromCsrCarriesNameSanAndServerUsage) {
  auto ca = CertificateAuthority::create("test CA");
  ASSERT_TRUE(ca) << ca.error().to_string();
  auto key = generate_key();
  ASSERT_TRUE(key) << key.error().to_string();
  auto csr = make_csr(*key, "what-the-agent-asked");
  ASSERT_TRUE(csr) << csr.error().to_string();
  auto cert = ca->sign_csr(*csr, "h1", {"10.77.0.11"}, CertUsage::server, 30);
  ASSERT_TRUE(cert) << cert.error().to_string();

  EXPECT_TRUE(verify_cert(*cert, ca->cert_pem()));
  EXPECT_TRUE(*cert_matches_key(*cert, *key));
  auto info = inspect_cert(*cert);
  ASSERT_TRUE(info);
  EXPECT_EQ(info->common_name, "h1") << "the manager, not the CSR, names the host";
  EXPECT_EQ(info->ip_addresses, std::vector<std::string>{"10.77.0.11"});
  EXPECT_TRUE(info->dns_names.empty());
  EXPECT_TRUE(info->server_auth);
  EXPECT_FALSE(info->client_auth) << "a host certificate must not call other agents";
  EXPECT_FALSE(info->is_ca);

  auto dns = ca->sign_csr(*csr, "h2", {"node2.example"}, CertUsage::server, 30);
  ASSERT_TRUE(dns);
  EXPECT_EQ(inspect_cert(*dns)->dns_names, std::vector<std::string>{"node2.example"});
  auto v6 = ca->sign_csr(*csr, "h3", {"fd00::3"}, CertUsage::server, 30);
  ASSERT_TRUE(v6);
  EXPECT_EQ(inspect_cert(*v6)->ip_addresses, std::vector<std::string>{"fd00::3"});
  // A migration certificate: both ends of QEMU's migration TLS present it.
  auto mig = ca->sign_csr(*csr, "h1", {"10.77.0.11"}, CertUsage::migration, 30);
  ASSERT_TRUE(mig);
  EXPECT_TRUE(inspect_cert(*mig)->server_auth);
  EXPECT_TRUE(inspect_cert(*mig)->client_auth);
  EXPECT_TRUE(verify_cert(*mig, ca->cert_pem()));
}

TEST(Pki, CertificateFromAnotherCaIsRejected) {
  auto ca = CertificateAuthority::create("real CA");
  auto other = CertificateAuthority::create("real CA");  // same name, different key
  ASSERT_TRUE(ca && other);
  auto issued = other->issue("stratad", {}, CertUsage::client, 30);
  ASSERT_TRUE(issued);
  auto st = verify_cert(issued->cert_pem, ca->cert_pem());
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code, ErrorCode::unauthenticated);
  EXPECT_TRUE(verify_cert(issued->cert_pem, other->cert_pem()));
  EXPECT_TRUE(inspect_cert(issued->cert_pem)->client_auth);
  EXPECT_FALSE(inspect_cert(issued->cert_pem)->server_auth);
  EXPECT_TRUE(inspect_cert(ca->cert_pem())->is_ca);
  EXPECT_FALSE(*cert_matches_key(issued->cert_pem, *generate_key()));
}

TEST(Pki, TamperedOrBogusCsrIsRefused) {
  auto ca = CertificateAuthority::create("CA");
  ASSERT_TRUE(ca);
  auto csr = make_csr(*generate_key(), "h1");
  ASSERT_TRUE(csr);
  auto bogus = ca->sign_csr("not a csr", "h1", {"10.0.0.1"}, CertUsage::server, 30);
  ASSERT_FALSE(bogus);
  EXPECT_EQ(bogus.error().field, "csr");
  // Flip one base64 character in the middle of the body: the signature no longer holds
  // (or the DER no longer parses); either way no certificate.
  std::string tampered = *csr;
  size_t mid = tampered.find('\n') + 60;
  tampered[mid] = tampered[mid] == 'A' ? 'B' : 'A';
  EXPECT_FALSE(ca->sign_csr(tampered, "h1", {"10.0.0.1"}, CertUsage::server, 30));
  // No name may smuggle a second SAN entry or another kind of name.
  for (const char* bad : {"a,IP:1.2.3.4", "", "x y", "email:a@b"})
    EXPECT_FALSE(ca->sign_csr(*csr, "h1", {bad}, CertUsage::server, 30)) << bad;
  EXPECT_FALSE(ca->sign_csr(*csr, "", {"10.0.0.1"}, CertUsage::server, 30));
  EXPECT_FALSE(ca->sign_csr(*csr, "h1", {"10.0.0.1"}, CertUsage::server, 0));
}

TEST(Pki, CaIsMadeOnceWithAPrivateKeyAndReloaded) {
  TempDir tmp;
  std::string dir = tmp.path() + "/pki";
  auto first = CertificateAuthority::load_or_create(dir, "CA");
  ASSERT_TRUE(first) << first.error().to_string();
  EXPECT_EQ(mode_of(dir + "/ca.key"), 0600u);
  EXPECT_EQ(mode_of(dir), 0700u);
  auto again = CertificateAuthority::load_or_create(dir, "CA");
  ASSERT_TRUE(again) << again.error().to_string();
  EXPECT_EQ(again->cert_pem(), first->cert_pem()) << "the CA must survive a restart";
  // The reloaded CA signs certificates the first one's certificate verifies.
  auto issued = again->issue("stratad", {}, CertUsage::client, 30);
  ASSERT_TRUE(issued);
  EXPECT_TRUE(verify_cert(issued->cert_pem, first->cert_pem()));

  ::chmod((dir + "/ca.key").c_str(), 0644);
  auto loose = CertificateAuthority::load_or_create(dir, "CA");
  ASSERT_FALSE(loose);
  EXPECT_EQ(loose.error().code, ErrorCode::failed_precondition);
  ::chmod((dir + "/ca.key").c_str(), 0600);
  fs::remove(dir + "/ca.crt");
  auto half = CertificateAuthority::load_or_create(dir, "CA");
  ASSERT_FALSE(half) << "one file of two must not silently become a new CA";
  EXPECT_EQ(half.error().code, ErrorCode::failed_precondition);
}

TEST(Pki, WriteFileAtomicSetsTheModeWhateverTheUmask) {
  TempDir tmp;
  mode_t old = ::umask(0);
  auto st = write_file_atomic(tmp.path() + "/k", "secret", 0600);
  ::umask(old);
  ASSERT_TRUE(st) << st.error().to_string();
  EXPECT_EQ(mode_of(tmp.path() + "/k"), 0600u);
  EXPECT_EQ(*read_file(tmp.path() + "/k"), "secret");
  ASSERT_TRUE(write_file_atomic(tmp.path() + "/k", "new", 0600));
  EXPECT_EQ(*read_file(tmp.path() + "/k"), "new");
  EXPECT_FALSE(fs::exists(tmp.path() + "/k.tmp"));
}

TEST(Pki, FingerprintIsTheSha256OfTheDerAndParsesBackInOpensslSpelling) {
  auto ca = CertificateAuthority::create("Strata manager CA");
  ASSERT_TRUE(ca);
  auto fp = cert_fingerprint(ca->cert_pem());
  ASSERT_TRUE(fp) << fp.error().to_string();
  ASSERT_EQ(fp->size(), 7u + 64u);
  EXPECT_EQ(fp->substr(0, 7), "sha256:");
  EXPECT_EQ(*cert_fingerprint(ca->cert_pem()), *fp);  // stable
  auto other = CertificateAuthority::create("Strata manager CA");
  ASSERT_TRUE(other);
  EXPECT_NE(*cert_fingerprint(other->cert_pem()), *fp);  // same name, other key: differs
  // The colon-separated upper-case form openssl prints parses to the same value.
  std::string openssl_form = "sha256:";
  for (size_t i = 7; i < fp->size(); i += 2) {
    if (i > 7) openssl_form += ':';
    openssl_form += static_cast<char>(std::toupper((*fp)[i]));
    openssl_form += static_cast<char>(std::toupper((*fp)[i + 1]));
  }
  auto parsed = parse_fingerprint(openssl_form, "ca-fingerprint");
  ASSERT_TRUE(parsed) << parsed.error().to_string();
  EXPECT_EQ(*parsed, *fp);
  const std::string zeros(64, '0');
  for (const std::string& bad : {std::string(), std::string("sha1:abcd"), std::string("sha256:"),
                                 std::string("sha256:xyz"), "sha256:" + zeros + "0",
                                 "SHA256:" + zeros}) {
    auto r = parse_fingerprint(bad, "ca-fingerprint");
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error().field, "ca-fingerprint");
  }
  EXPECT_FALSE(cert_fingerprint("not a certificate"));
}

TEST(Pki, SplitHostPort) {
  auto v4 = split_host_port("10.1.2.3:7481");
  ASSERT_TRUE(v4);
  EXPECT_EQ(v4->host, "10.1.2.3");
  EXPECT_EQ(v4->port, "7481");
  EXPECT_TRUE(v4->is_ip);
  auto v6 = split_host_port("[fd00::1]:7481");
  ASSERT_TRUE(v6);
  EXPECT_EQ(v6->host, "fd00::1");
  EXPECT_TRUE(v6->is_ip);
  auto name = split_host_port("node1.lan:7481");
  ASSERT_TRUE(name);
  EXPECT_FALSE(name->is_ip);
  for (const char* bad : {"", "host", ":1", "host:", "fd00::1:7481", "h:x1", "[fd00::1]7481"})
    EXPECT_FALSE(split_host_port(bad)) << bad;
}

}  // namespace
}  // namespace strata::pki
