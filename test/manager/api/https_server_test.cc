// The Beast server over TLS (HttpServerConfig::tls) with a certificate from a Strata CA:
// a client trusting that CA (PEM, file or fingerprint pin) is served, one trusting another
// CA is refused, a plain-HTTP client gets nothing, server-sent events and a WebSocket work
// over TLS, and a client that never finishes the handshake is dropped at the header
// deadline.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <future>
#include <thread>

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>
#include <fmt/format.h>

#include "strata/enroll/http_client.h"
#include "strata/manager/api/http_server.h"
#include "strata/pki/certificate_authority.h"

namespace strata::manager {
namespace {

using namespace std::chrono_literals;
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
namespace websocket = boost::beast::websocket;
namespace ssl = boost::asio::ssl;

// sha256:<hex> of the first certificate in `pem`.
std::string fingerprint(const std::string& pem) {
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  X509* cert = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  if (!cert) return {};
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  X509_digest(cert, EVP_sha256(), md, &len);
  X509_free(cert);
  std::string out = "sha256:";
  for (unsigned i = 0; i < len; ++i) out += fmt::format("{:02x}", md[i]);
  return out;
}

// A TLS server with a certificate from its own CA for 127.0.0.1 and localhost: /ping
// answers JSON, /events sends one event and stays open, /ws echoes messages.
// Echoes each message until the session ends.
void echo(const std::shared_ptr<WebSocket>& ws) {
  ws->receive([ws](std::optional<std::string> m) {
    if (!m) return;
    ws->send(std::move(*m), false);
    echo(ws);
  });
}

struct TlsServer {
  std::optional<pki::CertificateAuthority> ca;
  HttpServerPtr server;

  explicit TlsServer(HttpServerConfig cfg = {}) {
    auto made = pki::CertificateAuthority::create("test CA");
    if (!made) {
      ADD_FAILURE() << made.error().to_string();
      return;
    }
    ca.emplace(std::move(*made));
    auto leaf = ca->issue("stratad", {"127.0.0.1", "localhost"}, pki::CertUsage::server, 30);
    if (!leaf) {
      ADD_FAILURE() << leaf.error().to_string();
      return;
    }
    cfg.host = "127.0.0.1";
    cfg.port = 0;
    cfg.tls = ServerTls{leaf->cert_pem + ca->cert_pem(), leaf->key_pem};
    auto srv = start_http_server(
        cfg, [](std::string_view, std::string_view) { return size_t{1024}; },
        [](HttpRequest& r) {
          HttpResponse resp;
          if (r.path == "/events") {
            resp.content_type = "text/event-stream";
            resp.event_stream = [](std::shared_ptr<EventStream> s) {
              s->write("id: 1\nevent: hello\ndata: {\"n\":1}\n\n");
            };
          } else if (r.path == "/ws") {
            resp.websocket = [](std::shared_ptr<WebSocket> ws) { echo(ws); };
          } else {
            resp = HttpResponse::json(200, {{"pong", r.body}});
          }
          return resp;
        });
    if (!srv) {
      ADD_FAILURE() << srv.error().to_string();
      return;
    }
    server = std::move(*srv);
  }
  ~TlsServer() {
    if (server) server->stop();
  }
  std::string url() const { return fmt::format("https://127.0.0.1:{}", server->port()); }
};

// A client TLS context trusting `ca_pem`, checking the name 127.0.0.1.
std::unique_ptr<ssl::context> client_ctx(const std::string& ca_pem) {
  auto ctx = std::make_unique<ssl::context>(ssl::context::tls_client);
  ctx->add_certificate_authority(asio::buffer(ca_pem));
  ctx->set_verify_mode(ssl::verify_peer);
  return ctx;
}
void expect_ip(SSL* ssl) {
  X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), "127.0.0.1");
}

TEST(HttpsServer, RightCaAcceptedWrongCaRefused) {
  TlsServer s;
  ASSERT_TRUE(s.server);
  enroll::TlsTrust right;
  right.ca_pem = s.ca->cert_pem();
  auto ok = enroll::http_request(s.url(), "POST", "/ping", "hi", {}, right);
  ASSERT_TRUE(ok) << ok.error().to_string();
  EXPECT_EQ(ok->status, 200);
  EXPECT_NE(ok->body.find("\"hi\""), std::string::npos) << ok->body;

  auto other = pki::CertificateAuthority::create("another CA");
  ASSERT_TRUE(other);
  enroll::TlsTrust wrong;
  wrong.ca_pem = other->cert_pem();
  auto refused = enroll::http_request(s.url(), "POST", "/ping", "hi", {}, wrong);
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message.find("not trusted"), std::string::npos)
      << refused.error().message;

  // The system trust store does not know this CA either.
  auto system = enroll::http_request(s.url(), "GET", "/ping", "", {}, {});
  EXPECT_FALSE(system);
}

