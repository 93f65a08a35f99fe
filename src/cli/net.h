// Connection helpers shared by the HTTP and WebSocket clients (internal to strata_cli).
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <chrono>

#include "strata/cli/http_client.h"

namespace strata::cli {

// Resolves and connects within `timeout`; failures are Error{unavailable}.
Result<boost::beast::tcp_stream> connect_to(boost::asio::io_context& ioc, const Endpoint& ep,
                                            std::chrono::milliseconds timeout);
// "host:port" ("[::1]:7480" for IPv6) for the Host header.
std::string host_header(const Endpoint& ep);

}  // namespace strata::cli
