// Token hashing, generation, bearer parsing, role checks and store-backed authentication.
#include "strata/manager/auth/tokens.h"

#include <array>
#include <chrono>

#include <fmt/format.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

namespace strata::manager {

std::string sha256_hex(std::string_view data) {
  std::array<unsigned char, EVP_MAX_MD_SIZE> md{};
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), md.data(), &len, EVP_sha256(), nullptr);
  std::string out;
  out.reserve(len * 2);
  for (unsigned i = 0; i < len; ++i) out += fmt::format("{:02x}", md[i]);
  return out;
}

Result<std::string> generate_secret(std::string_view prefix) {
  std::array<unsigned char, 32> bytes{};
  if (RAND_bytes(bytes.data(), static_cast<int>(bytes.size())) != 1)
    return internal_error("RAND_bytes failed");
  std::string out(prefix);
  for (unsigned char b : bytes) out += fmt::format("{:02x}", b);
  return out;
}

std::optional<std::string> bearer_token(std::string_view h) {
  constexpr std::string_view kScheme = "bearer ";
  if (h.size() <= kScheme.size()) return std::nullopt;
  for (size_t i = 0; i < kScheme.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(h[i])) != kScheme[i]) return std::nullopt;
  std::string_view t = h.substr(kScheme.size());
  while (!t.empty() && t.front() == ' ') t.remove_prefix(1);
  while (!t.empty() && t.back() == ' ') t.remove_suffix(1);
  if (t.empty()) return std::nullopt;
  return std::string(t);
}

Status authorize(const std::optional<Principal>& principal, Role required) {
  if (!principal)
    return make_error(ErrorCode::unauthenticated, "missing or invalid bearer token");
  if (static_cast<int>(principal->role) < static_cast<int>(required))
    return make_error(ErrorCode::permission_denied,
                      fmt::format("role '{}' may not do this; it needs '{}'",
                                  to_string(principal->role), to_string(required)));
  return {};
}

int64_t unix_ms(const Clock& clock) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             clock.wall().time_since_epoch())
      .count();
}

Result<Principal> TokenAuthenticator::authenticate(std::string_view header) const {
  auto token = bearer_token(header);
  if (!token)
    return make_error(ErrorCode::unauthenticated,
                      "missing bearer token (Authorization: Bearer <token>)");
  return check_record(store_.get_token_by_hash(sha256_hex(*token)));
}

Result<Principal> TokenAuthenticator::authenticate_id(const std::string& token_id) const {
  return check_record(store_.get_token(token_id));
}

Result<Principal> TokenAuthenticator::check_record(Result<store::TokenRecord> rec) const {
  if (!rec) {
    if (rec.error().code == ErrorCode::not_found)
      return make_error(ErrorCode::unauthenticated, "invalid bearer token");
    return tl::unexpected(rec.error());
  }
  if (rec->revoked) return make_error(ErrorCode::unauthenticated, "token revoked");
  if (rec->expires_ms && *rec->expires_ms <= unix_ms(*clock_))
    return make_error(ErrorCode::unauthenticated, "token expired");
  auto role = role_from_string(rec->role);
  if (!role) return internal_error(fmt::format("token {} has unknown role", rec->id));
  return Principal{rec->id, rec->name, *role};
}

Result<std::optional<std::string>> bootstrap_admin_token(store::Store& store,
                                                         const std::string& name) {
  store::ListOptions opts;
  opts.limit = 1;
  auto existing = store.list_tokens(opts);
  if (!existing) return tl::unexpected(existing.error());
  if (!existing->empty()) return std::optional<std::string>{};
  auto secret = generate_secret("sta_");
  if (!secret) return tl::unexpected(secret.error());
  store::TokenRecord rec;
  rec.name = name;
  rec.role = "admin";
  rec.secret_hash = sha256_hex(*secret);
  if (auto created = store.create_token(rec); !created) return tl::unexpected(created.error());
  return std::optional<std::string>(*secret);
}

}  // namespace strata::manager
