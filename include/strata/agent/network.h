// Host networking for VMs: Linux bridges and tap devices, made through netlink (libmnl)
// and the tun ioctl interface, never by running `ip`.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "strata/common/error.h"

namespace strata::agent {

class Network {
 public:
  virtual ~Network() = default;
  // Creates the bridge if absent and sets it up. Idempotent.
  virtual Status ensure_bridge(const std::string& bridge) = 0;
  virtual Status delete_bridge(const std::string& bridge) = 0;
  virtual bool link_exists(const std::string& ifname) const = 0;
  // Creates a persistent tap (IFF_TAP|IFF_NO_PI|IFF_VNET_HDR), enslaves it to `bridge`
  // and sets it up. Idempotent for an existing tap of that name.
  // `vlan` 1..4094: the tap becomes an untagged member of exactly that VLAN (its PVID) and
  // the bridge gets vlan_filtering. 0: a bridge without vlan_filtering is left as it is; on
  // a filtering bridge the tap is set back to the bridge's default PVID (normally 1), as a
  // new port gets it from the kernel, so a tap that had a VLAN before loses it.
  virtual Status create_tap(const std::string& tap, const std::string& bridge, uint16_t vlan) = 0;
  virtual Status delete_tap(const std::string& tap) = 0;
  virtual std::vector<std::string> list_bridges() const = 0;
};
using NetworkPtr = std::unique_ptr<Network>;

// Real implementation on the current network namespace. Needs CAP_NET_ADMIN.
NetworkPtr make_netlink_network();

// Opens an existing persistent tap made by create_tap (never creates one) and returns its
// queue as a close-on-exec file descriptor, for QEMU's `-netdev tap,fd=N`. Needs
// CAP_NET_ADMIN (or ownership of the tap); the caller owns the fd.
Result<int> open_tap(const std::string& tap);

// Deterministic tap name for VM NIC i: "st" + 8 hex of a hash of the VM uuid + "n" + i,
// at most 15 characters. A NIC on hot-plug slot k (model::NicSpec::hotplug_slot) is
// `kind` 'p' with index k, so removing a NIC never renames another's tap.
std::string tap_name(const std::string& vm_uuid, size_t nic_index, char kind = 'n');

}  // namespace strata::agent
