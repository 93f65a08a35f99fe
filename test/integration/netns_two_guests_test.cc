// Integration (label netns, needs root): two tiny guests on one Linux bridge, all made by
// the agent's real parts (netlink Network, image store, QemuHypervisor with the real
// shim), talk to each other: ICMP ping and a TCP echo, driven from their serial consoles.
// Everything runs in a fresh network namespace (and a private mount namespace with /sys
// remounted, so /sys/class/net shows that namespace), so the host's links are untouched
// and the bridge and taps vanish with the namespace even if the test dies.
#include <errno.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <sys/mount.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "agent_rig.h"
#include "guest_console.h"
#include "guest_images.h"
#include "strata/agent/image_store.h"
#include "strata/agent/network.h"
#include "strata/agent/qemu_hypervisor.h"
#include "strata/common/process.h"
#include "test_root.h"

namespace strata::integration {
namespace {

namespace fs = std::filesystem;
using model::VmState;

constexpr auto kBootLimit = 240s;     // upper bound for a hang, not a timing assertion
constexpr auto kCommandLimit = 120s;  // TCG on a busy 2-core machine
constexpr char kBridge[] = "stbr-it0";

std::string read_symlink_name(const std::string& p) {
  std::error_code ec;
  auto t = fs::read_symlink(p, ec);
  return ec ? "" : t.filename().string();
}

std::vector<std::string> links() {
  std::vector<std::string> out;
  std::error_code ec;
  for (auto& e : fs::directory_iterator("/sys/class/net", ec))
    out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

class TwoGuestsOnBridgeTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    images_ = load_guest_images(STRATA_REPO_DIR);
    if (::geteuid() != 0)
      skip_ = "needs root (network and mount namespaces, bridges, taps)";
    else if (auto m =
                 images_.missing({"TINY_KERNEL", "TINY_INITRD", "TINY_BASE"}, {"TINY_CMDLINE"});
             !m.empty())
      skip_ = m;
    else if (find_executable("qemu-system-x86_64").empty())
      skip_ = "qemu-system-x86_64 not installed";
    else if (::access("/dev/net/tun", R_OK | W_OK) != 0)
      skip_ = "/dev/net/tun not available";
  }

  void SetUp() override {
    if (!skip_.empty()) GTEST_SKIP() << skip_;
    // Must happen while the process has one thread (CLONE_NEWNS unshares the fs state).
    ASSERT_EQ(::unshare(CLONE_NEWNS | CLONE_NEWNET), 0) << std::strerror(errno);
    ASSERT_EQ(::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr), 0)
        << std::strerror(errno);
    ASSERT_EQ(::umount2("/sys", MNT_DETACH), 0) << std::strerror(errno);
    ASSERT_EQ(::mount("sysfs", "/sys", "sysfs", 0, nullptr), 0) << std::strerror(errno);
    ASSERT_EQ(links(), std::vector<std::string>{"lo"}) << "not a fresh network namespace";

    auto rig = AgentRig::make("strata-it-netns", images_,
                              {{"tiny-kernel", "TINY_KERNEL"},
                               {"tiny-initrd", "TINY_INITRD"},
                               {"tiny-base", "TINY_BASE"}},
                              /*with_network=*/true, STRATA_SHIM_EXE);
    ASSERT_TRUE(rig) << rig.error().to_string();
    rig_ = std::move(*rig);
  }

  // Best-effort teardown through the agent, then TestRoot kills whatever still runs.
  void TearDown() override {
    rig_.stop_vms();
    if (rig_.net && rig_.net->link_exists(kBridge)) (void)rig_.net->delete_bridge(kBridge);
    rig_.teardown();
  }

  model::VmSpec guest(const std::string& name, const std::string& ip_cidr) {
    model::VmSpec s;
    s.name = name;
    s.memory_mib = 256;
    s.vnc = false;
    s.kernel_boot = model::KernelBoot{"tiny-kernel", "tiny-initrd",
                                      images_.get("TINY_CMDLINE") + " strata.ip=" + ip_cidr};
    s.disks.push_back({"root", "tiny-base", 0, false, false, "", ""});
    model::NicSpec nic;
    nic.mode = model::NicMode::bridge;
    nic.bridge = kBridge;
    s.nics.push_back(nic);
    return s;
  }

  static inline GuestImages images_;
  static inline std::string skip_;
  AgentRig rig_;
};

