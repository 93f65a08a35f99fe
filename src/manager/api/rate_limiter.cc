// Per-key token buckets on the injected clock (see rate_limiter.h).
#include "strata/manager/api/rate_limiter.h"

#include <algorithm>

namespace strata::manager {

RateLimiter::RateLimiter(ClockPtr clock, RateLimit limit)
    : clock_(std::move(clock)), limit_(limit) {}

double RateLimiter::refilled(const Bucket& b, Clock::TimePoint now) const {
  double minutes = std::chrono::duration<double, std::ratio<60>>(now - b.last).count();
  return std::min(limit_.burst, b.tokens + std::max(0.0, minutes) * limit_.per_minute);
}

RateLimiter::Decision RateLimiter::take(const std::string& key) {
  std::lock_guard lock(mu_);
  auto now = clock_->now();
  auto it = buckets_.find(key);
  if (it == buckets_.end()) {
    if (buckets_.size() >= limit_.max_keys) {
      // Full buckets hold no state worth keeping.
      for (auto b = buckets_.begin(); b != buckets_.end();) {
        if (refilled(b->second, now) >= limit_.burst)
          b = buckets_.erase(b);
        else
          ++b;
      }
      if (buckets_.size() >= limit_.max_keys)
        return Decision{false, std::chrono::duration_cast<Clock::Duration>(
                                   std::chrono::duration<double, std::ratio<60>>(
                                       1.0 / std::max(limit_.per_minute, 1e-9)))};
    }
    it = buckets_.emplace(key, Bucket{limit_.burst, now}).first;
  }
  Bucket& b = it->second;
  b.tokens = refilled(b, now);
  b.last = now;
  if (b.tokens >= 1.0) {
    b.tokens -= 1.0;
    return Decision{};
  }
  double wait_min = (1.0 - b.tokens) / std::max(limit_.per_minute, 1e-9);
  return Decision{false, std::chrono::duration_cast<Clock::Duration>(
                             std::chrono::duration<double, std::ratio<60>>(wait_min))};
}

size_t RateLimiter::keys() const {
  std::lock_guard lock(mu_);
  return buckets_.size();
}

}  // namespace strata::manager
