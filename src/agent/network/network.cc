// Host networking through rtnetlink (bridges, enslaving, link state) and the tun ioctls
// (persistent taps). Every name is validated as an interface name first, and delete calls
// only touch links of the expected kind, so a typo can never remove eth0.
#include "strata/agent/network.h"

#include <fcntl.h>
#include <libmnl/libmnl.h>
#include <linux/if_link.h>
#include <linux/if_tun.h>
#include <linux/rtnetlink.h>
#include <net/if.h>  // glibc ifreq, IFF_*, if_nametoindex; never mix with linux/if.h
#include <sys/ioctl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <optional>

#include "netlink.h"
#include "strata/common/log.h"
#include "strata/common/unique_fd.h"
#include "strata/model/validation.h"
#include "strata/model/vm_spec.h"

namespace strata::agent {
namespace {

using netlink::Link;
using netlink::Request;

constexpr const char* kBridgeKind = "bridge";
constexpr const char* kTunKind = "tun";  // the kernel reports taps with kind "tun"

Result<std::optional<Link>> find_link(const std::string& name) {
  auto link = netlink::get_link(name);
  if (link) return std::optional<Link>(std::move(*link));
  if (link.error().code == ErrorCode::not_found) return std::optional<Link>();
  return tl::unexpected(link.error());
}

// Sets IFF_UP, and enslaves to `master` when it is non-zero.
Status set_up(int index, int master) {
  Request req(RTM_NEWLINK, 0);
  auto* ifm = static_cast<ifinfomsg*>(req.payload());
  ifm->ifi_index = index;
  ifm->ifi_change = IFF_UP;
  ifm->ifi_flags = IFF_UP;
  if (master != 0) mnl_attr_put_u32(req.header(), IFLA_MASTER, static_cast<uint32_t>(master));
  return req.run();
}

Status delete_link(int index) {
  Request req(RTM_DELLINK, 0);
  static_cast<ifinfomsg*>(req.payload())->ifi_index = index;
  return req.run();
}

// TUNSETIFF on a name that is a persistent tap attaches to it; on a new name it creates one.
Status tun_persist(const std::string& tap, bool persist) {
  UniqueFd tun{::open("/dev/net/tun", O_RDWR | O_CLOEXEC)};
  if (tun.fd < 0) return tl::unexpected(netlink::errno_error(errno, "open /dev/net/tun"));
  ifreq ifr{};
  ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
  std::strncpy(ifr.ifr_name, tap.c_str(), IFNAMSIZ - 1);
  if (::ioctl(tun.fd, TUNSETIFF, &ifr) != 0)
    return tl::unexpected(netlink::errno_error(errno, "TUNSETIFF " + tap));
  if (::ioctl(tun.fd, TUNSETPERSIST, persist ? 1 : 0) != 0)
    return tl::unexpected(netlink::errno_error(errno, "TUNSETPERSIST " + tap));
  return {};
}

// Makes `tap`, a port of `bridge`, an untagged member of exactly one VLAN (see
// Network::create_tap): the NIC's, or the bridge's default PVID for a NIC without one.
Status apply_port_vlan(const Link& bridge, const Link& tap, uint16_t vlan) {
  uint16_t want = vlan;
  if (want == 0) {
    // A bridge the user never asked to filter stays as it is (today's behaviour).
    if (!bridge.vlan_filtering) return {};
    want = bridge.vlan_default_pvid;
    if (want == 0) return {};  // the admin turned default PVIDs off: not ours to decide
  }
  auto have = netlink::port_vlans(tap.index);
  if (!have) return tl::unexpected(have.error().wrap("reading the VLANs of " + tap.name));
  const netlink::PortVlan target{want, true, true};
  if (*have != std::vector<netlink::PortVlan>{target}) {
    if (auto s = netlink::add_port_vlan(tap.index, target); !s) {
      if (s.error().code == ErrorCode::failed_precondition)  // EOPNOTSUPP
        return make_error(ErrorCode::failed_precondition,
                          "this host's kernel has no bridge VLAN filtering "
                          "(CONFIG_BRIDGE_VLAN_FILTERING): cannot put " +
                              tap.name + " on VLAN " + std::to_string(want));
      return tl::unexpected(
          s.error().wrap("adding VLAN " + std::to_string(want) + " to " + tap.name));
    }
    // Then drop the rest, the kernel's default VLAN 1 included, so the tap carries only its
    // own VLAN.
    for (const auto& v : *have) {
      if (v.vid == want) continue;
      auto s = netlink::del_port_vlan(tap.index, v.vid);
      if (!s && s.error().code != ErrorCode::not_found)
        return tl::unexpected(
            s.error().wrap("removing VLAN " + std::to_string(v.vid) + " from " + tap.name));
    }
  }
  if (vlan != 0 && !bridge.vlan_filtering) {
    if (auto s = netlink::set_vlan_filtering(bridge.index, true); !s)
      return tl::unexpected(s.error().wrap("turning on vlan_filtering on " + bridge.name));
  }
  return {};
}

Status wrong_kind(const std::string& name, const std::string& want, const Link& link) {
  return make_error(ErrorCode::failed_precondition,
                    name + " is not a " + want + " (kind \"" + link.kind + "\")");
}

class NetlinkNetwork final : public Network {
 public:
  Status ensure_bridge(const std::string& bridge) override {
    if (auto s = model::validate_ifname("bridge", bridge); !s) return s;
    auto existing = find_link(bridge);
    if (!existing) return tl::unexpected(existing.error());
    if (!*existing) {
      Request req(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL);
      mnl_attr_put_strz(req.header(), IFLA_IFNAME, bridge.c_str());
      nlattr* info = mnl_attr_nest_start(req.header(), IFLA_LINKINFO);
      mnl_attr_put_strz(req.header(), IFLA_INFO_KIND, kBridgeKind);
      mnl_attr_nest_end(req.header(), info);
      auto s = req.run();
      // Someone else creating it at the same moment is fine: we check its kind below.
      if (!s && s.error().code != ErrorCode::already_exists)
        return tl::unexpected(s.error().wrap("creating bridge " + bridge));
      if (s) log_->info("bridge created name={}", bridge);
      existing = find_link(bridge);
      if (!existing) return tl::unexpected(existing.error());
      if (!*existing) return internal_error("bridge " + bridge + " vanished after creation");
    }
    const Link& link = **existing;
    if (link.kind != kBridgeKind) return wrong_kind(bridge, "bridge", link);
    if (link.flags & IFF_UP) return {};
    if (auto s = set_up(link.index, 0); !s)
      return tl::unexpected(s.error().wrap("bridge " + bridge + " up"));
    return {};
  }

