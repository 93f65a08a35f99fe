// Real bridges and taps, made in a private network namespace so the host is untouched.
// Needs root (CAP_SYS_ADMIN for unshare, CAP_NET_ADMIN for links); otherwise SKIPPED.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "strata/agent/network.h"
#include "strata/common/process.h"

namespace strata::agent {
namespace {

namespace fs = std::filesystem;

std::string read_line(const std::string& path) {
  std::ifstream in(path);
  std::string s;
  std::getline(in, s);
  return s;
}

unsigned long link_flags(const std::string& ifname) {
  return std::stoul(read_line("/sys/class/net/" + ifname + "/flags"), nullptr, 16);
}

std::string master_of(const std::string& ifname) {
  std::error_code ec;
  fs::path target = fs::read_symlink("/sys/class/net/" + ifname + "/master", ec);
  return ec ? "" : target.filename().string();
}

// Waits (bounded) for a sysfs value the kernel updates asynchronously (linkwatch).
bool wait_for_operstate(const std::string& ifname, const std::string& want) {
  for (int i = 0; i < 100; ++i) {
    if (read_line("/sys/class/net/" + ifname + "/operstate") == want) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

// One VLAN of a bridge port as `bridge -j vlan show` reports it: read back with iproute2
// (only here, in the test), so the agent's netlink writer is checked by another reader.
struct VlanEntry {
  int vid = 0;
  bool pvid = false;
  bool untagged = false;
  bool operator==(const VlanEntry&) const = default;
};
std::ostream& operator<<(std::ostream& o, const VlanEntry& v) {
  return o << v.vid << (v.pvid ? " PVID" : "") << (v.untagged ? " untagged" : "");
}

// ifname -> its VLANs. Empty map with a failure message in *err when bridge(8) fails.
std::map<std::string, std::vector<VlanEntry>> bridge_vlans(std::string* err) {
  std::map<std::string, std::vector<VlanEntry>> out;
  auto text = run_checked({"bridge", "-j", "vlan", "show"});
  if (!text) {
    *err = text.error().to_string();
    return out;
  }
  auto j = nlohmann::json::parse(*text, nullptr, false);
  if (!j.is_array()) {
    *err = "unexpected output: " + *text;
    return out;
  }
  for (const auto& port : j) {
    auto& list = out[port.value("ifname", "")];
    if (!port.contains("vlans")) continue;
    for (const auto& v : port.at("vlans")) {
      VlanEntry e;
      e.vid = v.value("vlan", 0);
      if (v.contains("flags"))
        for (const auto& f : v.at("flags")) {
          if (f == "PVID") e.pvid = true;
          if (f == "Egress Untagged") e.untagged = true;
        }
      list.push_back(e);
    }
  }
  return out;
}

// The sysfs attribute exists only in kernels built with CONFIG_BRIDGE_VLAN_FILTERING.
bool kernel_filters_vlans(const std::string& bridge) {
  return fs::exists("/sys/class/net/" + bridge + "/bridge/vlan_filtering");
}

std::string vlan_filtering(const std::string& bridge) {
  return read_line("/sys/class/net/" + bridge + "/bridge/vlan_filtering");
}

// Attaches to tap `name` as QEMU would (the tap gets its carrier): raw frames, no vnet header.
int open_tap_reader(const std::string& name) {
  int fd = ::open("/dev/net/tun", O_RDWR | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return -1;
  ifreq ifr{};
  ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
  std::strncpy(ifr.ifr_name, name.c_str(), IFNAMSIZ - 1);
  if (::ioctl(fd, TUNSETIFF, &ifr) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

constexpr char kProbe[] = "strata-vlan-test";  // 16 bytes, after an 0x88b5 EtherType

// A broadcast frame (local experimental EtherType 0x88b5) carrying `mark`.
std::vector<unsigned char> probe_frame(unsigned char mark) {
  std::vector<unsigned char> f = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02,
                                  0,    0,    0,    0,    mark, 0x88, 0xb5};
  f.insert(f.end(), kProbe, kProbe + 16);
  f.push_back(mark);
  f.resize(60, 0);
  return f;
}

// The marks of the probe frames a tap has received within `ms`, untagged (an 802.1Q tag
// would put 0x8100 where the EtherType is); other traffic (IPv6 chatter) is skipped.
std::set<int> probes_received(int fd, int ms) {
  std::set<int> marks;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                    deadline - std::chrono::steady_clock::now())
                    .count();
    if (left <= 0) return marks;
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left)) <= 0) continue;
    unsigned char buf[2048];
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n >= 31 && buf[12] == 0x88 && buf[13] == 0xb5 && std::memcmp(buf + 14, kProbe, 16) == 0)
      marks.insert(buf[30]);
  }
}

