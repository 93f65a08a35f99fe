// The HA lease file and the shim's verdict on it (ha_lease.h): pure, no processes.
#include "ha_lease.h"

#include <gtest/gtest.h>

namespace strata::agent::qemu {
namespace {

TEST(HaLeaseTest, FormatAndParseRoundTrip) {
  EXPECT_EQ(format_lease(123456), "expires_boottime_ms=123456\n");
  EXPECT_EQ(parse_lease(format_lease(123456)), 123456);
  EXPECT_EQ(parse_lease("expires_boottime_ms=0"), 0);
}

TEST(HaLeaseTest, AnythingElseIsNotALease) {
  for (const char* bad : {"", "\n", "expires_boottime_ms=", "expires_boottime_ms=-5\n",
                          "expires_boottime_ms=12x\n", "expires_boottime_ms=1\n\n",
                          "EXPIRES_BOOTTIME_MS=1\n", "expires=1\n", " expires_boottime_ms=1\n",
                          "expires_boottime_ms=99999999999999999999\n"})
    EXPECT_FALSE(parse_lease(bad)) << bad;
}

TEST(HaLeaseTest, VerdictNoFileValidOrExpired) {
  EXPECT_EQ(judge_lease(std::nullopt, 1000), LeaseVerdict::none);
  EXPECT_EQ(judge_lease(format_lease(2000), 1999), LeaseVerdict::valid);
  EXPECT_EQ(judge_lease(format_lease(2000), 2000), LeaseVerdict::expired);
  EXPECT_EQ(judge_lease(format_lease(2000), 5000), LeaseVerdict::expired);
  // A file that is not a lease stops the VM: in doubt, never risk two copies.
  EXPECT_EQ(judge_lease(std::string("garbage"), 0), LeaseVerdict::expired);
  EXPECT_EQ(judge_lease(std::string(), 0), LeaseVerdict::expired);
}

TEST(HaLeaseTest, TheLeaseClockMovesForward) {
  int64_t a = lease_clock_ms();
  int64_t b = lease_clock_ms();
  EXPECT_GT(a, 0);
  EXPECT_GE(b, a);
}

}  // namespace
}  // namespace strata::agent::qemu
