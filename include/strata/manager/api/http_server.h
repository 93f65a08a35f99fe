// The HTTP/1.1 transport on Boost.Beast: an acceptor and a small pool of threads running
// one io_context. Each connection reads the header first, asks `body_limit` how large the
// body of that route may be (413 before reading more), reads the body, and calls
// `dispatch` on a pool thread. Long-lived responses (SSE, WebSocket upgrades) continue
// asynchronously on the same threads (http_streams.cc); only a WebSocket handler runs on a
// thread of its own.
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

struct HttpServerConfig {
  std::string host = "127.0.0.1";
  uint16_t port = 7480;  // 0: pick a free port (tests)
  int threads = 2;
  StreamConfig streams;
};

// Routes whose body goes to a temp file in `dir` instead of memory (image uploads). For
// them `admit` runs on the header alone first (authentication, role): a response it
// returns is sent instead of reading the body. Default: no such routes.
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

// Splits "/a%20b?x=1&y" into a decoded path and query map. false on bad escapes.
bool parse_target(std::string_view target, std::string* path,
                  std::map<std::string, std::string>* query);

}  // namespace strata::manager