class NetnsNetworkTest : public ::testing::Test {
 protected:
  // A private mount namespace for the process; then a fresh network namespace per test,
  // with /sys remounted so /sys/class/net shows that namespace's links.
  static void SetUpTestSuite() {
    if (::geteuid() != 0) {
      skip_reason_ = "needs root to create network namespaces";
      return;
    }
    if (::unshare(CLONE_NEWNS) != 0 ||
        ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
      skip_reason_ = std::string("private mount namespace: ") + std::strerror(errno);
      return;
    }
    if (::access("/dev/net/tun", R_OK | W_OK) != 0) skip_reason_ = "/dev/net/tun not available";
  }

  void SetUp() override {
    if (!skip_reason_.empty()) GTEST_SKIP() << skip_reason_;
    ASSERT_EQ(::unshare(CLONE_NEWNET), 0) << std::strerror(errno);
    ASSERT_EQ(::umount2("/sys", MNT_DETACH), 0) << std::strerror(errno);
    ASSERT_EQ(::mount("sysfs", "/sys", "sysfs", 0, nullptr), 0) << std::strerror(errno);
    net_ = make_netlink_network();
    // Sanity: we really are in a fresh namespace (only lo).
    ASSERT_FALSE(net_->link_exists("eth0")) << "not in a private network namespace";
    ASSERT_TRUE(fs::exists("/sys/class/net/lo"));
    ASSERT_FALSE(fs::exists("/sys/class/net/eth0"));
  }

  static inline std::string skip_reason_;
  NetworkPtr net_;
};

