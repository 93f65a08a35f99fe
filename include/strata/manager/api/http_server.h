// The HTTP/1.1 transport on Boost.Beast: an acceptor and a small pool of threads running
// one io_context. Each connection reads the header first (431 when too large), asks
// `admit` whether the request may go on (authentication, role, rate limits: the body of a
// refused request is never read) and `body_limit` how large the body of that route may be
// (413 before reading more), reads the body at a minimum rate, and calls `dispatch` on a
// pool thread. Over TLS (HttpServerConfig::tls) the same code runs on a beast::ssl_stream
// after a server handshake. Connections are capped overall and per client address (503
// above a cap); every phase has a deadline (idle, header, body rate, write). Long-lived responses (SSE,
// WebSocket upgrades) continue asynchronously on the same threads (http_streams.cc): no
// thread per stream. Limits and defaults are documented in docs/api.md ("Connection
// limits and timeouts").
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "strata/common/error.h"
#include "strata/manager/api/http.h"
#include "strata/manager/api/http_target.h"  // parse_target

namespace strata::manager {

// Long-lived responses: server-sent events and WebSocket sessions, all on the I/O threads.
struct StreamConfig {
  // Bytes queued for one client before it is disconnected as not reading.
  size_t write_queue_max = 4u << 20;
  // An SSE stream that wrote nothing for this long gets a ": keep-alive" comment.
  std::chrono::milliseconds sse_keepalive{15000};
  // A larger WebSocket message from the client closes the session (close code 1009).
  size_t ws_message_max = 64u * 1024;
  // A WebSocket that receives nothing (not even a pong: pings go out at half of it) for
  // this long is closed.
  std::chrono::milliseconds ws_idle_timeout{60000};
  std::chrono::milliseconds ws_handshake_timeout{30000};
};

// HTTPS: the server's certificate chain (leaf first, then the CA that issued it, so a
// client pinning the CA's fingerprint finds it) and its private key, both PEM.
struct ServerTls {
  std::string cert_chain_pem;
  std::string key_pem;
};

struct HttpServerConfig {
  std::string host = "127.0.0.1";
  uint16_t port = 7480;  // 0: pick a free port (tests)
  int threads = 2;
  StreamConfig streams;
  // Open connections (long-lived streams excluded: they have their own caps). Above a cap
  // a new connection gets 503 (JSON error, Retry-After) and is closed.
  int max_connections = 1024;
  int max_connections_per_address = 64;  // per client IP address
  // A new connection must deliver a whole request header within header_timeout; a
  // kept-alive connection may wait idle_timeout for the first byte of its next request,
  // then has header_timeout for the rest of the header.
  std::chrono::milliseconds header_timeout{std::chrono::seconds(10)};
  std::chrono::milliseconds idle_timeout{std::chrono::seconds(60)};
  size_t header_limit = 16 * 1024;  // bytes of request line + header fields (431 above)
  // Bodies: every body_rate_window must bring body_min_rate * window bytes (or the rest of
  // the body), else the connection is closed. In-memory bodies (JSON, <= 1 MiB) also have
  // an overall deadline; streamed uploads only the rate.
  uint64_t body_min_rate = 8 * 1024;  // bytes per second
  std::chrono::milliseconds body_rate_window{std::chrono::seconds(10)};
  std::chrono::milliseconds body_timeout{std::chrono::seconds(60)};
  // Writing one response (a client that does not read is dropped).
  std::chrono::milliseconds write_timeout{std::chrono::seconds(60)};
  // Set: every connection is TLS (the handshake counts in header_timeout). Unset: plain HTTP.
  std::optional<ServerTls> tls;
};

// Checks on the header alone, and routes whose body goes to a temp file in `dir` instead
// of memory (image uploads). `admit` runs for every request once its header is read
// (authentication, role, rate limits, upload prechecks): a response it returns is sent
// instead of reading the body, and the connection is closed unless the request had no
// body. The request it saw (with its principal) is the one later dispatched.
struct UploadRoutes {
  std::function<bool(std::string_view method, std::string_view path)> streams_body;
  std::function<std::optional<HttpResponse>(HttpRequest& head)> admit;
  std::string dir = "/tmp";
};

class HttpServer {
 public:
  using BodyLimit = std::function<size_t(std::string_view method, std::string_view path)>;
  using Dispatch = std::function<HttpResponse(HttpRequest&)>;

  virtual ~HttpServer() = default;
  virtual uint16_t port() const = 0;
  // Stops accepting, closes open streams, joins every thread. Idempotent.
  virtual void stop() = 0;
};
using HttpServerPtr = std::unique_ptr<HttpServer>;

Result<HttpServerPtr> start_http_server(const HttpServerConfig& config,
                                        HttpServer::BodyLimit body_limit,
                                        HttpServer::Dispatch dispatch);
Result<HttpServerPtr> start_http_server(const HttpServerConfig& config,
                                        HttpServer::BodyLimit body_limit,
                                        HttpServer::Dispatch dispatch, UploadRoutes uploads);

}  // namespace strata::manager
