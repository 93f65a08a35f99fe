// Bearer tokens: random secrets handed out once, stored only as SHA-256 hex, checked on
// every request against the store's TokenRecord (revoked/expired tokens are refused), and
// compared against the role a route needs.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "strata/common/clock.h"
#include "strata/common/error.h"
#include "strata/manager/api/http.h"
#include "strata/store/store.h"

namespace strata::manager {

// Lowercase hex SHA-256 (OpenSSL EVP).
std::string sha256_hex(std::string_view data);

// A new secret: prefix + 32 random bytes (OpenSSL RAND_bytes) as hex.
// Prefixes tell humans what a string is: "sta_" API token, "stj_" host join token.
Result<std::string> generate_secret(std::string_view prefix);

// Extracts the token from "Bearer <token>" (case-insensitive scheme); nullopt otherwise.
std::optional<std::string> bearer_token(std::string_view authorization_header);

// unauthenticated when the principal is missing, permission_denied when its role is lower.
Status authorize(const std::optional<Principal>& principal, Role required);

class TokenAuthenticator {
 public:
  TokenAuthenticator(store::Store& store, ClockPtr clock) : store_(store), clock_(std::move(clock)) {}
  // The principal for an Authorization header value; unauthenticated on any failure
  // (the message never echoes the token).
  Result<Principal> authenticate(std::string_view authorization_header) const;
  // The principal of the token with this id, checked as above (browser sessions hold the
  // id of the token they logged in with: a revoked or expired token ends them).
  Result<Principal> authenticate_id(const std::string& token_id) const;

 private:
  Result<Principal> check_record(Result<store::TokenRecord> rec) const;
  store::Store& store_;
  ClockPtr clock_;
};

// Creates an admin token named `name` if no token exists yet (first start). Returns the
// plaintext secret when one was created, nullopt when tokens already existed.
Result<std::optional<std::string>> bootstrap_admin_token(store::Store& store,
                                                         const std::string& name);

int64_t unix_ms(const Clock& clock);

}  // namespace strata::manager
