// rtnetlink requests over libmnl (see netlink.h). One socket per request keeps the code
// thread-safe without locks; the agent makes few such calls.
#include "netlink.h"

#include <libmnl/libmnl.h>
#include <linux/if_bridge.h>
#include <linux/if_link.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <memory>

namespace strata::agent::netlink {
namespace {

constexpr size_t kBufSize = 32768;  // large enough for a dump batch of link messages

struct SocketCloser {
  void operator()(mnl_socket* s) const { mnl_socket_close(s); }
};
using SocketPtr = std::unique_ptr<mnl_socket, SocketCloser>;

int attr_cb(const nlattr* attr, void* data) {
  auto* tb = static_cast<const nlattr**>(data);
  int type = mnl_attr_get_type(attr);
  if (mnl_attr_type_valid(attr, IFLA_MAX) < 0) return MNL_CB_OK;  // newer kernel: ignore
  tb[type] = attr;
  return MNL_CB_OK;
}

int info_attr_cb(const nlattr* attr, void* data) {
  auto* tb = static_cast<const nlattr**>(data);
  if (mnl_attr_type_valid(attr, IFLA_INFO_MAX) < 0) return MNL_CB_OK;
  tb[mnl_attr_get_type(attr)] = attr;
  return MNL_CB_OK;
}

int br_attr_cb(const nlattr* attr, void* data) {
  auto* tb = static_cast<const nlattr**>(data);
  if (mnl_attr_type_valid(attr, IFLA_BR_MAX) < 0) return MNL_CB_OK;
  tb[mnl_attr_get_type(attr)] = attr;
  return MNL_CB_OK;
}

// An AF_BRIDGE request on one port carrying one IFLA_BRIDGE_VLAN_INFO.
Status port_vlan_request(uint16_t type, int ifindex, uint16_t flags, uint16_t vid) {
  Request req(type, 0);
  auto* ifm = static_cast<ifinfomsg*>(req.payload());
  ifm->ifi_family = AF_BRIDGE;
  ifm->ifi_index = ifindex;
  nlattr* spec = mnl_attr_nest_start(req.header(), IFLA_AF_SPEC);
  bridge_vlan_info info{};
  info.flags = flags;
  info.vid = vid;
  mnl_attr_put(req.header(), IFLA_BRIDGE_VLAN_INFO, sizeof(info), &info);
  mnl_attr_nest_end(req.header(), spec);
  return req.run();
}

struct RunCtx {
  const std::function<void(const nlmsghdr*)>* on_reply;
};

int msg_cb(const nlmsghdr* nlh, void* data) {
  auto* ctx = static_cast<RunCtx*>(data);
  if (ctx->on_reply && *ctx->on_reply) (*ctx->on_reply)(nlh);
  return MNL_CB_OK;
}

}  // namespace

Error errno_error(int err, const std::string& what) {
  ErrorCode code = ErrorCode::internal;
  switch (err) {
    case EEXIST:
      code = ErrorCode::already_exists;
      break;
    case ENODEV:
    case ENOENT:
    case ENXIO:
      code = ErrorCode::not_found;
      break;
    case EPERM:
    case EACCES:
      code = ErrorCode::permission_denied;
      break;
    case EBUSY:
      code = ErrorCode::conflict;
      break;
    case EINVAL:
    case ERANGE:
    case ENAMETOOLONG:
      code = ErrorCode::invalid_argument;
      break;
    case EOPNOTSUPP:
      code = ErrorCode::failed_precondition;
      break;
    case ENOBUFS:
    case ENOMEM:
    case ENOSPC:
      code = ErrorCode::resource_exhausted;
      break;
    default:
      break;
  }
  return Error{code, what + ": " + std::strerror(err), {}};
}

Request::Request(uint16_t type, uint16_t flags) : buf_(kBufSize) {
  nlh_ = mnl_nlmsg_put_header(buf_.data());
  nlh_->nlmsg_type = type;
  nlh_->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | flags;
  nlh_->nlmsg_seq = static_cast<uint32_t>(::time(nullptr));
  auto* ifm = static_cast<ifinfomsg*>(mnl_nlmsg_put_extra_header(nlh_, sizeof(ifinfomsg)));
  ifm->ifi_family = AF_UNSPEC;
  payload_ = ifm;
}

Status Request::run(const std::function<void(const nlmsghdr*)>& on_reply) {
  SocketPtr nl(mnl_socket_open2(NETLINK_ROUTE, SOCK_CLOEXEC));
  if (!nl) return tl::unexpected(errno_error(errno, "netlink socket"));
  if (mnl_socket_bind(nl.get(), 0, MNL_SOCKET_AUTOPID) < 0)
    return tl::unexpected(errno_error(errno, "netlink bind"));
  unsigned portid = mnl_socket_get_portid(nl.get());
  if (mnl_socket_sendto(nl.get(), nlh_, nlh_->nlmsg_len) < 0)
    return tl::unexpected(errno_error(errno, "netlink send"));
  RunCtx ctx{&on_reply};
  std::vector<char> rbuf(kBufSize);
  for (;;) {
    ssize_t n = mnl_socket_recvfrom(nl.get(), rbuf.data(), rbuf.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return tl::unexpected(errno_error(errno, "netlink receive"));
    }
    // mnl_cb_run turns an NLMSG_ERROR into -1 with errno set, and stops at the ACK/DONE.
    int ret =
        mnl_cb_run(rbuf.data(), static_cast<size_t>(n), nlh_->nlmsg_seq, portid, msg_cb, &ctx);
    if (ret < 0) return tl::unexpected(errno_error(errno, "netlink"));
    if (ret == MNL_CB_STOP) return {};
  }
}

Link parse_link(const nlmsghdr* nlh) {
  Link link;
  const auto* ifm = static_cast<const ifinfomsg*>(mnl_nlmsg_get_payload(nlh));
  link.index = ifm->ifi_index;
  link.flags = ifm->ifi_flags;
  const nlattr* tb[IFLA_MAX + 1] = {};
  mnl_attr_parse(nlh, sizeof(*ifm), attr_cb, tb);
  if (tb[IFLA_IFNAME] && mnl_attr_validate(tb[IFLA_IFNAME], MNL_TYPE_NUL_STRING) >= 0)
    link.name = mnl_attr_get_str(tb[IFLA_IFNAME]);
  if (tb[IFLA_MASTER] && mnl_attr_validate(tb[IFLA_MASTER], MNL_TYPE_U32) >= 0)
    link.master = static_cast<int>(mnl_attr_get_u32(tb[IFLA_MASTER]));
  if (tb[IFLA_LINKINFO]) {
    const nlattr* info[IFLA_INFO_MAX + 1] = {};
    mnl_attr_parse_nested(tb[IFLA_LINKINFO], info_attr_cb, info);
    if (const nlattr* kind = info[IFLA_INFO_KIND]) {
      const auto* p = static_cast<const char*>(mnl_attr_get_payload(kind));
      link.kind.assign(p, strnlen(p, mnl_attr_get_payload_len(kind)));
    }
    if (link.kind == "bridge" && info[IFLA_INFO_DATA]) {
      const nlattr* br[IFLA_BR_MAX + 1] = {};
      mnl_attr_parse_nested(info[IFLA_INFO_DATA], br_attr_cb, br);
      if (br[IFLA_BR_VLAN_FILTERING] &&
          mnl_attr_validate(br[IFLA_BR_VLAN_FILTERING], MNL_TYPE_U8) >= 0)
        link.vlan_filtering = mnl_attr_get_u8(br[IFLA_BR_VLAN_FILTERING]) != 0;
      if (br[IFLA_BR_VLAN_DEFAULT_PVID] &&
          mnl_attr_validate(br[IFLA_BR_VLAN_DEFAULT_PVID], MNL_TYPE_U16) >= 0)
        link.vlan_default_pvid = mnl_attr_get_u16(br[IFLA_BR_VLAN_DEFAULT_PVID]);
    }
  }
  return link;
}

Result<Link> get_link(const std::string& name) {
  Request req(RTM_GETLINK, 0);
  mnl_attr_put_strz(req.header(), IFLA_IFNAME, name.c_str());
  Link link;
  bool found = false;
  auto s = req.run([&](const nlmsghdr* nlh) {
    if (nlh->nlmsg_type != RTM_NEWLINK) return;
    link = parse_link(nlh);
    found = true;
  });
  if (!s) {
    if (s.error().code == ErrorCode::not_found) return not_found("link " + name + " not found");
    return tl::unexpected(s.error());
  }
  if (!found) return not_found("link " + name + " not found");
  return link;
}

Result<std::vector<Link>> list_links() {
  Request req(RTM_GETLINK, NLM_F_DUMP);
  std::vector<Link> links;
  auto s = req.run([&](const nlmsghdr* nlh) {
    if (nlh->nlmsg_type == RTM_NEWLINK) links.push_back(parse_link(nlh));
  });
  if (!s) return tl::unexpected(s.error());
  return links;
}

}  // namespace strata::agent::netlink

