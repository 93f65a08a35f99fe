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

}  // namespace strata::agent::netlink
