// Enrollment over a small synchronous Beast HTTP/1.1 POST (the manager speaks plain HTTP
// on its management address for now) and the enrollment record in the state folder.
#include "enroll.h"

#include <fmt/format.h>
#include <unistd.h>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "strata/common/log.h"

namespace strata::agent::cli {

namespace {

namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
namespace asio = boost::asio;
namespace fs = std::filesystem;

auto log() {
  static auto l = logger("enroll");
  return l;
}

struct Reply {
  unsigned status = 0;
  std::string body;
};

Result<Reply> http_post(const std::string& base_url, const std::string& target,
                        const std::string& body) {
  constexpr std::string_view kScheme = "http://";
  if (base_url.rfind(kScheme, 0) != 0)
    return invalid_argument("manager", "manager URL must start with http://");
  std::string hostport = base_url.substr(kScheme.size());
  if (auto slash = hostport.find('/'); slash != std::string::npos) hostport.resize(slash);
  auto colon = hostport.rfind(':');
  std::string host = colon == std::string::npos ? hostport : hostport.substr(0, colon);
  std::string port = colon == std::string::npos ? "80" : hostport.substr(colon + 1);
  try {  // Beast reports failures by exception; none may leave this function.
    asio::io_context ioc;
    asio::ip::tcp::resolver resolver(ioc);
    beast::tcp_stream stream(ioc);
    stream.expires_after(std::chrono::seconds(30));
    stream.connect(resolver.resolve(host, port));
    bhttp::request<bhttp::string_body> req{bhttp::verb::post, target, 11};
    req.set(bhttp::field::host, hostport);
    req.set(bhttp::field::content_type, "application/json");
    req.set(bhttp::field::user_agent, "strata-agent");
    req.body() = body;
    req.prepare_payload();
    bhttp::write(stream, req);
    beast::flat_buffer buf;
    bhttp::response_parser<bhttp::string_body> parser;
    parser.body_limit(16 << 20);
    bhttp::read(stream, buf, parser);
    beast::error_code ec;
    stream.socket().shutdown(asio::ip::tcp::socket::shutdown_both, ec);
    return Reply{parser.get().result_int(), parser.get().body()};
  } catch (const std::exception& e) {
    return unavailable(fmt::format("POST {}{}: {}", base_url, target, e.what()));
  }
}

ErrorCode code_from_envelope(const std::string& code, unsigned status) {
  static const std::pair<const char*, ErrorCode> kCodes[] = {
      {"invalid_argument", ErrorCode::invalid_argument},
      {"unauthenticated", ErrorCode::unauthenticated},
      {"already_exists", ErrorCode::already_exists},
      {"conflict", ErrorCode::conflict},
      {"unavailable", ErrorCode::unavailable}};
  for (const auto& [name, c] : kCodes)
    if (code == name) return c;
  return status >= 500 ? ErrorCode::unavailable : ErrorCode::internal;
}

std::string record_path(const std::string& state_dir) { return state_dir + "/enrollment.json"; }

}  // namespace

std::optional<nlohmann::json> load_enrollment(const std::string& state_dir,
                                              const std::string& manager_url) {
  std::ifstream in(record_path(state_dir));
  if (!in) return std::nullopt;
  auto j = nlohmann::json::parse(in, nullptr, false);
  if (j.is_discarded() || !j.is_object() || j.value("manager", "") != manager_url)
    return std::nullopt;
  return j;
}

Result<nlohmann::json> enroll_once(const EnrollOptions& o) {
  nlohmann::json body = {{"join_token", o.join_token},
                         {"name", o.name},
                         {"address", o.address},
                         {"inventory", o.inventory}};
  auto res = http_post(o.manager_url, "/api/v1/hosts/enroll", body.dump());
  if (!res) return tl::unexpected(res.error());
  auto j = nlohmann::json::parse(res->body, nullptr, false);
  if (res->status != 201 || j.is_discarded() || !j.contains("host")) {
    Error e{res->status >= 500 ? ErrorCode::unavailable : ErrorCode::internal,
            fmt::format("enroll: HTTP {}", res->status), ""};
    if (!j.is_discarded() && j.contains("error") && j["error"].is_object()) {
      const auto& err = j["error"];
      e.code = code_from_envelope(err.value("code", ""), res->status);
      e.message = "enroll: " + err.value("message", e.message);
      e.field = err.value("field", "");
    }
    return tl::unexpected(e);
  }
  nlohmann::json record = {
      {"manager", o.manager_url}, {"name", o.name}, {"address", o.address}, {"host", j["host"]}};
  // Write-then-rename so a crash leaves either no record or a whole one.
  std::string tmp = record_path(o.state_dir) + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << record.dump(2) << "\n";
    if (!out) return internal_error("cannot write " + tmp);
  }
  std::error_code ec;
  fs::rename(tmp, record_path(o.state_dir), ec);
  if (ec) return internal_error("cannot write " + record_path(o.state_dir) + ": " + ec.message());
  return j["host"];
}

Status enroll_until_done(const EnrollOptions& o, const std::atomic<bool>& stop) {
  if (auto rec = load_enrollment(o.state_dir, o.manager_url)) {
    log()->info("already enrolled with {} as {}", o.manager_url, rec->value("name", o.name));
    return {};
  }
  if (o.join_token.empty())
    return invalid_argument(
        "join-token", "not enrolled with " + o.manager_url + " yet and no --join-token given");
  auto delay = std::chrono::milliseconds(500);
  while (!stop.load()) {
    auto host = enroll_once(o);
    if (host) {
      log()->info("enrolled with {} as {} (host id {}) advertising {}", o.manager_url, o.name,
                  host->value("id", ""), o.address);
      return {};
    }
    if (host.error().code != ErrorCode::unavailable) return tl::unexpected(host.error());
    log()->warn("{}; retrying in {} ms", host.error().message, delay.count());
    auto until = std::chrono::steady_clock::now() + delay;
    while (!stop.load() && std::chrono::steady_clock::now() < until)
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    delay = std::min(delay * 2, std::chrono::milliseconds(10000));
  }
  return make_error(ErrorCode::unavailable, "stopped before enrollment finished");
}

std::string default_host_name() {
  char buf[256] = {};
  if (gethostname(buf, sizeof(buf) - 1) != 0) return "local";
  std::string out;
  for (char c : std::string(buf)) {
    if (c == '.') break;
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    out += (std::isalnum(static_cast<unsigned char>(c)) || c == '-') ? c : '-';
  }
  while (!out.empty() && out.front() == '-') out.erase(out.begin());
  while (!out.empty() && out.back() == '-') out.pop_back();
  if (out.size() > 63) out.resize(63);
  return out.empty() ? "local" : out;
}

}  // namespace strata::agent::cli
