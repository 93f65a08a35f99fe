// Stream caps: counters under one mutex; a ticket's deleter gives its slot back.
#include "strata/manager/api/stream_limits.h"

#include <fmt/format.h>

namespace strata::manager {

StreamLimiter::StreamLimiter(StreamCaps caps) : caps_(caps) {}

std::variant<StreamLimiter::Ticket, HttpResponse> StreamLimiter::acquire(
    const std::string& token_id, bool console) {
  auto refuse = [](unsigned status, ErrorCode code, std::string msg) {
    HttpResponse r = error_response(Error{code, std::move(msg), ""});
    r.status = status;
    r.headers.emplace_back("Retry-After", "5");
    return r;
  };
  std::lock_guard lock(mu_);
  size_t& mine = per_token_[token_id];
  if (caps_.per_token > 0 && mine >= static_cast<size_t>(caps_.per_token)) {
    if (mine == 0) per_token_.erase(token_id);
    return refuse(429, ErrorCode::resource_exhausted,
                  fmt::format("this token already holds {} open streams (the limit per token); "
                              "close one first",
                              caps_.per_token));
  }
  if (caps_.total > 0 && total_ >= static_cast<size_t>(caps_.total)) {
    if (mine == 0) per_token_.erase(token_id);
    return refuse(503, ErrorCode::unavailable,
                  fmt::format("the manager already serves {} open streams (its limit); try "
                              "again later",
                              caps_.total));
  }
  if (console && caps_.consoles > 0 && consoles_ >= static_cast<size_t>(caps_.consoles)) {
    if (mine == 0) per_token_.erase(token_id);
    return refuse(503, ErrorCode::unavailable,
                  fmt::format("the manager already serves {} open consoles (its limit); try "
                              "again later",
                              caps_.consoles));
  }
  ++mine;
  ++total_;
  if (console) ++consoles_;
  // The limiter outlives every ticket: it lives in the ApiService, whose streams end when
  // the HTTP server stops (before the service goes away).
  return Ticket(static_cast<void*>(this), [this, token_id, console](void*) {
    release(token_id, console);
  });
}

void StreamLimiter::release(const std::string& token_id, bool console) {
  std::lock_guard lock(mu_);
  --total_;
  if (console) --consoles_;
  auto it = per_token_.find(token_id);
  if (it != per_token_.end() && --it->second == 0) per_token_.erase(it);
}

size_t StreamLimiter::active() const {
  std::lock_guard lock(mu_);
  return total_;
}

}  // namespace strata::manager
