// tap_name() stability and shape; name validation before any netlink call (no root needed).
#include <gtest/gtest.h>

#include <cstdio>
#include <set>
#include <string>

#include "strata/agent/network.h"
#include "strata/model/validation.h"

namespace strata::agent {
namespace {

const std::string kUuid = "3f2504e0-4f89-41d3-9a0c-0305e82c3301";

TEST(TapName, ShapeAndLength) {
  for (size_t i : {0u, 1u, 7u, 9999u}) {
    std::string n = tap_name(kUuid, i);
    EXPECT_LE(n.size(), 15u) << n;
    EXPECT_EQ(n.substr(0, 2), "st") << n;
    EXPECT_EQ(n.substr(10), "n" + std::to_string(i)) << n;
    EXPECT_TRUE(model::validate_ifname("tap", n)) << n;
  }
}

TEST(TapName, PinnedValueStaysStable) {
  // The agent finds taps of running VMs by this name after a restart; changing the hash
  // would orphan them. FNV-1a-32 of the UUID text.
  EXPECT_EQ(tap_name(kUuid, 0), "ste8c41c31n0");
}

TEST(TapName, DeterministicAndCaseInsensitive) {
  EXPECT_EQ(tap_name(kUuid, 3), tap_name(kUuid, 3));
  EXPECT_EQ(tap_name("3F2504E0-4F89-41D3-9A0C-0305E82C3301", 3), tap_name(kUuid, 3));
}

TEST(TapName, DistinctAcrossVmsAndNics) {
  std::set<std::string> names;
  for (int vm = 0; vm < 500; ++vm) {
    char uuid[40];
    std::snprintf(uuid, sizeof uuid, "00000000-0000-4000-8000-%012d", vm);
    for (size_t nic = 0; nic < 8; ++nic) names.insert(tap_name(uuid, nic));
  }
  EXPECT_EQ(names.size(), 500u * 8u);
}

TEST(Network, RejectsBadNamesBeforeTouchingTheKernel) {
  auto net = make_netlink_network();
  for (const std::string bad : {"", "a/b", "..", "toolongname12345", "br 0", "br;x"}) {
    auto s = net->ensure_bridge(bad);
    ASSERT_FALSE(s) << bad;
    EXPECT_EQ(s.error().code, ErrorCode::invalid_argument) << bad;
    EXPECT_EQ(net->delete_bridge(bad).error().code, ErrorCode::invalid_argument) << bad;
    EXPECT_EQ(net->create_tap(bad, "br0", 0).error().code, ErrorCode::invalid_argument) << bad;
    EXPECT_EQ(net->create_tap("tap0", bad, 0).error().code, ErrorCode::invalid_argument) << bad;
    EXPECT_EQ(net->delete_tap(bad).error().code, ErrorCode::invalid_argument) << bad;
    EXPECT_FALSE(net->link_exists(bad)) << bad;
  }
  EXPECT_TRUE(net->link_exists("lo"));
}

}  // namespace
}  // namespace strata::agent