TEST_F(NetnsNetworkTest, BridgeAndTapsLifecycle) {
  ASSERT_TRUE(net_->ensure_bridge("stbr0"));
  ASSERT_TRUE(net_->link_exists("stbr0"));
  EXPECT_TRUE(fs::exists("/sys/class/net/stbr0/bridge")) << "not a bridge";
  EXPECT_TRUE(link_flags("stbr0") & IFF_UP);
  auto again = net_->ensure_bridge("stbr0");
  EXPECT_TRUE(again) << again.error().to_string();

  for (const char* tap : {"sttap0", "sttap1"}) {
    auto s = net_->create_tap(tap, "stbr0", 0);
    ASSERT_TRUE(s) << tap << ": " << s.error().to_string();
    EXPECT_EQ(master_of(tap), "stbr0") << tap;
    EXPECT_TRUE(link_flags(tap) & IFF_UP) << tap;
    EXPECT_TRUE(fs::exists(std::string("/sys/class/net/") + tap + "/tun_flags")) << tap;
    // No process holds the tap yet: administratively up, but no carrier.
    EXPECT_TRUE(wait_for_operstate(tap, "down")) << tap;
    auto idem = net_->create_tap(tap, "stbr0", 0);
    EXPECT_TRUE(idem) << tap << ": " << idem.error().to_string();
  }
  // The flags the tap was made with are the ones QEMU will open it with.
  unsigned long tun_flags = std::stoul(read_line("/sys/class/net/sttap0/tun_flags"), nullptr, 16);
  EXPECT_EQ(tun_flags & (IFF_TAP | IFF_NO_PI | IFF_VNET_HDR),
            static_cast<unsigned long>(IFF_TAP | IFF_NO_PI | IFF_VNET_HDR));

  // A reader attaching (as QEMU does) gives the tap a carrier.
  {
    int fd = ::open("/dev/net/tun", O_RDWR | O_CLOEXEC);
    ASSERT_GE(fd, 0);
    ifreq ifr{};
    ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
    std::strncpy(ifr.ifr_name, "sttap0", IFNAMSIZ - 1);
    ASSERT_EQ(::ioctl(fd, TUNSETIFF, &ifr), 0) << std::strerror(errno);
    EXPECT_TRUE(wait_for_operstate("sttap0", "up"));
    ::close(fd);
  }

  auto bridges = net_->list_bridges();
  EXPECT_EQ(bridges, std::vector<std::string>{"stbr0"});

  for (const char* tap : {"sttap0", "sttap1"}) {
    auto s = net_->delete_tap(tap);
    ASSERT_TRUE(s) << tap << ": " << s.error().to_string();
    EXPECT_FALSE(net_->link_exists(tap)) << tap;
    EXPECT_TRUE(net_->delete_tap(tap)) << "second delete of " << tap;
  }
  ASSERT_TRUE(net_->delete_bridge("stbr0"));
  EXPECT_FALSE(net_->link_exists("stbr0"));
  EXPECT_FALSE(fs::exists("/sys/class/net/stbr0"));
  EXPECT_TRUE(net_->delete_bridge("stbr0"));
  EXPECT_TRUE(net_->list_bridges().empty());
}

TEST_F(NetnsNetworkTest, TapMovesToTheRequestedBridge) {
  ASSERT_TRUE(net_->ensure_bridge("stbr0"));
  ASSERT_TRUE(net_->ensure_bridge("stbr1"));
  ASSERT_TRUE(net_->create_tap("sttap0", "stbr0", 0));
  EXPECT_EQ(master_of("sttap0"), "stbr0");
  ASSERT_TRUE(net_->create_tap("sttap0", "stbr1", 0));
  EXPECT_EQ(master_of("sttap0"), "stbr1");
  auto bridges = net_->list_bridges();
  std::sort(bridges.begin(), bridges.end());
  EXPECT_EQ(bridges, (std::vector<std::string>{"stbr0", "stbr1"}));
}

TEST_F(NetnsNetworkTest, BridgeComesBackUpIfSetDown) {
  ASSERT_TRUE(net_->ensure_bridge("stbr0"));
  std::ofstream("/sys/class/net/stbr0/flags") << "0x1002";  // clear IFF_UP
  ASSERT_FALSE(link_flags("stbr0") & IFF_UP);
  ASSERT_TRUE(net_->ensure_bridge("stbr0"));
  EXPECT_TRUE(link_flags("stbr0") & IFF_UP);
}

TEST_F(NetnsNetworkTest, WrongKindsAndMissingBridgeAreRefused) {
  auto s = net_->create_tap("sttap0", "stnobr", 0);
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code, ErrorCode::not_found);
  EXPECT_FALSE(net_->link_exists("sttap0"));

  ASSERT_TRUE(net_->ensure_bridge("stbr0"));
  ASSERT_TRUE(net_->create_tap("sttap0", "stbr0", 0));
  // delete_bridge never removes a non-bridge, delete_tap never a non-tap (lo included).
  EXPECT_EQ(net_->delete_bridge("sttap0").error().code, ErrorCode::failed_precondition);
  EXPECT_EQ(net_->delete_tap("stbr0").error().code, ErrorCode::failed_precondition);
  EXPECT_EQ(net_->delete_tap("lo").error().code, ErrorCode::failed_precondition);
  EXPECT_EQ(net_->delete_bridge("lo").error().code, ErrorCode::failed_precondition);
  EXPECT_TRUE(net_->link_exists("lo"));
  // A tap name cannot become a bridge, nor a bridge a tap; the tap cannot enslave to a tap.
  EXPECT_EQ(net_->ensure_bridge("sttap0").error().code, ErrorCode::failed_precondition);
  EXPECT_EQ(net_->create_tap("stbr0", "stbr0", 0).error().code, ErrorCode::failed_precondition);
  EXPECT_EQ(net_->create_tap("sttap1", "sttap0", 0).error().code, ErrorCode::failed_precondition);
  EXPECT_TRUE(net_->link_exists("stbr0"));
  EXPECT_TRUE(net_->link_exists("sttap0"));
}