TEST_F(TwoGuestsOnBridgeTest, PingAndTcpEchoBetweenGuests) {
  auto& hv_ = rig_.hv;
  auto& net_ = rig_.net;
  auto t0 = std::chrono::steady_clock::now();
  ASSERT_TRUE(net_->ensure_bridge(kBridge));

  const std::vector<std::pair<std::string, std::string>> vms = {{"vm1", "10.99.0.1/24"},
                                                                {"vm2", "10.99.0.2/24"}};
  std::map<std::string, agent::VmStatus> defined;
  for (auto& [name, ip] : vms) {
    auto d = hv_->define(guest(name, ip));
    ASSERT_TRUE(d) << d.error().to_string();
    defined[name] = *d;
  }
  for (auto& [name, ip] : vms) {
    auto s = hv_->start(name);
    ASSERT_TRUE(s) << name << ": " << s.error().to_string();
  }
  // Each VM's tap exists and is a port of the bridge.
  std::map<std::string, std::string> taps;
  for (auto& [name, st] : defined) {
    taps[name] = agent::tap_name(st.spec.uuid, 0);
    EXPECT_TRUE(net_->link_exists(taps[name])) << taps[name];
    EXPECT_EQ(read_symlink_name("/sys/class/net/" + taps[name] + "/master"), kBridge);
  }
  for (auto& [name, ip] : vms) {
    ASSERT_EQ(wait_console_tail(*hv_, name, {"STRATA-READY"}, kBootLimit), "STRATA-READY")
        << name << " console:\n"
        << console_text(*hv_, name);
    // The NIC the guest sees is the one the agent defined.
    EXPECT_NE(console_text(*hv_, name).find("STRATA-NIC eth0 " + defined[name].spec.nics[0].mac),
              std::string::npos)
        << console_text(*hv_, name);
  }
  auto t_ready = std::chrono::steady_clock::now();

  ConsoleCapture c1, c2;
  ASSERT_TRUE(c1.attach(*hv_, "vm1"));
  ASSERT_TRUE(c2.attach(*hv_, "vm2"));
  ASSERT_TRUE(c1.wait_shell(kCommandLimit)) << c1.text();
  ASSERT_TRUE(c2.wait_shell(kCommandLimit)) << c2.text();

  // ICMP from vm1 to vm2 over the bridge.
  auto ping = c1.run("ping -c 3 10.99.0.2", kCommandLimit);
  ASSERT_TRUE(ping) << c1.text();
  EXPECT_NE(ping->find("3 packets transmitted, 3 packets received"), std::string::npos) << *ping;
  EXPECT_NE(ping->find(" 0% packet loss"), std::string::npos) << *ping;

  // TCP: vm2's echo server on port 7 returns what vm1 sends, and the other way round.
  // The expected text is computed by the guest's shell, so the echoed command cannot match.
  auto echo12 = c1.run("echo strata-echo-$((6*7)) | nc 10.99.0.2 7", kCommandLimit);
  ASSERT_TRUE(echo12) << c1.text();
  EXPECT_NE(echo12->find("strata-echo-42\r\n"), std::string::npos) << *echo12;
  auto echo21 = c2.run("echo strata-back-$((5*5)) | nc 10.99.0.1 7", kCommandLimit);
  ASSERT_TRUE(echo21) << c2.text();
  EXPECT_NE(echo21->find("strata-back-25\r\n"), std::string::npos) << *echo21;
  // Negative control: nothing answers on an address outside the bridge's guests.
  auto none = c1.run("echo strata-none-$((1+1)) | nc -w 2 10.99.0.3 7", kCommandLimit);
  ASSERT_TRUE(none) << c1.text();
  EXPECT_EQ(none->find("strata-none-2\r\n"), std::string::npos) << *none;
  auto t_traffic = std::chrono::steady_clock::now();

  // ACPI shutdown of both, then undefine: the taps go, the bridge is ours to delete.
  for (auto& [name, ip] : vms) {
    ASSERT_TRUE(hv_->shutdown(name, 120s)) << name;
    auto st = hv_->status(name);
    ASSERT_TRUE(st);
    EXPECT_EQ(st->state, VmState::stopped) << name;
    ASSERT_TRUE(st->last_exit) << name;
    EXPECT_EQ(st->last_exit->reason, "guest-shutdown") << name;
  }
  for (auto& [name, ip] : vms) {
    ASSERT_TRUE(hv_->undefine(name)) << name;
    EXPECT_FALSE(net_->link_exists(taps[name])) << taps[name];
  }
  EXPECT_TRUE(hv_->list().empty());
  ASSERT_TRUE(net_->delete_bridge(kBridge));
  EXPECT_EQ(links(), std::vector<std::string>{"lo"});
  EXPECT_TRUE(rig_.root->live_processes().empty()) << "a QEMU or shim outlived its VM";

  auto secs = [](auto a, auto b) { return std::chrono::duration<double>(b - a).count(); };
  std::printf("timing: both ready %.1f s, traffic %.1f s, shutdown+cleanup %.1f s\n",
              secs(t0, t_ready), secs(t_ready, t_traffic),
              secs(t_traffic, std::chrono::steady_clock::now()));
}

}  // namespace
}  // namespace strata::integration
