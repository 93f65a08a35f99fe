// Connection helpers shared by the HTTP and WebSocket clients (internal to strata_cli).
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <chrono>
#include <memory>
#include <optional>

#include "strata/cli/http_client.h"

namespace strata::cli {

using TlsStream = boost::beast::ssl_stream<boost::beast::tcp_stream>;

// A connected stream to stratad: plain TCP, or TLS after a verified handshake.
class Connection {
 public:
  explicit Connection(boost::beast::tcp_stream plain) : plain_(std::move(plain)) {}
  Connection(std::shared_ptr<boost::asio::ssl::context> ctx, std::unique_ptr<TlsStream> tls)
      : ctx_(std::move(ctx)), tls_(std::move(tls)) {}

  // The TCP layer (timeouts, shutdown).
  boost::beast::tcp_stream& tcp() {
    return tls_ ? boost::beast::get_lowest_layer(*tls_) : *plain_;
  }
  // f(stream) with the concrete stream type; both branches must return the same type.
  template <class F>
  auto visit(F&& f) {
    return tls_ ? f(*tls_) : f(*plain_);
  }

 private:
  std::optional<boost::beast::tcp_stream> plain_;
  std::shared_ptr<boost::asio::ssl::context> ctx_;  // outlives tls_ (declared before it)
  std::unique_ptr<TlsStream> tls_;
};

// Resolves, connects and (https) handshakes within `timeout`; failures are
// Error{unavailable}, an untrusted server says why and how to trust it.
Result<Connection> connect_to(boost::asio::io_context& ioc, const Endpoint& ep,
                              std::chrono::milliseconds timeout);
// "host:port" ("[::1]:7480" for IPv6) for the Host header.
std::string host_header(const Endpoint& ep);

}  // namespace strata::cli
