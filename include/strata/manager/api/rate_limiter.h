// Token buckets keyed by a string (a client address), on the injected clock: each key may
// take `burst` at once, refilled at `per_minute`. The number of keys is bounded: buckets
// that have refilled are forgotten, and when max_keys are all busy a new key is refused.
#pragma once

#include <mutex>
#include <string>
#include <unordered_map>

#include "strata/common/clock.h"

namespace strata::manager {

struct RateLimit {
  double burst = 10;
  double per_minute = 10;
  size_t max_keys = 10000;
};

class RateLimiter {
 public:
  struct Decision {
    bool allowed = true;
    Clock::Duration retry_after{0};  // when refused: until the next token
  };

  RateLimiter(ClockPtr clock, RateLimit limit);

  // Takes one token from `key`'s bucket.
  Decision take(const std::string& key);
  size_t keys() const;

 private:
  struct Bucket {
    double tokens = 0;
    Clock::TimePoint last;
  };
  double refilled(const Bucket& b, Clock::TimePoint now) const;

  ClockPtr clock_;
  RateLimit limit_;
  mutable std::mutex mu_;
  std::unordered_map<std::string, Bucket> buckets_;
};

}  // namespace strata::manager
