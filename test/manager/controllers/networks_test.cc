// Host networks from inventories, and the bridges a VM's NICs need: the scheduler's tokens.
#include "strata/manager/controllers/networks.h"

#include <gtest/gtest.h>

namespace strata::manager {
namespace {

using Tokens = std::vector<std::string>;

TEST(NetworksTest, HostsOfferTheirBridgesAndVlanFilteringOnlyWhenReported) {
  EXPECT_EQ(host_networks(R"({"interfaces": [
      {"name": "eth0", "bridge": false},
      {"name": "br0", "bridge": true, "vlan_filtering_supported": true},
      {"name": "br1", "bridge": true, "vlan_filtering_supported": false},
      {"name": "br2", "bridge": true}]})"),
            (Tokens{"bridge:br0", "bridge-vlan:br0", "bridge:br1", "bridge:br2"}));
  // Malformed entries and documents are skipped, not guessed.
  EXPECT_TRUE(host_networks("{}").empty());
  EXPECT_TRUE(host_networks("not json").empty());
  EXPECT_TRUE(host_networks(R"({"interfaces": {"name": "br0"}})").empty());
  EXPECT_EQ(host_networks(R"({"interfaces": [1, {"name": 2, "bridge": true},
      {"name": "", "bridge": true}, {"name": "br3", "bridge": "yes"},
      {"name": "br4", "bridge": true, "vlan_filtering_supported": 1}]})"),
            (Tokens{"bridge:br4"}));
}

TEST(NetworksTest, BridgeNicsNeedTheirBridgeOnceUserNicsNothing) {
  model::NicSpec user;
  model::NicSpec a{model::NicMode::bridge, "br0", "52:54:00:00:00:01"};
  model::NicSpec b{model::NicMode::bridge, "br0", "52:54:00:00:00:02"};
  model::NicSpec tagged{model::NicMode::bridge, "br0", "52:54:00:00:00:03"};
  tagged.vlan = 20;
  model::NicSpec other{model::NicMode::bridge, "br1", ""};
  EXPECT_TRUE(nic_networks({user}).empty());
  EXPECT_EQ(nic_networks({user, a, b, tagged, other}),
            (Tokens{"bridge:br0", "bridge-vlan:br0", "bridge:br1"}));
}

}  // namespace
}  // namespace strata::manager
