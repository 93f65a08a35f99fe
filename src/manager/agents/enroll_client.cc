// Enrollment client over a small synchronous Beast HTTP client.
#include "strata/manager/agents/enroll_client.h"

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <fmt/format.h>

namespace strata::manager {

namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
namespace asio = boost::asio;

Result<HttpResult> http_request(const std::string& base_url, const std::string& method,
                                const std::string& target, const std::string& body,
                                const std::string& bearer) {
  constexpr std::string_view kScheme = "http://";
  if (base_url.rfind(kScheme, 0) != 0)
    return invalid_argument("manager_url", "manager URL must start with http://");
  std::string hostport = base_url.substr(kScheme.size());
  if (auto slash = hostport.find('/'); slash != std::string::npos) hostport.resize(slash);
  auto colon = hostport.rfind(':');
  std::string host = colon == std::string::npos ? hostport : hostport.substr(0, colon);
  std::string port = colon == std::string::npos ? "80" : hostport.substr(colon + 1);
  try {  // Beast reports some failures by exception; none may cross this boundary.
    asio::io_context ioc;
    asio::ip::tcp::resolver resolver(ioc);
    beast::tcp_stream stream(ioc);
    stream.expires_after(std::chrono::seconds(30));
    stream.connect(resolver.resolve(host, port));
    bhttp::request<bhttp::string_body> req{bhttp::string_to_verb(method), target, 11};
    req.set(bhttp::field::host, host);
    req.set(bhttp::field::content_type, "application/json");
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
    return HttpResult{res.result_int(), res.body(),
                      std::string(res[bhttp::field::content_type])};
  } catch (const std::exception& e) {
    return unavailable(fmt::format("HTTP {} {}{}: {}", method, base_url, target, e.what()));
  }
}

Result<nlohmann::json> enroll_host(const EnrollRequest& r) {
  nlohmann::json body = {{"join_token", r.join_token},
                         {"name", r.name},
                         {"address", r.address},
                         {"inventory", r.inventory}};
  auto res = http_request(r.manager_url, "POST", "/api/v1/hosts/enroll", body.dump());
  if (!res) return tl::unexpected(res.error());
  auto j = nlohmann::json::parse(res->body, nullptr, false);
  if (res->status == 201 && !j.is_discarded() && j.contains("host")) return j["host"];
  Error e{ErrorCode::internal, fmt::format("enroll failed: HTTP {}", res->status), ""};
  if (!j.is_discarded() && j.contains("error") && j["error"].is_object()) {
    const auto& err = j["error"];
    e.message = "enroll failed: " + err.value("message", e.message);
    e.field = err.value("field", "");
    static const std::pair<const char*, ErrorCode> kCodes[] = {
        {"invalid_argument", ErrorCode::invalid_argument},
        {"unauthenticated", ErrorCode::unauthenticated},
        {"already_exists", ErrorCode::already_exists},
        {"conflict", ErrorCode::conflict},
        {"unavailable", ErrorCode::unavailable}};
    for (const auto& [name, code] : kCodes)
      if (err.value("code", "") == name) e.code = code;
  }
  return tl::unexpected(e);
}

}  // namespace strata::manager
