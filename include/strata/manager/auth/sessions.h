// Browser sessions for the web console (docs/internals/web.md, "Authentication"). A login
// with an API token (in a POST body, never a URL) makes a session: a random id sent only as
// an HttpOnly, SameSite=Strict cookie, and a CSRF token bound to it that the page sends
// back as X-CSRF-Token on every unsafe method. Sessions live in stratad's memory (a
// restart logs browsers out), end on logout, after an idle time and a maximum age, and
// whenever the token they were made from is revoked or expires (checked on each request).
#pragma once

#include <chrono>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "strata/common/clock.h"
#include "strata/common/error.h"

namespace strata::manager {

inline constexpr std::string_view kSessionCookie = "strata_session";
inline constexpr std::string_view kCsrfHeader = "x-csrf-token";  // lower case, as looked up

struct SessionConfig {
  std::chrono::seconds idle_timeout{std::chrono::hours(8)};
  std::chrono::seconds max_age{std::chrono::hours(24)};
  size_t max_sessions = 10000;  // the oldest session is dropped past this
};

struct Session {
  std::string id;        // the cookie value (64 hex digits)
  std::string csrf;      // X-CSRF-Token for unsafe methods (64 hex digits)
  std::string token_id;  // the API token logged in with
  Clock::TimePoint created{};
  Clock::TimePoint last_seen{};
};

class SessionStore {
 public:
  explicit SessionStore(ClockPtr clock, SessionConfig config = {});

  Result<Session> create(const std::string& token_id);
  // The live session with this id (its idle time restarts); nullopt when unknown, expired
  // (then dropped) or empty.
  std::optional<Session> find(std::string_view id);
  void remove(std::string_view id);
  size_t size() const;
  const SessionConfig& config() const { return config_; }

 private:
  bool expired(const Session& s, Clock::TimePoint now) const;

  ClockPtr clock_;
  SessionConfig config_;
  mutable std::mutex mu_;
  std::map<std::string, Session, std::less<>> sessions_;
};

// The value of cookie `name` in a Cookie header ("a=1; b=2"); nullopt when absent.
std::optional<std::string> cookie_value(std::string_view cookie_header, std::string_view name);

// Set-Cookie values: the session cookie (HttpOnly, SameSite=Strict, Path=/, Max-Age, and
// Secure when the API is served over HTTPS), and the one that clears it.
std::string session_set_cookie(const std::string& id, bool secure, std::chrono::seconds max_age);
std::string session_clear_cookie(bool secure);

// Comparison whose time does not depend on where the strings differ.
bool constant_time_equal(std::string_view a, std::string_view b);

}  // namespace strata::manager
