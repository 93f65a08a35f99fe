// Internal to the HTTP server: long-lived responses (server-sent events and WebSocket
// upgrades). The server hands the socket of a connection whose handler returned a stream
// to a StreamRunner, which runs it until the client or the handler ends it.
#pragma once

#include <atomic>
#include <list>
#include <memory>
#include <mutex>

#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/http.hpp>

#include "strata/manager/api/http.h"

namespace strata::manager::detail {

struct StreamSlot;

class StreamRunner {
 public:
  using Request = boost::beast::http::request<boost::beast::http::string_body>;

  StreamRunner();
  ~StreamRunner();
  StreamRunner(const StreamRunner&) = delete;
  StreamRunner& operator=(const StreamRunner&) = delete;

  // Runs `resp` (websocket or event_stream set) on `socket` until it ends.
  void start(boost::asio::ip::tcp::socket socket, Request req, HttpResponse resp);
  // Refuses new streams and wakes the running ones (shuts their sockets down).
  void shutdown();
  // Waits for every stream to end (after shutdown()).
  void join();

 private:
  void run(StreamSlot& slot, boost::asio::ip::tcp::socket sock, Request req, HttpResponse resp);

  std::atomic<bool> stopped_{false};
  std::mutex mu_;
  std::list<std::shared_ptr<StreamSlot>> streams_;
};

}  // namespace strata::manager::detail
