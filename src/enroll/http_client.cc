// Synchronous Beast HTTP/1.1 request (see http_client.h).
#include "strata/enroll/http_client.h"

#include <fmt/format.h>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>

namespace strata::enroll {

namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
namespace asio = boost::asio;

Result<HttpResult> http_request(const std::string& base_url, const std::string& method,
                                const std::string& target, const std::string& body,
                                const std::string& bearer) {
  constexpr std::string_view kScheme = "http://";
  if (base_url.rfind(kScheme, 0) != 0)
    return invalid_argument("manager", "manager URL must start with http://");
  std::string hostport = base_url.substr(kScheme.size());
  if (auto slash = hostport.find('/'); slash != std::string::npos) hostport.resize(slash);
  auto colon = hostport.rfind(':');
  std::string host = colon == std::string::npos ? hostport : hostport.substr(0, colon);
  std::string port = colon == std::string::npos ? "80" : hostport.substr(colon + 1);
  auto verb = bhttp::string_to_verb(method);
  if (verb == bhttp::verb::unknown) return invalid_argument("method", "unknown HTTP method");
  try {  // Beast reports failures by exception; none may leave this function.
    asio::io_context ioc;
    asio::ip::tcp::resolver resolver(ioc);
    beast::tcp_stream stream(ioc);
    stream.expires_after(std::chrono::seconds(30));
    stream.connect(resolver.resolve(host, port));
    bhttp::request<bhttp::string_body> req{verb, target, 11};
    req.set(bhttp::field::host, hostport);
    req.set(bhttp::field::content_type, "application/json");
    req.set(bhttp::field::user_agent, "strata");
    if (!bearer.empty()) req.set(bhttp::field::authorization, "Bearer " + bearer);
    req.body() = body;
    req.prepare_payload();
    bhttp::write(stream, req);
    beast::flat_buffer buf;
    bhttp::response_parser<bhttp::string_body> parser;
    parser.body_limit(64 << 20);
    bhttp::read(stream, buf, parser);
    beast::error_code ec;
    stream.socket().shutdown(asio::ip::tcp::socket::shutdown_both, ec);
    auto& res = parser.get();
    return HttpResult{res.result_int(), res.body(), std::string(res[bhttp::field::content_type])};
  } catch (const std::exception& e) {
    return unavailable(fmt::format("HTTP {} {}{}: {}", method, base_url, target, e.what()));
  }
}

}  // namespace strata::enroll
