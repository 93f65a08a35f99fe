// Minimal rtnetlink client over libmnl: one request, its ACK or replies, errno mapped to
// ErrorCode. Internal to strata_agent_network.
#pragma once

#include <linux/netlink.h>

#include <functional>
#include <string>
#include <vector>

#include "strata/common/error.h"

namespace strata::agent::netlink {

// What the agent needs to know about one link.
struct Link {
  int index = 0;
  std::string name;
  std::string kind;  // IFLA_INFO_KIND: "bridge", "tun", "veth", ... (empty for physical)
  int master = 0;    // ifindex of the bridge this link is enslaved to, 0 if none
  unsigned flags = 0;
  // For kind "bridge" (IFLA_INFO_DATA): 802.1Q filtering on, and the PVID new ports get.
  bool vlan_filtering = false;
  uint16_t vlan_default_pvid = 0;
};

// One VLAN a bridge port is a member of (IFLA_BRIDGE_VLAN_INFO).
struct PortVlan {
  uint16_t vid = 0;
  bool pvid = false;      // untagged frames arriving on the port go to this VLAN
  bool untagged = false;  // frames of this VLAN leave the port without a tag
  bool operator==(const PortVlan&) const = default;
};

// Maps an errno from the kernel to an ErrorCode (EEXIST → already_exists, ENODEV →
// not_found, EPERM → permission_denied, ...).
Error errno_error(int err, const std::string& what);

// Builds a request into a buffer, sends it with NLM_F_ACK (and the given flags), and runs
// `on_reply` for each reply message (dumps and GET replies). Returns the kernel's error.
class Request {
 public:
  Request(uint16_t type, uint16_t flags);
  nlmsghdr* header() { return nlh_; }
  // The ifinfomsg following the header.
  void* payload() { return payload_; }
  Status run(const std::function<void(const nlmsghdr*)>& on_reply = {});

 private:
  std::vector<char> buf_;
  nlmsghdr* nlh_;
  void* payload_;
};

// Reads one link by name (RTM_GETLINK); not_found if absent.
Result<Link> get_link(const std::string& name);
// Dumps all links of the current network namespace.
Result<std::vector<Link>> list_links();
// Parses an RTM_NEWLINK message into a Link.
Link parse_link(const nlmsghdr* nlh);

// The VLANs of bridge port `ifindex` (an AF_BRIDGE dump with RTEXT_FILTER_BRVLAN), in
// ascending vid order; empty when the link is no bridge port or has none.
Result<std::vector<PortVlan>> port_vlans(int ifindex);
// Adds (or updates) VLAN `vid` on bridge port `ifindex`, with the PVID and untagged flags
// as given (RTM_SETLINK, AF_BRIDGE, IFLA_AF_SPEC/IFLA_BRIDGE_VLAN_INFO).
Status add_port_vlan(int ifindex, const PortVlan& vlan);
// Removes VLAN `vid` from bridge port `ifindex` (RTM_DELLINK, AF_BRIDGE).
Status del_port_vlan(int ifindex, uint16_t vid);
// Turns 802.1Q filtering of bridge `bridge_index` on or off (IFLA_BR_VLAN_FILTERING).
Status set_vlan_filtering(int bridge_index, bool on);

}  // namespace strata::agent::netlink