TEST_F(NetnsNetworkTest, VlanTapsAreUntaggedMembersOfTheirVlanOnly) {
  if (find_executable("bridge").empty())
    GTEST_SKIP() << "bridge(8) from iproute2 is needed to read back";
  ASSERT_TRUE(net_->ensure_bridge("stbr0"));
  if (!kernel_filters_vlans("stbr0"))
    GTEST_SKIP() << "this kernel has no bridge VLAN filtering (CONFIG_BRIDGE_VLAN_FILTERING)";
  // A tap without a VLAN on a bridge nobody asked to filter: the bridge stays unfiltered.
  ASSERT_TRUE(net_->create_tap("sttap3", "stbr0", 0));
  EXPECT_EQ(vlan_filtering("stbr0"), "0");

  for (auto [tap, vlan] : {std::pair{"sttap0", 10}, {"sttap1", 10}, {"sttap2", 20}}) {
    auto s = net_->create_tap(tap, "stbr0", static_cast<uint16_t>(vlan));
    ASSERT_TRUE(s) << tap << ": " << s.error().to_string();
    EXPECT_EQ(master_of(tap), "stbr0") << tap;
  }
  EXPECT_EQ(vlan_filtering("stbr0"), "1");

  const VlanEntry v1{1, true, true}, v10{10, true, true}, v20{20, true, true};
  std::string err;
  auto vlans = bridge_vlans(&err);
  ASSERT_TRUE(err.empty()) << err;
  EXPECT_EQ(vlans["sttap0"], std::vector<VlanEntry>{v10});
  EXPECT_EQ(vlans["sttap1"], std::vector<VlanEntry>{v10});
  EXPECT_EQ(vlans["sttap2"], std::vector<VlanEntry>{v20});
  // The port without a VLAN keeps the kernel's default: PVID 1, untagged, and so does the
  // bridge itself; turning filtering on changed neither.
  EXPECT_EQ(vlans["sttap3"], std::vector<VlanEntry>{v1});
  EXPECT_EQ(vlans["stbr0"], std::vector<VlanEntry>{v1});

  // Idempotent; and a tap whose NIC changes VLAN (or drops it) carries only the new one.
  ASSERT_TRUE(net_->create_tap("sttap0", "stbr0", 10));
  ASSERT_TRUE(net_->create_tap("sttap1", "stbr0", 20));
  ASSERT_TRUE(net_->create_tap("sttap2", "stbr0", 0));
  ASSERT_TRUE(net_->create_tap("sttap3", "stbr0", 0));
  vlans = bridge_vlans(&err);
  ASSERT_TRUE(err.empty()) << err;
  EXPECT_EQ(vlans["sttap0"], std::vector<VlanEntry>{v10});
  EXPECT_EQ(vlans["sttap1"], std::vector<VlanEntry>{v20});
  EXPECT_EQ(vlans["sttap2"], std::vector<VlanEntry>{v1});
  EXPECT_EQ(vlans["sttap3"], std::vector<VlanEntry>{v1});
  EXPECT_EQ(vlan_filtering("stbr0"), "1");
}