  Status delete_bridge(const std::string& bridge) override {
    if (auto s = model::validate_ifname("bridge", bridge); !s) return s;
    auto existing = find_link(bridge);
    if (!existing) return tl::unexpected(existing.error());
    if (!*existing) return {};
    if ((*existing)->kind != kBridgeKind) return wrong_kind(bridge, "bridge", **existing);
    auto s = delete_link((*existing)->index);
    if (!s && s.error().code != ErrorCode::not_found)
      return tl::unexpected(s.error().wrap("deleting bridge " + bridge));
    log_->info("bridge deleted name={}", bridge);
    return {};
  }

  bool link_exists(const std::string& ifname) const override {
    if (!model::validate_ifname("ifname", ifname)) return false;
    return ::if_nametoindex(ifname.c_str()) != 0;
  }

  Status create_tap(const std::string& tap, const std::string& bridge, uint16_t vlan) override {
    if (auto s = model::validate_ifname("tap", tap); !s) return s;
    if (auto s = model::validate_ifname("bridge", bridge); !s) return s;
    if (vlan > model::kMaxVlanId)
      return invalid_argument("vlan", std::to_string(vlan) + " is not a VLAN id (1..4094)");
    auto br = find_link(bridge);
    if (!br) return tl::unexpected(br.error());
    if (!*br) return not_found("bridge " + bridge + " not found");
    if ((*br)->kind != kBridgeKind) return wrong_kind(bridge, "bridge", **br);

    auto existing = find_link(tap);
    if (!existing) return tl::unexpected(existing.error());
    if (*existing && (*existing)->kind != kTunKind) return wrong_kind(tap, "tap", **existing);
    if (!*existing) {
      if (auto s = tun_persist(tap, true); !s)
        return tl::unexpected(s.error().wrap("creating tap"));
      log_->info("tap created name={}", tap);
      existing = find_link(tap);
      if (!existing) return tl::unexpected(existing.error());
      if (!*existing) return internal_error("tap " + tap + " vanished after creation");
    }
    const Link& link = **existing;
    if (link.master != (*br)->index || !(link.flags & IFF_UP)) {
      if (auto s = set_up(link.index, (*br)->index); !s)
        return tl::unexpected(s.error().wrap("attaching tap " + tap + " to " + bridge));
      log_->info("tap attached name={} bridge={}", tap, bridge);
    }
    if (auto s = apply_port_vlan(**br, link, vlan); !s) return s;
    if (vlan != 0) log_->info("tap vlan name={} bridge={} vlan={}", tap, bridge, vlan);
    return {};
  }

