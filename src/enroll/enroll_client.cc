// The enrollment request and its reply (see enroll_client.h).
#include "strata/enroll/enroll_client.h"

#include <fmt/format.h>
#include <unistd.h>

#include <cctype>

#include "strata/common/json.h"
#include "strata/enroll/http_client.h"

namespace strata::enroll {

namespace {

ErrorCode code_from_envelope(const std::string& code, unsigned status) {
  static const std::pair<const char*, ErrorCode> kCodes[] = {
      {"invalid_argument", ErrorCode::invalid_argument},
      {"unauthenticated", ErrorCode::unauthenticated},
      {"already_exists", ErrorCode::already_exists},
      {"conflict", ErrorCode::conflict},
      {"failed_precondition", ErrorCode::failed_precondition},
      {"unavailable", ErrorCode::unavailable}};
  for (const auto& [name, c] : kCodes)
    if (code == name) return c;
  return status >= 500 ? ErrorCode::unavailable : ErrorCode::internal;
}

}  // namespace

Result<EnrollReply> enroll_host(const EnrollRequest& r) {
  nlohmann::json body = {{"join_token", r.join_token},
                         {"name", r.name},
                         {"address", r.address},
                         {"inventory", r.inventory}};
  if (!r.csr_pem.empty()) body["csr"] = r.csr_pem;
  if (!r.migration_csr_pem.empty()) body["migration_csr"] = r.migration_csr_pem;
  auto res = http_request(r.manager_url, "POST", "/api/v1/hosts/enroll", body.dump(), {}, r.trust);
  if (!res) return tl::unexpected(res.error());
  auto parsed = parse_json(res->body, JsonLimits{.max_depth = 32, .max_values = 1u << 20});
  nlohmann::json j = parsed ? std::move(*parsed) : nlohmann::json();
  if (res->status == 201 && j.is_object() && j.contains("host")) {
    EnrollReply reply;
    reply.host = j["host"];
    if (j.contains("tls") && j["tls"].is_object()) {
      reply.cert_pem = j["tls"].value("certificate", "");
      reply.ca_cert_pem = j["tls"].value("ca_certificate", "");
      reply.migration_cert_pem = j["tls"].value("migration_certificate", "");
    }
    if (!r.csr_pem.empty() && (reply.cert_pem.empty() || reply.ca_cert_pem.empty()))
      return internal_error("enroll: the manager accepted the CSR but returned no certificate");
    return reply;
  }
  Error e{res->status >= 500 ? ErrorCode::unavailable : ErrorCode::internal,
          fmt::format("enroll: HTTP {}", res->status), ""};
  if (!j.is_discarded() && j.is_object() && j.contains("error") && j["error"].is_object()) {
    const auto& err = j["error"];
    e.code = code_from_envelope(err.value("code", ""), res->status);
    e.message = "enroll: " + err.value("message", e.message);
    e.field = err.value("field", "");
  }
  return tl::unexpected(e);
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

}  // namespace strata::enroll
