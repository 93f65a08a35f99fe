// A minimal Beast HTTP/WebSocket server for testing the CLI's *client* code (it does not
// stand in for stratad: the e2e tests run the real one). Serves connections one at a time
// on a loopback port from a background thread; the handler decides each answer.
#pragma once

#include <atomic>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace strata::cli::testing {

namespace beast = boost::beast;
namespace http = boost::beast::http;
namespace websocket = boost::beast::websocket;
using tcp = boost::asio::ip::tcp;

struct SeenRequest {
  std::string method, target, body, authorization, content_type;
};

struct Reply {
  Reply() = default;
  Reply(unsigned s, std::string b) : status(s), body(std::move(b)) {}
  unsigned status = 200;
  std::string body = "{}";
  std::string content_type = "application/json";
  // When set: write the header, then these chunks (chunked encoding), e.g. SSE frames.
  std::vector<std::string> stream_chunks;
  // With stream_chunks: keep the response open after them until the client hangs up.
  bool hold_open = false;
  // When set: accept a WebSocket upgrade and hand the stream over.
  std::function<void(websocket::stream<tcp::socket>&)> websocket;
};

class TestServer {
 public:
  using Handler = std::function<Reply(const SeenRequest&)>;

  explicit TestServer(Handler h) : handler_(std::move(h)), acceptor_(ioc_) {
    tcp::endpoint ep(boost::asio::ip::make_address("127.0.0.1"), 0);
    acceptor_.open(ep.protocol());
    acceptor_.set_option(boost::asio::socket_base::reuse_address(true));
    acceptor_.bind(ep);
    acceptor_.listen();
    port_ = acceptor_.local_endpoint().port();
    thread_ = std::thread([this] { serve(); });
  }
  ~TestServer() {
    stop_ = true;
    beast::error_code ec;
    // Wake accept() with a connection of our own.
    tcp::socket s(ioc_);
    s.connect(tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), port_), ec);
    thread_.join();
  }

  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  std::vector<SeenRequest> seen() {
    std::lock_guard l(mu_);
    return seen_;
  }

 private:
  void serve() {
    while (!stop_) {
      tcp::socket sock(ioc_);
      beast::error_code ec;
      acceptor_.accept(sock, ec);
      if (ec || stop_) return;
      handle(sock);
    }
  }

  void handle(tcp::socket& sock) {
    beast::flat_buffer buf;
    http::request_parser<http::string_body> parser;
    parser.body_limit(1ull << 30);
    beast::error_code ec;
    http::read(sock, buf, parser, ec);
    if (ec) return;
    auto req = parser.release();
    SeenRequest seen{std::string(req.method_string()), std::string(req.target()), req.body(),
                     std::string(req[http::field::authorization]),
                     std::string(req[http::field::content_type])};
    {
      std::lock_guard l(mu_);
      seen_.push_back(seen);
    }
    Reply r = handler_(seen);
    if (r.websocket && websocket::is_upgrade(req)) {
      websocket::stream<tcp::socket> ws(std::move(sock));
      ws.accept(req, ec);
      if (!ec) r.websocket(ws);
      return;
    }
    if (!r.stream_chunks.empty()) {
      http::response<http::empty_body> res{static_cast<http::status>(r.status), 11};
      res.set(http::field::content_type, r.content_type);
      res.chunked(true);
      http::response_serializer<http::empty_body> sr{res};
      http::write_header(sock, sr, ec);
      for (const auto& c : r.stream_chunks)
        boost::asio::write(sock, http::make_chunk(boost::asio::buffer(c)), ec);
      if (r.hold_open) {
        char b[256];
        while (!ec) sock.read_some(boost::asio::buffer(b), ec);
        return;
      }
      boost::asio::write(sock, http::make_chunk_last(), ec);
      sock.shutdown(tcp::socket::shutdown_both, ec);
      return;
    }
    http::response<http::string_body> res{static_cast<http::status>(r.status), 11};
    res.set(http::field::content_type, r.content_type);
    res.body() = r.body;
    res.prepare_payload();
    http::write(sock, res, ec);
    sock.shutdown(tcp::socket::shutdown_both, ec);
  }

  Handler handler_;
  boost::asio::io_context ioc_;
  tcp::acceptor acceptor_;
  unsigned short port_ = 0;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::vector<SeenRequest> seen_;
};

}  // namespace strata::cli::testing
