// Token buckets on a manual clock: burst, refill, retry-after, bounded keys.
#include "strata/manager/api/rate_limiter.h"

#include <gtest/gtest.h>

namespace strata::manager {
namespace {

using namespace std::chrono_literals;

TEST(RateLimiter, BurstThenRefillPerKey) {
  auto clock = std::make_shared<ManualClock>();
  RateLimiter rl(clock, RateLimit{3, 6, 100});  // 3 at once, one more every 10 s
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(rl.take("a").allowed) << i;
  auto refused = rl.take("a");
  EXPECT_FALSE(refused.allowed);
  EXPECT_GT(refused.retry_after, 9s);
  EXPECT_LE(refused.retry_after, 10s);
  EXPECT_TRUE(rl.take("b").allowed) << "another key has its own bucket";
  clock->advance(5s);
  EXPECT_FALSE(rl.take("a").allowed);
  clock->advance(5s);
  EXPECT_TRUE(rl.take("a").allowed);
  EXPECT_FALSE(rl.take("a").allowed);
  clock->advance(10min);
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(rl.take("a").allowed) << "refills up to the burst only";
  EXPECT_FALSE(rl.take("a").allowed);
}

TEST(RateLimiter, KeysAreBounded) {
  auto clock = std::make_shared<ManualClock>();
  RateLimiter rl(clock, RateLimit{2, 60, 3});
  for (const char* k : {"a", "b", "c"}) EXPECT_TRUE(rl.take(k).allowed);
  EXPECT_FALSE(rl.take("d").allowed) << "every bucket is busy: a new key is refused";
  EXPECT_EQ(rl.keys(), 3u);
  clock->advance(2s);  // all buckets full again: forgotten to make room
  EXPECT_TRUE(rl.take("d").allowed);
  EXPECT_EQ(rl.keys(), 1u);
}

}  // namespace
}  // namespace strata::manager
