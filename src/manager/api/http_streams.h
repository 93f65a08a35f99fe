// Internal to the HTTP server: long-lived responses (server-sent events and WebSocket
// upgrades). The server hands the stream (plain TCP or TLS) of a connection whose handler
// returned a stream to the StreamRunner, which runs it asynchronously on the socket's
// strand: no thread per stream, SSE or WebSocket.
#pragma once

#include <atomic>
#include <condition_variable>
#include <list>
#include <memory>
#include <mutex>

#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>

#include "strata/manager/api/http.h"
#include "strata/manager/api/http_server.h"

namespace strata::manager::detail {

// A connection of an HTTPS server.
using TlsStream = boost::beast::ssl_stream<boost::beast::tcp_stream>;

// A running stream, as the runner sees it.
class StreamConn {
 public:
  virtual ~StreamConn() = default;
  // Starts the stream (on the socket's strand).
  virtual void run() = 0;
  // The server is stopping: end the stream now (any thread).
  virtual void shutdown() = 0;
};

class StreamRunner {
 public:
  using Request = boost::beast::http::request<boost::beast::http::string_body>;

  explicit StreamRunner(StreamConfig cfg);
  ~StreamRunner();
  StreamRunner(const StreamRunner&) = delete;
  StreamRunner& operator=(const StreamRunner&) = delete;

  // Runs `resp` (websocket or event_stream set) on `stream` until it ends. Call on the
  // stream's strand, with no operation pending on it.
  void start(boost::beast::tcp_stream stream, Request req, HttpResponse resp);
  void start(TlsStream stream, Request req, HttpResponse resp);
  // Refuses new streams and ends the running ones.
  void shutdown();
  // Waits (bounded) for the WebSocket handlers to let go of their sessions (after
  // shutdown()): what they hold (stream tickets, calls to agents) refers to parts that go
  // away after the server.
  void join();
  bool stopping() const { return stopped_; }

  // WebSocket sessions handed to handlers and not yet let go of.
  struct Handles {
    std::mutex mu;
    std::condition_variable cv;
    size_t held = 0;
  };

 private:
  void reap_locked();
  template <class Stream>
  void start_stream(Stream stream, Request req, HttpResponse resp);

  StreamConfig cfg_;
  std::atomic<bool> stopped_{false};
  std::mutex mu_;
  std::list<std::weak_ptr<StreamConn>> conns_;
  std::shared_ptr<Handles> handles_ = std::make_shared<Handles>();
};

}  // namespace strata::manager::detail