  Status delete_tap(const std::string& tap) override {
    if (auto s = model::validate_ifname("tap", tap); !s) return s;
    auto existing = find_link(tap);
    if (!existing) return tl::unexpected(existing.error());
    if (!*existing) return {};
    if ((*existing)->kind != kTunKind) return wrong_kind(tap, "tap", **existing);
    auto s = delete_link((*existing)->index);
    if (!s && s.error().code == ErrorCode::failed_precondition) {
      // Kernels without rtnl dellink for tun: drop the persist flag instead.
      s = tun_persist(tap, false);
    }
    if (!s && s.error().code != ErrorCode::not_found)
      return tl::unexpected(s.error().wrap("deleting tap " + tap));
    log_->info("tap deleted name={}", tap);
    return {};
  }

  std::vector<std::string> list_bridges() const override {
    std::vector<std::string> out;
    auto links = netlink::list_links();
    if (!links) {
      log_->warn("listing links failed error={}", links.error().to_string());
      return out;
    }
    for (const Link& l : *links)
      if (l.kind == kBridgeKind) out.push_back(l.name);
    return out;
  }

 private:
  std::shared_ptr<spdlog::logger> log_ = logger("agent.network");
};

uint32_t fnv1a(const std::string& s) {
  uint32_t h = 2166136261u;
  for (char c : s) {
    h ^= static_cast<unsigned char>(c);
    h *= 16777619u;
  }
  return h;
}

}  // namespace

Result<int> open_tap(const std::string& tap) {
  if (auto s = model::validate_ifname("tap", tap); !s) return tl::unexpected(s.error());
  auto existing = find_link(tap);
  if (!existing) return tl::unexpected(existing.error());
  if (!*existing) return not_found("tap " + tap + " not found");
  if ((*existing)->kind != kTunKind) return tl::unexpected(wrong_kind(tap, "tap", **existing).error());
  int fd = ::open("/dev/net/tun", O_RDWR | O_CLOEXEC);
  if (fd < 0) return tl::unexpected(netlink::errno_error(errno, "open /dev/net/tun"));
  ifreq ifr{};
  ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
  std::strncpy(ifr.ifr_name, tap.c_str(), IFNAMSIZ - 1);
  if (::ioctl(fd, TUNSETIFF, &ifr) != 0) {
    int e = errno;
    ::close(fd);
    return tl::unexpected(netlink::errno_error(e, "TUNSETIFF " + tap));
  }
  return fd;
}

NetworkPtr make_netlink_network() { return std::make_unique<NetlinkNetwork>(); }

std::string tap_name(const std::string& vm_uuid, size_t nic_index, char kind) {
  // FNV-1a is fixed by definition (unlike std::hash), so names stay stable across agent
  // versions and restarts; the agent re-attaches to taps by name. Case is folded so both
  // UUID spellings give the same tap.
  std::string canonical = vm_uuid;
  for (char& c : canonical)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  static constexpr char kHex[] = "0123456789abcdef";
  uint32_t h = fnv1a(canonical);
  std::string name = "st";
  for (int shift = 28; shift >= 0; shift -= 4) name += kHex[(h >> shift) & 0xf];
  name += kind;
  name += std::to_string(nic_index);
  return name.substr(0, 15);
}

}  // namespace strata::agent