namespace strata::agent::netlink {

Result<std::vector<PortVlan>> port_vlans(int ifindex) {
  // The kernel answers AF_BRIDGE link requests with VLANs only as a dump; keep our port's.
  Request req(RTM_GETLINK, NLM_F_DUMP);
  static_cast<ifinfomsg*>(req.payload())->ifi_family = AF_BRIDGE;
  mnl_attr_put_u32(req.header(), IFLA_EXT_MASK, RTEXT_FILTER_BRVLAN);
  std::vector<PortVlan> out;
  auto s = req.run([&](const nlmsghdr* nlh) {
    if (nlh->nlmsg_type != RTM_NEWLINK) return;
    const auto* ifm = static_cast<const ifinfomsg*>(mnl_nlmsg_get_payload(nlh));
    if (ifm->ifi_index != ifindex) return;
    const nlattr* tb[IFLA_MAX + 1] = {};
    mnl_attr_parse(nlh, sizeof(*ifm), attr_cb, tb);
    if (!tb[IFLA_AF_SPEC]) return;
    // mnl_attr_for_each_nested, spelled out: the macro assigns a void* (not C++).
    const nlattr* spec = tb[IFLA_AF_SPEC];
    const char* end =
        static_cast<const char*>(mnl_attr_get_payload(spec)) + mnl_attr_get_payload_len(spec);
    for (const nlattr* a = static_cast<const nlattr*>(mnl_attr_get_payload(spec));
         mnl_attr_ok(a, static_cast<int>(end - reinterpret_cast<const char*>(a)));
         a = mnl_attr_next(a)) {
      if (mnl_attr_get_type(a) != IFLA_BRIDGE_VLAN_INFO) continue;
      if (mnl_attr_get_payload_len(a) < sizeof(bridge_vlan_info)) continue;
      bridge_vlan_info info{};
      std::memcpy(&info, mnl_attr_get_payload(a), sizeof(info));
      out.push_back(PortVlan{info.vid, (info.flags & BRIDGE_VLAN_INFO_PVID) != 0,
                             (info.flags & BRIDGE_VLAN_INFO_UNTAGGED) != 0});
    }
  });
  if (!s) return tl::unexpected(s.error());
  std::sort(out.begin(), out.end(),
            [](const PortVlan& a, const PortVlan& b) { return a.vid < b.vid; });
  return out;
}

Status add_port_vlan(int ifindex, const PortVlan& vlan) {
  uint16_t flags = 0;
  if (vlan.pvid) flags |= BRIDGE_VLAN_INFO_PVID;
  if (vlan.untagged) flags |= BRIDGE_VLAN_INFO_UNTAGGED;
  return port_vlan_request(RTM_SETLINK, ifindex, flags, vlan.vid);
}

Status del_port_vlan(int ifindex, uint16_t vid) {
  return port_vlan_request(RTM_DELLINK, ifindex, 0, vid);
}

Status set_vlan_filtering(int bridge_index, bool on) {
  Request req(RTM_NEWLINK, 0);
  static_cast<ifinfomsg*>(req.payload())->ifi_index = bridge_index;
  nlattr* info = mnl_attr_nest_start(req.header(), IFLA_LINKINFO);
  mnl_attr_put_strz(req.header(), IFLA_INFO_KIND, "bridge");
  nlattr* data = mnl_attr_nest_start(req.header(), IFLA_INFO_DATA);
  mnl_attr_put_u8(req.header(), IFLA_BR_VLAN_FILTERING, on ? 1 : 0);
  mnl_attr_nest_end(req.header(), data);
  mnl_attr_nest_end(req.header(), info);
  return req.run();
}

}  // namespace strata::agent::netlink
