// Beast-based synchronous HTTP client for stratad (see http_client.h).
#include "strata/cli/http_client.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <fstream>

#include "net.h"
#include "strata/cli/exit_codes.h"
#include "strata/common/json.h"
#include "strata/enroll/tls_trust.h"

namespace strata::cli {

namespace beast = boost::beast;
namespace http = boost::beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

Result<Endpoint> parse_server_url(std::string_view url) {
  std::string u(url);
  Endpoint ep;
  std::string rest;
  if (u.rfind("https://", 0) == 0) {
    ep.tls = true;
    rest = u.substr(8);
  } else if (u.rfind("http://", 0) == 0) {
    rest = u.substr(7);
  } else {
    return invalid_argument("server",
                            "server URL must start with https:// or http://, got '" + u + "'");
  }
  auto slash = rest.find('/');
  std::string authority = rest.substr(0, slash);
  if (slash != std::string::npos) ep.base_path = rest.substr(slash);
  while (!ep.base_path.empty() && ep.base_path.back() == '/') ep.base_path.pop_back();
  if (!authority.empty() && authority[0] == '[') {  // [::1]:7480
    auto close = authority.find(']');
    if (close == std::string::npos) return invalid_argument("server", "bad IPv6 address in " + u);
    ep.host = authority.substr(1, close - 1);
    if (close + 1 < authority.size() && authority[close + 1] == ':')
      ep.port = authority.substr(close + 2);
  } else {
    auto colon = authority.rfind(':');
    ep.host = authority.substr(0, colon);
    if (colon != std::string::npos) ep.port = authority.substr(colon + 1);
  }
  if (ep.port.empty()) ep.port = ep.tls ? "443" : "80";
  if (ep.host.empty()) return invalid_argument("server", "no host in server URL '" + u + "'");
  for (char c : ep.port)
    if (c < '0' || c > '9') return invalid_argument("server", "bad port in server URL '" + u + "'");
  return ep;
}

Result<Connection> connect_to(net::io_context& ioc, const Endpoint& ep,
                              std::chrono::milliseconds timeout) {
  beast::error_code ec;
  tcp::resolver resolver(ioc);
  auto results = resolver.resolve(ep.host, ep.port, ec);
  if (ec) return unavailable("cannot resolve " + ep.host + ": " + ec.message());
  std::string where = ep.host + ":" + ep.port;
  if (!ep.tls) {
    beast::tcp_stream stream(ioc);
    stream.expires_after(timeout);
    stream.connect(results, ec);
    if (ec) return unavailable("cannot connect to stratad at " + where + ": " + ec.message());
    return Connection(std::move(stream));
  }
  enroll::TlsTrust trust;
  trust.ca_file = ep.ca_file;
  auto ctx = enroll::client_context(trust, ep.host, ep.port, timeout);
  if (!ctx) return tl::unexpected(ctx.error());
  auto stream = std::make_unique<TlsStream>(ioc, **ctx);
  if (auto st = enroll::expect_server_name(stream->native_handle(), ep.host); !st)
    return tl::unexpected(st.error());
  auto& lowest = beast::get_lowest_layer(*stream);
  lowest.expires_after(timeout);
  lowest.connect(results, ec);
  if (ec) return unavailable("cannot connect to stratad at " + where + ": " + ec.message());
  stream->handshake(net::ssl::stream_base::client, ec);
  if (ec) return tl::unexpected(enroll::handshake_error(stream->native_handle(), ec, where));
  return Connection(std::move(*ctx), std::move(stream));
}

std::string host_header(const Endpoint& ep) {
  bool v6 = ep.host.find(':') != std::string::npos;
  return (v6 ? "[" + ep.host + "]" : ep.host) + ":" + ep.port;
}

namespace {

template <class Request>
void common_headers(Request& r, const HttpClient& c) {
  r.set(http::field::host, host_header(c.endpoint()));
  r.set(http::field::user_agent, "strata-cli");
  if (!c.token().empty()) r.set(http::field::authorization, "Bearer " + c.token());
}

Error transport_error(const std::string& what, const beast::error_code& ec) {
  if (ec == beast::error::timeout)
    return Error{ErrorCode::unavailable, what + ": timed out waiting for stratad", ""};
  if (ec == http::error::end_of_stream || ec == boost::asio::error::connection_reset)
    return Error{ErrorCode::unavailable,
                 what + ": stratad closed the connection without an answer (" + ec.message() + ")",
                 ""};
  return Error{ErrorCode::unavailable, what + ": " + ec.message(), ""};
}

Result<nlohmann::json> json_or_error(const HttpResult& r) {
  if (r.status < 200 || r.status > 299)
    return tl::unexpected(error_from_response(r.status, r.body));
  if (r.body.empty()) return nlohmann::json::object();
  // Lists of 10 000s of VMs are ordinary; only the nesting is kept tight.
  auto j = parse_json(r.body, JsonLimits{.max_depth = 64, .max_values = 1u << 26});
  if (!j)
    return internal_error("stratad answered with a body that is not JSON (" + j.error().message +
                          "): " + r.body.substr(0, 200));
  return j;
}

template <class Stream>
Result<HttpResult> read_response(Stream& stream, const std::string& what) {
  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(64ull << 20);
  beast::error_code ec;
  http::read(stream, buffer, parser, ec);
  if (ec) return tl::unexpected(transport_error(what, ec));
  auto& res = parser.get();
  HttpResult out;
  out.status = res.result_int();
  out.body = std::move(res.body());
  out.content_type = std::string(res[http::field::content_type]);
  beast::get_lowest_layer(stream).socket().shutdown(tcp::socket::shutdown_both, ec);
  return out;
}

}  // namespace

HttpClient::HttpClient(Endpoint endpoint, std::string token, std::chrono::milliseconds timeout)
    : endpoint_(std::move(endpoint)), token_(std::move(token)), timeout_(timeout) {}

Result<HttpResult> HttpClient::send(const ApiRequest& req) {
  net::io_context ioc;
  auto conn = connect_to(ioc, endpoint_, timeout_);
  if (!conn) return tl::unexpected(conn.error());
  std::string what = req.method + " " + req.target;
  http::request<http::string_body> r{http::string_to_verb(req.method),
                                     endpoint_.base_path + req.target, 11};
  common_headers(r, *this);
  r.set(http::field::accept, "application/json");
  if (req.body) {
    r.set(http::field::content_type, "application/json");
    r.body() = body_text(req);
  }
  r.prepare_payload();
  conn->tcp().expires_after(timeout_);
  return conn->visit([&](auto& stream) -> Result<HttpResult> {
    beast::error_code ec;
    http::write(stream, r, ec);
    if (ec) return tl::unexpected(transport_error(what, ec));
    return read_response(stream, what);
  });
}

Result<nlohmann::json> HttpClient::call(const ApiRequest& req) {
  auto r = send(req);
  if (!r) return tl::unexpected(r.error());
  return json_or_error(*r);
}

Result<nlohmann::json> HttpClient::upload(const ApiRequest& req, const std::string& path,
                                          const ProgressFn& progress) {
  std::ifstream file(path, std::ios::binary | std::ios::ate);
  if (!file) return invalid_argument("FILE", "cannot open " + path);
  auto end = file.tellg();
  if (end < 0) return invalid_argument("FILE", "cannot read the size of " + path);
  return upload_parts(req, {BodyPart{"", path, static_cast<uint64_t>(end)}},
                      "application/octet-stream", progress);
}

Result<nlohmann::json> HttpClient::upload_parts(const ApiRequest& req,
                                                const std::vector<BodyPart>& parts,
                                                const std::string& content_type,
                                                const ProgressFn& progress) {
  uint64_t total = 0;
  for (const auto& p : parts) total += p.path.empty() ? p.bytes.size() : p.size;
  net::io_context ioc;
  auto conn = connect_to(ioc, endpoint_, timeout_);
  if (!conn) return tl::unexpected(conn.error());
  std::string what = req.method + " " + req.target;
  http::request<http::empty_body> r{http::string_to_verb(req.method),
                                    endpoint_.base_path + req.target, 11};
  common_headers(r, *this);
  r.set(http::field::accept, "application/json");
  r.set(http::field::content_type, content_type);
  r.content_length(total);
  return conn->visit([&](auto& stream) -> Result<nlohmann::json> {
    auto& tcp_layer = beast::get_lowest_layer(stream);
    http::request_serializer<http::empty_body> sr{r};
    beast::error_code ec;
    tcp_layer.expires_after(timeout_);
    http::write_header(stream, sr, ec);
    if (ec) return tl::unexpected(transport_error(what, ec));
    std::vector<char> chunk(1 << 20);
    uint64_t sent = 0;
    if (progress) progress(0, total);
    // Writes n bytes; on a failed write the server may have answered early (e.g. 413) and
    // closed: its answer is preferred.
    auto send = [&](const char* data, size_t n) -> Result<bool> {
      tcp_layer.expires_after(timeout_);
      net::write(stream, net::buffer(data, n), ec);
      if (ec) {
        auto answer = read_response(stream, what);
        if (answer && answer->status >= 400) return tl::unexpected(json_or_error(*answer).error());
        return tl::unexpected(transport_error(what, ec));
      }
      sent += n;
      if (progress) progress(sent, total);
      return true;
    };
    for (const auto& part : parts) {
      if (part.path.empty()) {
        if (auto w = send(part.bytes.data(), part.bytes.size()); !w)
          return tl::unexpected(w.error());
        continue;
      }
      std::ifstream file(part.path, std::ios::binary);
      if (!file) return invalid_argument("FILE", "cannot open " + part.path);
      uint64_t left = part.size;
      while (left > 0) {
        auto want = std::min<uint64_t>(chunk.size(), left);
        file.read(chunk.data(), static_cast<std::streamsize>(want));
        auto n = static_cast<size_t>(file.gcount());
        if (n == 0) return internal_error(part.path + " ended early (changed while uploading?)");
        if (auto w = send(chunk.data(), n); !w) return tl::unexpected(w.error());
        left -= n;
      }
    }
    tcp_layer.expires_after(timeout_ * 4);  // the server may verify/convert before answering
    auto resp = read_response(stream, what);
    if (!resp) return tl::unexpected(resp.error());
    return json_or_error(*resp);
  });
}

Status HttpClient::stream_events(const ApiRequest& req,
                                 const std::function<bool(const SseEvent&)>& on_event,
                                 std::chrono::milliseconds idle_timeout) {
  net::io_context ioc;
  auto conn = connect_to(ioc, endpoint_, timeout_);
  if (!conn) return tl::unexpected(conn.error());
  std::string what = "GET " + req.target;
  http::request<http::empty_body> r{http::verb::get, endpoint_.base_path + req.target, 11};
  common_headers(r, *this);
  r.set(http::field::accept, "text/event-stream");
  return conn->visit([&](auto& stream) -> Status {
    auto& tcp_layer = beast::get_lowest_layer(stream);
    beast::error_code ec;
    tcp_layer.expires_after(timeout_);
    http::write(stream, r, ec);
    if (ec) return tl::unexpected(transport_error(what, ec));

    beast::flat_buffer buffer;
    http::response_parser<http::buffer_body> parser;
    parser.body_limit(boost::none);
    http::read_header(stream, buffer, parser, ec);
    if (ec) return tl::unexpected(transport_error(what, ec));
    unsigned status = parser.get().result_int();
    char buf[8192];
    if (status < 200 || status > 299) {
      std::string body;
      while (!parser.is_done() && body.size() < 65536) {
        parser.get().body().data = buf;
        parser.get().body().size = sizeof buf;
        http::read(stream, buffer, parser, ec);
        if (ec == http::error::need_buffer) ec = {};
        if (ec) break;
        body.append(buf, sizeof buf - parser.get().body().size);
      }
      return tl::unexpected(error_from_response(status, body));
    }
    SseParser sse;
    while (!parser.is_done()) {
      parser.get().body().data = buf;
      parser.get().body().size = sizeof buf;
      tcp_layer.expires_after(idle_timeout);
      http::read_some(stream, buffer, parser, ec);  // returns as soon as some bytes arrived
      if (ec == http::error::need_buffer) ec = {};
      if (ec == http::error::end_of_stream || ec == net::error::eof ||
          ec == net::ssl::error::stream_truncated)
        break;
      if (ec) return tl::unexpected(transport_error(what, ec));
      size_t n = sizeof buf - parser.get().body().size;
      for (const auto& e : sse.feed(std::string_view(buf, n)))
        if (!on_event(e)) return {};
    }
    return {};
  });
}

}  // namespace strata::cli
