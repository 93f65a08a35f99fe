// The CLI's and the enrollment client's https: a real TLS server on loopback (certificate
// from a Strata CA for 127.0.0.1, chain = leaf + CA, as stratad serves it). The client
// accepts it with that CA (--ca-file / STRATA_CA_FILE, the CA PEM, or the CA fingerprint
// join tokens carry) and refuses it with another CA, with the system trust store, under
// another host name, or with a wrong fingerprint.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <filesystem>
#include <fstream>
#include <thread>

#include "strata/cli/http_client.h"
#include "strata/enroll/http_client.h"
#include "strata/pki/certificate_authority.h"
#include "strata/pki/pki.h"

namespace strata::cli {
namespace {

namespace fs = std::filesystem;
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
using tcp = asio::ip::tcp;

// Serves {"ok":true} over TLS to each connection, one at a time, until destroyed.
class TlsServer {
 public:
  TlsServer(const std::string& chain_pem, const std::string& key_pem)
      : ctx_(asio::ssl::context::tls_server), acceptor_(ioc_) {
    ctx_.use_certificate_chain(asio::buffer(chain_pem));
    ctx_.use_private_key(asio::buffer(key_pem), asio::ssl::context::pem);
    tcp::endpoint ep(asio::ip::make_address("127.0.0.1"), 0);
    acceptor_.open(ep.protocol());
    acceptor_.bind(ep);
    acceptor_.listen();
    port_ = acceptor_.local_endpoint().port();
    thread_ = std::thread([this] { serve(); });
  }
  ~TlsServer() {
    stop_ = true;
    beast::error_code ec;
    tcp::socket s(ioc_);
    s.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port_), ec);
    thread_.join();
  }
  std::string port() const { return std::to_string(port_); }
  int served() const { return served_; }

 private:
  void serve() {
    while (!stop_) {
      tcp::socket sock(ioc_);
      beast::error_code ec;
      acceptor_.accept(sock, ec);
      if (ec || stop_) return;
      beast::ssl_stream<beast::tcp_stream> s(beast::tcp_stream(std::move(sock)), ctx_);
      beast::get_lowest_layer(s).expires_after(std::chrono::seconds(5));
      s.handshake(asio::ssl::stream_base::server, ec);
      if (ec) continue;  // the client refused us (or only fetched the chain)
      beast::flat_buffer buf;
      http::request<http::string_body> req;
      http::read(s, buf, req, ec);
      if (ec) continue;
      http::response<http::string_body> res{http::status::ok, 11};
      res.set(http::field::content_type, "application/json");
      res.body() = R"({"ok":true})";
      res.prepare_payload();
      http::write(s, res, ec);
      ++served_;
      s.shutdown(ec);
    }
  }

  asio::io_context ioc_;
  asio::ssl::context ctx_;
  tcp::acceptor acceptor_;
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> served_{0};
  std::thread thread_;
};

class HttpsClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/strata-https-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    auto ca = pki::CertificateAuthority::create("Strata manager CA");
    auto other = pki::CertificateAuthority::create("Strata manager CA");
    ASSERT_TRUE(ca && other);
    ca_pem_ = ca->cert_pem();
    other_pem_ = other->cert_pem();
    auto leaf = ca->issue("stratad", {"127.0.0.1"}, pki::CertUsage::server, 30);
    ASSERT_TRUE(leaf) << leaf.error().to_string();
    server_ = std::make_unique<TlsServer>(leaf->cert_pem + ca_pem_, leaf->key_pem);
    ca_file_ = write("ca.crt", ca_pem_);
    other_file_ = write("other.crt", other_pem_);
  }
  void TearDown() override {
    server_.reset();
    fs::remove_all(dir_);
  }
  std::string write(const std::string& name, const std::string& text) {
    std::string path = (dir_ / name).string();
    std::ofstream(path) << text;
    return path;
  }
  Result<nlohmann::json> get(const std::string& host, const std::string& ca_file) {
    auto ep = parse_server_url("https://" + host + ":" + server_->port());
    EXPECT_TRUE(ep);
    ep->ca_file = ca_file;
    HttpClient c(*ep, "tok", std::chrono::seconds(5));
    return c.call({"GET", "/api/v1/version", std::nullopt});
  }

  fs::path dir_;
  std::string ca_pem_, other_pem_, ca_file_, other_file_;
  std::unique_ptr<TlsServer> server_;
};

TEST_F(HttpsClientTest, ServerUrlsSayWhetherTheyUseTls) {
  auto https = parse_server_url("https://manager.example");
  ASSERT_TRUE(https);
  EXPECT_TRUE(https->tls);
  EXPECT_EQ(https->port, "443");
  auto plain = parse_server_url("http://127.0.0.1:7480");
  ASSERT_TRUE(plain);
  EXPECT_FALSE(plain->tls);
  EXPECT_FALSE(parse_server_url("ftp://x"));
}

TEST_F(HttpsClientTest, TheRightCaIsAccepted) {
  auto r = get("127.0.0.1", ca_file_);
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_EQ((*r)["ok"], true);
}

TEST_F(HttpsClientTest, AnotherCaIsRefused) {
  auto r = get("127.0.0.1", other_file_);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::unavailable);
  EXPECT_NE(r.error().message.find("not trusted"), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find("--ca-file"), std::string::npos) << r.error().message;
  EXPECT_EQ(server_->served(), 0);
}

TEST_F(HttpsClientTest, ThePrivateCaIsNotInTheSystemTrustStore) {
  auto r = get("127.0.0.1", "");
  ASSERT_FALSE(r);
  EXPECT_EQ(server_->served(), 0);
}

TEST_F(HttpsClientTest, TheCertificateMustNameTheDialledHost) {
  // Signed for 127.0.0.1; reached as "localhost" (same socket), it does not match.
  auto r = get("localhost", ca_file_);
  ASSERT_FALSE(r);
  EXPECT_EQ(server_->served(), 0);
}

TEST_F(HttpsClientTest, AMissingCaFileIsSaid) {
  auto r = get("127.0.0.1", (dir_ / "nope.crt").string());
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().field, "ca-file");
}

TEST_F(HttpsClientTest, EnrollmentClientTrustsTheCaOfTheJoinTokensFingerprint) {
  std::string base = "https://127.0.0.1:" + server_->port();
  enroll::TlsTrust pin;
  pin.ca_fingerprint = *pki::cert_fingerprint(ca_pem_);
  auto ok = enroll::http_request(base, "GET", "/api/v1/version", "", "", pin);
  ASSERT_TRUE(ok) << ok.error().to_string();
  EXPECT_EQ(ok->status, 200u);

  enroll::TlsTrust wrong;
  wrong.ca_fingerprint = *pki::cert_fingerprint(other_pem_);
  auto refused = enroll::http_request(base, "GET", "/api/v1/version", "", "", wrong);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, ErrorCode::unauthenticated);
  EXPECT_NE(refused.error().message.find("refusing to trust"), std::string::npos)
      << refused.error().message;

  enroll::TlsTrust given;
  given.ca_pem = ca_pem_;
  EXPECT_TRUE(enroll::http_request(base, "GET", "/", "", "", given));
  given.ca_pem = other_pem_;
  EXPECT_FALSE(enroll::http_request(base, "GET", "/", "", "", given));
  // Without any trust given: the system store, which does not know this CA.
  EXPECT_FALSE(enroll::http_request(base, "GET", "/", "", "", {}));
}

}  // namespace
}  // namespace strata::cli