TEST(HttpsServer, CaFileAndFingerprintPinAccepted) {
  TlsServer s;
  ASSERT_TRUE(s.server);
  char path[] = "/tmp/strata-ca-XXXXXX";
  int fd = ::mkstemp(path);
  ASSERT_GE(fd, 0);
  ::close(fd);
  std::ofstream(path) << s.ca->cert_pem();
  enroll::TlsTrust by_file;
  by_file.ca_file = path;
  auto a = enroll::http_request(s.url(), "GET", "/ping", "", {}, by_file);
  ::unlink(path);
  ASSERT_TRUE(a) << a.error().to_string();
  EXPECT_EQ(a->status, 200);

  enroll::TlsTrust pin;
  pin.ca_fingerprint = fingerprint(s.ca->cert_pem());
  auto b = enroll::http_request(s.url(), "GET", "/ping", "", {}, pin);
  ASSERT_TRUE(b) << b.error().to_string();
  EXPECT_EQ(b->status, 200);

  auto other = pki::CertificateAuthority::create("another CA");
  ASSERT_TRUE(other);
  enroll::TlsTrust bad_pin;
  bad_pin.ca_fingerprint = fingerprint(other->cert_pem());
  EXPECT_FALSE(enroll::http_request(s.url(), "GET", "/ping", "", {}, bad_pin));
}

TEST(HttpsServer, PlainHttpClientGetsNoAnswer) {
  TlsServer s;
  ASSERT_TRUE(s.server);
  auto r = enroll::http_request(fmt::format("http://127.0.0.1:{}", s.server->port()), "GET",
                                "/ping", "");
  EXPECT_FALSE(r && r->status == 200);
}

TEST(HttpsServer, EventStreamOverTls) {
  TlsServer s;
  ASSERT_TRUE(s.server);
  asio::io_context ioc;
  auto ctx = client_ctx(s.ca->cert_pem());
  beast::ssl_stream<beast::tcp_stream> stream(ioc, *ctx);
  expect_ip(stream.native_handle());
  beast::get_lowest_layer(stream).expires_after(10s);
  beast::get_lowest_layer(stream).connect({asio::ip::make_address("127.0.0.1"), s.server->port()});
  stream.handshake(ssl::stream_base::client);
  bhttp::request<bhttp::empty_body> req{bhttp::verb::get, "/events", 11};
  req.set(bhttp::field::host, "127.0.0.1");
  bhttp::write(stream, req);
  std::string got;
  char buf[4096];
  while (got.find("data: {\"n\":1}") == std::string::npos) {
    beast::error_code ec;
    size_t n = stream.read_some(asio::buffer(buf), ec);
    ASSERT_FALSE(ec) << ec.message() << " after: " << got;
    got.append(buf, n);
  }
  EXPECT_NE(got.find("text/event-stream"), std::string::npos) << got;
  EXPECT_NE(got.find("event: hello"), std::string::npos) << got;
}

TEST(HttpsServer, WebSocketOverTls) {
  TlsServer s;
  ASSERT_TRUE(s.server);
  asio::io_context ioc;
  auto ctx = client_ctx(s.ca->cert_pem());
  websocket::stream<beast::ssl_stream<beast::tcp_stream>> ws(ioc, *ctx);
  expect_ip(ws.next_layer().native_handle());
  beast::get_lowest_layer(ws).expires_after(10s);
  beast::get_lowest_layer(ws).connect({asio::ip::make_address("127.0.0.1"), s.server->port()});
  ws.next_layer().handshake(ssl::stream_base::client);
  ws.handshake("127.0.0.1", "/ws");
  ws.write(asio::buffer(std::string("over tls")));
  beast::flat_buffer buf;
  ws.read(buf);
  EXPECT_EQ(beast::buffers_to_string(buf.data()), "over tls");
  ws.close(websocket::close_code::normal);
}

// The handshake counts in the header deadline: a client that connects and sends nothing
// is disconnected after header_timeout (bound with a wide margin).
TEST(HttpsServer, SilentClientDroppedAtHeaderDeadline) {
  HttpServerConfig cfg;
  cfg.header_timeout = 300ms;
  TlsServer s(cfg);
  ASSERT_TRUE(s.server);
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  timeval tv{20, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(s.server->port());
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  auto t0 = std::chrono::steady_clock::now();
  char c;
  ssize_t n = ::recv(fd, &c, 1, 0);
  auto waited = std::chrono::steady_clock::now() - t0;
  ::close(fd);
  EXPECT_EQ(n, 0) << "expected the server to close the connection";
  EXPECT_LT(waited, 10s);
}

}  // namespace
}  // namespace strata::manager
