// Synchronous Beast HTTP/1.1 request over TCP or verified TLS (see http_client.h).
#include "strata/enroll/http_client.h"

#include <fmt/format.h>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <chrono>

namespace strata::enroll {

namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
namespace asio = boost::asio;

namespace {

constexpr auto kTimeout = std::chrono::seconds(30);

template <class Stream>
HttpResult exchange(Stream& stream, bhttp::request<bhttp::string_body>& req) {
  bhttp::write(stream, req);
  beast::flat_buffer buf;
  bhttp::response_parser<bhttp::string_body> parser;
  parser.body_limit(64 << 20);
  bhttp::read(stream, buf, parser);
  beast::error_code ec;
  beast::get_lowest_layer(stream).socket().shutdown(asio::ip::tcp::socket::shutdown_both, ec);
  auto& res = parser.get();
  return HttpResult{res.result_int(), res.body(), std::string(res[bhttp::field::content_type])};
}

}  // namespace

Result<HttpResult> http_request(const std::string& base_url, const std::string& method,
                                const std::string& target, const std::string& body,
                                const std::string& bearer, const TlsTrust& trust) {
  const bool tls = base_url.rfind("https://", 0) == 0;
  if (!tls && base_url.rfind("http://", 0) != 0)
    return invalid_argument("manager", "manager URL must start with https:// or http://");
  std::string hostport = base_url.substr(tls ? 8 : 7);
  if (auto slash = hostport.find('/'); slash != std::string::npos) hostport.resize(slash);
  std::string host, port;
  if (!hostport.empty() && hostport[0] == '[') {  // [::1]:7480
    auto close = hostport.find(']');
    if (close == std::string::npos) return invalid_argument("manager", "bad IPv6 address");
    host = hostport.substr(1, close - 1);
    if (close + 2 < hostport.size() && hostport[close + 1] == ':') port = hostport.substr(close + 2);
  } else {
    auto colon = hostport.rfind(':');
    host = colon == std::string::npos ? hostport : hostport.substr(0, colon);
    if (colon != std::string::npos) port = hostport.substr(colon + 1);
  }
  if (port.empty()) port = tls ? "443" : "80";
  auto verb = bhttp::string_to_verb(method);
  if (verb == bhttp::verb::unknown) return invalid_argument("method", "unknown HTTP method");
  bhttp::request<bhttp::string_body> req{verb, target, 11};
  req.set(bhttp::field::host, hostport);
  req.set(bhttp::field::content_type, "application/json");
  req.set(bhttp::field::user_agent, "strata");
  if (!bearer.empty()) req.set(bhttp::field::authorization, "Bearer " + bearer);
  req.body() = body;
  req.prepare_payload();
  auto failed = [&](const std::string& why) {
    return unavailable(fmt::format("HTTP {} {}{}: {}", method, base_url, target, why));
  };
  try {  // Beast reports failures by exception; none may leave this function.
    asio::io_context ioc;
    asio::ip::tcp::resolver resolver(ioc);
    auto addrs = resolver.resolve(host, port);
    if (!tls) {
      beast::tcp_stream stream(ioc);
      stream.expires_after(kTimeout);
      stream.connect(addrs);
      return exchange(stream, req);
    }
    auto ctx = client_context(trust, host, port, kTimeout);
    if (!ctx) return tl::unexpected(ctx.error());
    beast::ssl_stream<beast::tcp_stream> stream(ioc, **ctx);
    if (auto st = expect_server_name(stream.native_handle(), host); !st)
      return tl::unexpected(st.error());
    beast::get_lowest_layer(stream).expires_after(kTimeout);
    beast::get_lowest_layer(stream).connect(addrs);
    beast::error_code ec;
    stream.handshake(asio::ssl::stream_base::client, ec);
    if (ec) {
      auto e = handshake_error(stream.native_handle(), ec, hostport);
      return failed(e.message);
    }
    return exchange(stream, req);
  } catch (const std::exception& e) {
    return failed(e.what());
  }
}

}  // namespace strata::enroll
