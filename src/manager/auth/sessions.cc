// Browser sessions (see sessions.h).
#include "strata/manager/auth/sessions.h"

#include <fmt/format.h>

#include "strata/manager/auth/tokens.h"

namespace strata::manager {

SessionStore::SessionStore(ClockPtr clock, SessionConfig config)
    : clock_(std::move(clock)), config_(config) {}

bool SessionStore::expired(const Session& s, Clock::TimePoint now) const {
  return now - s.last_seen >= config_.idle_timeout || now - s.created >= config_.max_age;
}

Result<Session> SessionStore::create(const std::string& token_id) {
  auto id = generate_secret("");
  if (!id) return tl::unexpected(id.error());
  auto csrf = generate_secret("");
  if (!csrf) return tl::unexpected(csrf.error());
  Session s{std::move(*id), std::move(*csrf), token_id, clock_->now(), clock_->now()};
  std::lock_guard lock(mu_);
  auto now = clock_->now();
  for (auto it = sessions_.begin(); it != sessions_.end();)
    it = expired(it->second, now) ? sessions_.erase(it) : std::next(it);
  while (sessions_.size() >= config_.max_sessions && !sessions_.empty()) {
    auto oldest = sessions_.begin();
    for (auto it = sessions_.begin(); it != sessions_.end(); ++it)
      if (it->second.created < oldest->second.created) oldest = it;
    sessions_.erase(oldest);
  }
  sessions_.emplace(s.id, s);
  return s;
}

std::optional<Session> SessionStore::find(std::string_view id) {
  if (id.empty()) return std::nullopt;
  std::lock_guard lock(mu_);
  auto it = sessions_.find(id);
  if (it == sessions_.end()) return std::nullopt;
  auto now = clock_->now();
  if (expired(it->second, now)) {
    sessions_.erase(it);
    return std::nullopt;
  }
  it->second.last_seen = now;
  return it->second;
}

void SessionStore::remove(std::string_view id) {
  std::lock_guard lock(mu_);
  if (auto it = sessions_.find(id); it != sessions_.end()) sessions_.erase(it);
}

size_t SessionStore::size() const {
  std::lock_guard lock(mu_);
  return sessions_.size();
}

std::optional<std::string> cookie_value(std::string_view header, std::string_view name) {
  size_t pos = 0;
  while (pos < header.size()) {
    size_t end = header.find(';', pos);
    if (end == std::string_view::npos) end = header.size();
    std::string_view pair = header.substr(pos, end - pos);
    while (!pair.empty() && (pair.front() == ' ' || pair.front() == '\t')) pair.remove_prefix(1);
    while (!pair.empty() && (pair.back() == ' ' || pair.back() == '\t')) pair.remove_suffix(1);
    auto eq = pair.find('=');
    if (eq != std::string_view::npos && pair.substr(0, eq) == name) {
      std::string_view v = pair.substr(eq + 1);
      if (v.size() >= 2 && v.front() == '"' && v.back() == '"') v = v.substr(1, v.size() - 2);
      return std::string(v);
    }
    pos = end + 1;
  }
  return std::nullopt;
}

std::string session_set_cookie(const std::string& id, bool secure, std::chrono::seconds max_age) {
  return fmt::format("{}={}; Path=/; Max-Age={}; HttpOnly; SameSite=Strict{}", kSessionCookie, id,
                     max_age.count(), secure ? "; Secure" : "");
}

std::string session_clear_cookie(bool secure) {
  return fmt::format("{}=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict{}", kSessionCookie,
                     secure ? "; Secure" : "");
}

bool constant_time_equal(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i)
    diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

}  // namespace strata::manager