TEST_F(NetnsNetworkTest, VlanOneIsAnOrdinaryVlanAndBadIdsAreRefused) {
  if (find_executable("bridge").empty())
    GTEST_SKIP() << "bridge(8) from iproute2 is needed to read back";
  ASSERT_TRUE(net_->ensure_bridge("stbr0"));
  if (!kernel_filters_vlans("stbr0"))
    GTEST_SKIP() << "this kernel has no bridge VLAN filtering (CONFIG_BRIDGE_VLAN_FILTERING)";
  ASSERT_TRUE(net_->create_tap("sttap0", "stbr0", 1));
  EXPECT_EQ(vlan_filtering("stbr0"), "1");
  std::string err;
  auto vlans = bridge_vlans(&err);
  ASSERT_TRUE(err.empty()) << err;
  EXPECT_EQ(vlans["sttap0"], (std::vector<VlanEntry>{{1, true, true}}));
  auto bad = net_->create_tap("sttap1", "stbr0", 4095);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, ErrorCode::invalid_argument);
  EXPECT_FALSE(net_->link_exists("sttap1"));
}

// Frames really stay in their VLAN: a broadcast from a VLAN 10 tap reaches the other VLAN 10
// tap, untagged, and neither the VLAN 20 tap nor the tap without a VLAN; theirs reach no
// VLAN 10 tap.
TEST_F(NetnsNetworkTest, VlanTrafficStaysInItsVlan) {
  ASSERT_TRUE(net_->ensure_bridge("stbr0"));
  if (!kernel_filters_vlans("stbr0"))
    GTEST_SKIP() << "this kernel has no bridge VLAN filtering (CONFIG_BRIDGE_VLAN_FILTERING)";
  const std::vector<std::pair<std::string, uint16_t>> taps = {
      {"sta10", 10}, {"stb10", 10}, {"stc20", 20}, {"stdnone", 0}};
  std::vector<int> fds;
  for (const auto& [tap, vlan] : taps) {
    auto s = net_->create_tap(tap, "stbr0", vlan);
    ASSERT_TRUE(s) << tap << ": " << s.error().to_string();
    int fd = open_tap_reader(tap);
    ASSERT_GE(fd, 0) << tap << ": " << std::strerror(errno);
    fds.push_back(fd);
  }
  for (const auto& [tap, vlan] : taps) ASSERT_TRUE(wait_for_operstate(tap, "up")) << tap;
  auto send = [&](size_t from, unsigned char mark) {
    auto f = probe_frame(mark);
    ASSERT_EQ(::write(fds[from], f.data(), f.size()), static_cast<ssize_t>(f.size()))
        << std::strerror(errno);
  };
  send(0, 1);  // VLAN 10
  send(2, 2);  // VLAN 20
  send(3, 3);  // no VLAN (VLAN 1)
  EXPECT_EQ(probes_received(fds[1], 1000), std::set<int>{1});
  for (size_t i : {0, 2, 3})
    EXPECT_EQ(probes_received(fds[i], 200), std::set<int>{}) << taps[i].first;
  for (int fd : fds) ::close(fd);
}

// Kernels without CONFIG_BRIDGE_VLAN_FILTERING (some cloud and microVM kernels): a NIC with a
// VLAN fails saying why, and NICs without one work as before.
TEST_F(NetnsNetworkTest, VlanWithoutKernelSupportFailsSayingWhy) {
  ASSERT_TRUE(net_->ensure_bridge("stbr0"));
  if (kernel_filters_vlans("stbr0")) GTEST_SKIP() << "this kernel filters VLANs (tested above)";
  auto s = net_->create_tap("sttap0", "stbr0", 10);
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code, ErrorCode::failed_precondition);
  EXPECT_NE(s.error().message.find("CONFIG_BRIDGE_VLAN_FILTERING"), std::string::npos)
      << s.error().to_string();
  auto plain = net_->create_tap("sttap1", "stbr0", 0);
  EXPECT_TRUE(plain) << plain.error().to_string();
}

}  // namespace
}  // namespace strata::agent
