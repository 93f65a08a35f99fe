// Long-lived HTTP responses: server-sent events and WebSocket connections. Each stream
// runs on its own thread, owning the socket; shutdown() shuts the sockets down to wake them.
#include "http_streams.h"

#include <thread>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>
#include <fmt/format.h>

namespace strata::manager::detail {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace websocket = boost::beast::websocket;
using tcp = asio::ip::tcp;

// Long-lived streams: the socket and a thread; shutdown() shuts the socket down to wake it.
struct StreamSlot {
  std::mutex mu;
  tcp::socket* socket = nullptr;  // valid while the thread runs (owned by the thread)
  std::thread thread;
  std::atomic<bool> done{false};
};

namespace {

class SseWriter final : public EventStream {
 public:
  explicit SseWriter(tcp::socket& s) : socket_(s) {}
  bool write(std::string_view data) override {
    beast::error_code ec;
    asio::write(socket_, asio::buffer(data.data(), data.size()), ec);
    return !ec;
  }

 private:
  tcp::socket& socket_;
};

class BeastWebSocket final : public WebSocket {
 public:
  explicit BeastWebSocket(websocket::stream<tcp::socket>& ws) : ws_(ws) {}
  bool send(std::string_view data, bool binary) override {
    std::lock_guard lock(write_mu_);
    if (closed_) return false;
    beast::error_code ec;
    ws_.binary(binary);
    ws_.write(asio::buffer(data.data(), data.size()), ec);
    if (ec) closed_ = true;
    return !ec;
  }
  std::optional<std::string> receive() override {
    beast::flat_buffer buf;
    beast::error_code ec;
    ws_.read(buf, ec);
    if (ec) return std::nullopt;
    return beast::buffers_to_string(buf.data());
  }
  void close() override {
    std::lock_guard lock(write_mu_);
    if (closed_) return;
    closed_ = true;
    beast::error_code ec;
    ws_.close(websocket::close_code::normal, ec);
  }

 private:
  websocket::stream<tcp::socket>& ws_;
  std::mutex write_mu_;
  bool closed_ = false;
};

}  // namespace

StreamRunner::StreamRunner() = default;

StreamRunner::~StreamRunner() {
  shutdown();
  join();
}

void StreamRunner::start(tcp::socket socket, Request req, HttpResponse resp) {
  auto slot = std::make_shared<StreamSlot>();
  std::lock_guard lock(mu_);
  // Reap finished streams so the list stays bounded.
  for (auto it = streams_.begin(); it != streams_.end();) {
    if ((*it)->done) {
      if ((*it)->thread.joinable()) (*it)->thread.join();
      it = streams_.erase(it);
    } else {
      ++it;
    }
  }
  if (stopped_) return;
  slot->thread = std::thread([this, slot, sock = std::move(socket), req = std::move(req),
                              resp = std::move(resp)]() mutable {
    run(*slot, std::move(sock), std::move(req), std::move(resp));
    slot->done = true;
  });
  streams_.push_back(slot);
}

void StreamRunner::shutdown() {
  stopped_ = true;
  std::lock_guard lock(mu_);
  for (auto& s : streams_) {
    std::lock_guard slock(s->mu);
    beast::error_code ec;
    if (s->socket) s->socket->shutdown(tcp::socket::shutdown_both, ec);
  }
}

void StreamRunner::join() {
  std::list<std::shared_ptr<StreamSlot>> streams;
  {
    std::lock_guard lock(mu_);
    streams.swap(streams_);
  }
  for (auto& s : streams)
    if (s->thread.joinable()) s->thread.join();
}

void StreamRunner::run(StreamSlot& slot, tcp::socket sock, Request req, HttpResponse resp) {
  beast::error_code ec;
  sock.non_blocking(false, ec);
  if (resp.websocket) {
    websocket::stream<tcp::socket> ws(std::move(sock));
    {
      std::lock_guard lock(slot.mu);
      slot.socket = &ws.next_layer();
    }
    if (!stopped_) {
      ws.accept(req, ec);
      if (!ec) {
        BeastWebSocket adapter(ws);
        resp.websocket(adapter);
        adapter.close();
      }
    }
    std::lock_guard lock(slot.mu);
    slot.socket = nullptr;
    return;
  }
  {
    std::lock_guard lock(slot.mu);
    slot.socket = &sock;
  }
  std::string head = fmt::format(
      "HTTP/1.1 {} OK\r\nContent-Type: {}\r\nCache-Control: no-cache\r\nConnection: close\r\n"
      "\r\n",
      resp.status, resp.content_type);
  SseWriter writer(sock);
  if (!stopped_ && writer.write(head)) resp.event_stream(writer);
  sock.shutdown(tcp::socket::shutdown_both, ec);
  std::lock_guard lock(slot.mu);
  slot.socket = nullptr;
}

}  // namespace strata::manager::detail
