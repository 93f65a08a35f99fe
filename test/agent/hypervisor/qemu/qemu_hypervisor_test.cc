// Integration tests of the QEMU driver with real TCG guests (label qemu): the tiny busybox
// guest from scripts/guest-images, a real image store and the real shim. Generous
// timeouts, no timing assertions.
#include "qemu_hypervisor.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
#include <sstream>
#include <thread>

#include "../../../common/test_util.h"
#include "../../../common/tiny_watchdog.h"
#include "strata/agent/image_store.h"
#include "strata/agent/network.h"
#include "strata/agent/qemu_hypervisor.h"
#include "strata/agent/qemu_user.h"
#include "strata/common/process.h"

namespace strata::agent::qemu {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using model::VmState;

constexpr auto kBootTimeout = 180s;  // TCG on a busy 2-core machine

std::map<std::string, std::string> read_manifest() {
  const char* env = getenv("STRATA_IMAGES");
  std::string dir = env ? env : std::string(STRATA_REPO_DIR) + "/.cache/images";
  std::ifstream in(dir + "/manifest.env");
  std::map<std::string, std::string> m;
  std::string line;
  while (std::getline(in, line)) {
    auto eq = line.find('=');
    if (line.empty() || line[0] == '#' || eq == std::string::npos) continue;
    std::string v = line.substr(eq + 1);
    if (v.size() >= 2 && v.front() == '"' && v.back() == '"') v = v.substr(1, v.size() - 2);
    m[line.substr(0, eq)] = v;
  }
  return m;
}

using test::slurp;

size_t count_of(const std::string& hay, const std::string& needle) {
  size_t n = 0;
  for (size_t p = hay.find(needle); p != std::string::npos; p = hay.find(needle, p + 1)) ++n;
  return n;
}

class QemuDriverTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    manifest_ = read_manifest();
    if (manifest_.count("TINY_KERNEL") == 0) return;
    root_ = "/tmp/stq-" + std::to_string(::getpid());
    fs::remove_all(root_);
    fs::create_directories(root_);
    auto store = make_image_store(root_ + "/img");
    if (!store) {
      import_error_ = store.error().to_string();
      return;
    }
    store_ = std::move(*store);
    for (auto [name, key] : {std::pair{"tiny-kernel", "TINY_KERNEL"},
                             {"tiny-initrd", "TINY_INITRD"},
                             {"tiny-base", "TINY_BASE"}}) {
      auto r = store_->import_image(name, manifest_[key]);
      if (!r) {
        import_error_ = r.error().to_string();
        return;
      }
    }
  }
  static void TearDownTestSuite() {
    store_.reset();
    if (!root_.empty()) fs::remove_all(root_);
  }

  void SetUp() override {
    if (manifest_.count("TINY_KERNEL") == 0)
      GTEST_SKIP() << "tiny guest image missing: run scripts/guest-images tiny";
    if (!import_error_.empty() || !store_) GTEST_SKIP() << "image store: " << import_error_;
    if (find_executable("qemu-system-x86_64").empty()) GTEST_SKIP() << "no qemu-system-x86_64";
    state_dir_ =
        root_ + "/state-" + ::testing::UnitTest::GetInstance()->current_test_info()->name();
    hv_ = make(system_clock());
  }

  void TearDown() override {
    if (state_dir_.empty()) return;  // skipped
    if (!hv_) hv_ = make(system_clock());
    if (!hv_) return;
    (void)hv_->recover();
    for (auto& st : hv_->list()) {
      if (is_active(st.state)) (void)hv_->force_off(st.spec.name);
      (void)hv_->undefine(st.spec.name);
    }
    hv_.reset();
  }

  HypervisorPtr make(ClockPtr clock, size_t console_max = 1 << 20, Network* network = nullptr) {
    QemuOptions o;
    o.network = network;
    o.state_dir = state_dir_;
    o.accelerator = "tcg";
    o.images = store_.get();
    o.shim_exe = STRATA_TEST_SHIM;
    o.clock = std::move(clock);
    o.console_log_max_bytes = console_max;
    // As strata-agent serve does by default: QEMU as strata-qemu when this runs as root
    // and scripts/setup made the user, under -sandbox either way.
    auto user = decide_qemu_user(std::nullopt, ::geteuid(), lookup_system_user);
    EXPECT_TRUE(user) << user.error().to_string();
    if (user) o.run_as = user->user;
    auto h = make_qemu_hypervisor(std::move(o));
    EXPECT_TRUE(h) << h.error().to_string();
    return h ? std::move(*h) : nullptr;
  }

  model::VmSpec tiny(const std::string& name) {
    model::VmSpec s;
    s.name = name;
    s.memory_mib = 256;
    s.kernel_boot = model::KernelBoot{"tiny-kernel", "tiny-initrd", manifest_["TINY_CMDLINE"]};
    s.disks.push_back({"root", "tiny-base", 0, false, false, "", ""});
    s.nics.push_back({});
    return s;
  }

  // Defines and starts `name` and waits for the guest's ready line.
  VmStatus boot(const std::string& name) {
    auto d = hv_->define(tiny(name));
    EXPECT_TRUE(d) << d.error().to_string();
    auto s = hv_->start(name);
    EXPECT_TRUE(s) << s.error().to_string();
    EXPECT_TRUE(wait_console(name, "STRATA-READY", 1)) << tail(name);
    EXPECT_TRUE(shell_ready(name)) << tail(name);
    return *hv_->status(name);
  }

  // The guest prints STRATA-READY just before its shell starts (and acpid is started in the
  // background just before that): input sent too early is lost. A console round trip shows
  // the shell reads. The echoed input holds "$((...))", only the output holds the number.
  bool shell_ready(const std::string& name) {
    static std::atomic<int> k{0};
    for (int attempt = 0; attempt < 40; ++attempt) {
      int n = 1000 + k++;
      if (!hv_->console_write(name, "echo ALIVE-$((" + std::to_string(n) + "+0))\n")) return false;
      if (wait_console(name, "ALIVE-" + std::to_string(n), 1, 5s)) return true;
    }
    return false;
  }

  std::string tail(const std::string& name) {
    auto t = hv_->console_tail(name, 1 << 20);
    return t ? *t : t.error().to_string();
  }

  bool wait_console(const std::string& name, const std::string& text, size_t times,
                    std::chrono::seconds limit = kBootTimeout) {
    auto deadline = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < deadline) {
      if (count_of(tail(name), text) >= times) return true;
      std::this_thread::sleep_for(200ms);
    }
    return false;
  }

  bool wait_state(const std::string& name, VmState want, std::chrono::seconds limit = 60s) {
    auto deadline = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < deadline) {
      auto s = hv_->status(name);
      if (s && s->state == want) return true;
      std::this_thread::sleep_for(100ms);
    }
    return false;
  }

  QemuHypervisor& impl() { return dynamic_cast<QemuHypervisor&>(*hv_); }

  static inline std::map<std::string, std::string> manifest_;
  static inline std::string root_;
  static inline ImageStorePtr store_;
  static inline std::string import_error_;
  std::string state_dir_;
  HypervisorPtr hv_;
};

TEST_F(QemuDriverTest, BootsTinyGuestWithDiskAndNic) {
  // Watchers cannot be removed and outlive this body (TearDown), so they own their state.
  struct Seen {
    std::mutex mu;
    std::vector<VmEvent> events;
  };
  auto seen = std::make_shared<Seen>();
  hv_->watch([seen](const VmEvent& e) {
    std::lock_guard lk(seen->mu);
    seen->events.push_back(e);
  });
  auto& events = seen->events;
  auto st = boot("boot1");
  EXPECT_EQ(st.state, VmState::running);
  EXPECT_GT(st.pid, 0);
  EXPECT_EQ(st.accelerator, "tcg");
  EXPECT_EQ(st.spec.uuid.size(), 36u);
  EXPECT_NE(tail("boot1").find("STRATA-DEVICES vda eth0"), std::string::npos) << tail("boot1");
  for (auto f : {"spec.json", "state.json", "run/qmp.sock", "run/serial.sock", "run/qga.sock",
                 "run/vnc.sock", "console.log", "qemu.pid", "shim.pid"})
    EXPECT_TRUE(fs::exists(state_dir_ + "/vms/boot1/" + f)) << f;
  std::lock_guard lk(seen->mu);
  ASSERT_GE(events.size(), 3u);
  EXPECT_EQ(events[0].state, VmState::defined);
  EXPECT_EQ(events[1].state, VmState::starting);
  EXPECT_EQ(events[2].state, VmState::running);
}

std::string status_line(int pid, const std::string& key) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(key + ":", 0) == 0) {
      std::string v = line.substr(key.size() + 1);
      v.erase(0, v.find_first_not_of(" \t"));
      return v;
    }
  return "";
}

uid_t owner_of(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0 ? st.st_uid : static_cast<uid_t>(-1);
}

// QEMU runs as the unprivileged strata-qemu user (all four ids), under its seccomp filter
// (mode 2) with no_new_privs, owns only its sockets folder, pid file, console log and the
// VM's disk, and is still driven over QMP and the console by the root agent.
TEST_F(QemuDriverTest, QemuRunsUnprivilegedUnderSeccomp) {
  if (::geteuid() != 0) GTEST_SKIP() << "SKIPPED: dropping privileges needs root";
  auto user = lookup_system_user(kDefaultQemuUser);
  if (!user) GTEST_SKIP() << "SKIPPED: no user strata-qemu (scripts/setup creates it)";
  auto st = boot("sbx1");
  ASSERT_GT(st.pid, 0);
  std::string uid = std::to_string(user->uid), gid = std::to_string(user->gid);
  EXPECT_EQ(status_line(st.pid, "Uid"), uid + "\t" + uid + "\t" + uid + "\t" + uid);
  EXPECT_EQ(status_line(st.pid, "Gid"), gid + "\t" + gid + "\t" + gid + "\t" + gid);
  EXPECT_EQ(status_line(st.pid, "Seccomp"), "2");
  EXPECT_EQ(status_line(st.pid, "NoNewPrivs"), "1");
  EXPECT_EQ(status_line(st.pid, "CapEff"), "0000000000000000");
  const std::string dir = state_dir_ + "/vms/sbx1";
  EXPECT_EQ(owner_of(dir), 0u);
  EXPECT_EQ(owner_of(dir + "/state.json"), 0u);
  EXPECT_EQ(owner_of(dir + "/run"), user->uid);
  EXPECT_EQ(owner_of(dir + "/run/qmp.sock"), user->uid);
  EXPECT_EQ(owner_of(dir + "/console.log"), user->uid);
  EXPECT_EQ(owner_of(store_->root() + "/vms/sbx1/root.qcow2"), user->uid);
  auto base = store_->image("tiny-base");
  ASSERT_TRUE(base);
  EXPECT_EQ(owner_of(base->path), 0u);  // read-only to QEMU: root's, mode 0644
  // Driven as usual: QMP, console, a clean ACPI shutdown.
  auto q = impl().qmp("sbx1", "query-status");
  ASSERT_TRUE(q) << q.error().to_string();
  EXPECT_EQ(q->value("status", ""), "running");
  ASSERT_TRUE(hv_->shutdown("sbx1", 120s));
  auto down = *hv_->status("sbx1");
  EXPECT_EQ(down.state, VmState::stopped);
  ASSERT_TRUE(down.last_exit);
  EXPECT_EQ(down.last_exit->code, 0) << down.last_exit->reason;
}

TEST_F(QemuDriverTest, GracefulShutdownStopsWithExitZero) {
  boot("down1");
  ASSERT_TRUE(hv_->shutdown("down1", 120s));
  auto st = *hv_->status("down1");
  EXPECT_EQ(st.state, VmState::stopped);
  ASSERT_TRUE(st.last_exit);
  EXPECT_FALSE(st.last_exit->signaled);
  EXPECT_EQ(st.last_exit->code, 0);
  EXPECT_EQ(st.last_exit->reason, "guest-shutdown");
  EXPECT_EQ(st.pid, 0);
  // A stopped VM starts again.
  ASSERT_TRUE(hv_->start("down1"));
  EXPECT_TRUE(wait_console("down1", "STRATA-READY", 2));
}

TEST_F(QemuDriverTest, ForceOff) {
  boot("force1");
  ASSERT_TRUE(hv_->force_off("force1"));
  auto st = *hv_->status("force1");
  EXPECT_EQ(st.state, VmState::stopped);
  ASSERT_TRUE(st.last_exit);
  EXPECT_EQ(st.last_exit->reason, "host-qmp-quit");
  EXPECT_EQ(hv_->force_off("force1").error().code, ErrorCode::failed_precondition);
}

TEST_F(QemuDriverTest, ShutdownTimeoutForcesOffUsingInjectedClock) {
  hv_ = make(std::make_shared<ManualClock>());
  boot("slow1");
  // A paused guest cannot react to the ACPI button; the manual clock makes the 1-hour
  // timeout pass at once, so shutdown must fall back to forcing the VM off.
  ASSERT_TRUE(hv_->pause("slow1"));
  ASSERT_TRUE(hv_->shutdown("slow1", std::chrono::hours(1)));
  auto st = *hv_->status("slow1");
  EXPECT_EQ(st.state, VmState::stopped);
  ASSERT_TRUE(st.last_exit);
  EXPECT_EQ(st.last_exit->reason, "host-qmp-quit");
}

TEST_F(QemuDriverTest, PauseResumeRebootStatsAndConsole) {
  boot("ops1");
  ASSERT_TRUE(hv_->pause("ops1"));
  EXPECT_EQ(hv_->status("ops1")->state, VmState::paused);
  EXPECT_EQ((*impl().qmp("ops1", "query-status"))["status"], "paused");
  ASSERT_TRUE(hv_->resume("ops1"));
  EXPECT_EQ(hv_->status("ops1")->state, VmState::running);
  EXPECT_EQ((*impl().qmp("ops1", "query-status"))["status"], "running");

  auto stats = hv_->stats("ops1");
  ASSERT_TRUE(stats) << stats.error().to_string();
  EXPECT_GT(stats->cpu_time_ns, 0u);
  EXPECT_GT(stats->rss_bytes, 0u);
  EXPECT_GT(stats->disk_read_bytes, 0u);

  std::mutex mu;
  std::string seen;
  auto sub = hv_->console_subscribe("ops1", [&](std::string_view d) {
    std::lock_guard lk(mu);
    seen += d;
  });
  ASSERT_TRUE(sub);
  ASSERT_TRUE(hv_->console_write("ops1", "echo SUB-$((40+2))\n"));
  EXPECT_TRUE(wait_console("ops1", "SUB-42", 1, 60s));
  for (int i = 0; i < 300; ++i) {
    {
      std::lock_guard lk(mu);
      if (seen.find("SUB-42") != std::string::npos) break;
    }
    std::this_thread::sleep_for(100ms);
  }
  {
    std::lock_guard lk(mu);
    EXPECT_NE(seen.find("SUB-42"), std::string::npos) << seen;
  }
  sub->reset();

  auto ga = hv_->guest_agent("ops1", R"({"execute":"guest-ping"})", 2s);
  ASSERT_FALSE(ga);  // the tiny guest runs no qemu-guest-agent
  EXPECT_EQ(ga.error().code, ErrorCode::deadline_exceeded);

  ASSERT_TRUE(hv_->reboot("ops1"));
  EXPECT_TRUE(wait_console("ops1", "STRATA-READY", 2)) << tail("ops1");
  EXPECT_EQ(hv_->status("ops1")->state, VmState::running);
}

TEST_F(QemuDriverTest, TwoVmsAtOnceAndOverlayIsolation) {
  auto base = store_->image("tiny-base");
  ASSERT_TRUE(base);
  std::string before = slurp(base->path);
  auto a = boot("twin-a");
  auto b = boot("twin-b");
  EXPECT_NE(a.pid, b.pid);
  EXPECT_EQ(hv_->status("twin-a")->state, VmState::running);
  EXPECT_EQ(hv_->status("twin-b")->state, VmState::running);
  auto overlay_before = store_->disk_info("twin-a", "root");
  ASSERT_TRUE(overlay_before);
  ASSERT_TRUE(hv_->console_write(
      "twin-a", "dd if=/dev/urandom of=/dev/vda bs=4k count=10; sync; echo WROTE-$((1+1))\n"));
  ASSERT_TRUE(wait_console("twin-a", "WROTE-2", 1, 120s)) << tail("twin-a");
  ASSERT_TRUE(hv_->force_off("twin-a"));
  EXPECT_EQ(slurp(base->path), before) << "the base image changed";
  auto overlay_after = store_->disk_info("twin-a", "root");
  ASSERT_TRUE(overlay_after);
  EXPECT_GT(overlay_after->actual_size, overlay_before->actual_size);
  EXPECT_EQ(hv_->status("twin-b")->state, VmState::running);
}

TEST_F(QemuDriverTest, AgentRestartReattachesWithoutRestartingQemu) {
  auto st = boot("keep1");
  hv_.reset();  // the agent dies; QEMU lives on under its shim
  ASSERT_EQ(::kill(st.pid, 0), 0);
  hv_ = make(system_clock());
  ASSERT_TRUE(hv_->recover());
  auto after = hv_->status("keep1");
  ASSERT_TRUE(after);
  EXPECT_EQ(after->state, VmState::running);
  EXPECT_EQ(after->pid, st.pid);
  EXPECT_EQ(after->spec.uuid, st.spec.uuid);
  ASSERT_TRUE(hv_->console_write("keep1", "echo RECOVERED-$((2+3))\n"));
  EXPECT_TRUE(wait_console("keep1", "RECOVERED-5", 1, 60s)) << tail("keep1");
  EXPECT_EQ(count_of(tail("keep1"), "STRATA-READY"), 1u);  // not rebooted
  ASSERT_TRUE(hv_->pause("keep1"));
  hv_.reset();
  hv_ = make(system_clock());
  ASSERT_TRUE(hv_->recover());
  EXPECT_EQ(hv_->status("keep1")->state, VmState::paused);  // from query-status
}

// Issue 9: a restarted agent that cannot get the QMP socket (QEMU serves one client; here
// the test holds it, as a second agent's predecessor did) must not call the VM crashed: it
// stays running, and QMP is re-attached once the socket is free.
TEST_F(QemuDriverTest, BusyQmpAtRecoverIsNotDeath) {
  auto st = boot("busy1");
  hv_.reset();
  std::string qmp_path = vm_files(state_dir_ + "/vms/busy1").qmp_socket;
  auto holder = QmpClient::connect(qmp_path, 30s, [](const QmpMessage&) {}, [] {});
  ASSERT_TRUE(holder) << holder.error().to_string();
  // More clients than QEMU's backlog holds: connects must fail fast ("busy"), not block.
  std::vector<Fd> queued;
  for (int i = 0; i < 4; ++i)
    if (auto fd = connect_unix(qmp_path)) queued.push_back(std::move(*fd));
  hv_ = make(system_clock());
  auto t0 = std::chrono::steady_clock::now();
  ASSERT_TRUE(hv_->recover());
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 60s);
  auto after = hv_->status("busy1");
  ASSERT_TRUE(after);
  EXPECT_EQ(after->state, VmState::running);
  EXPECT_EQ(after->pid, st.pid);
  auto busy = hv_->pause("busy1");
  ASSERT_FALSE(busy);
  EXPECT_EQ(busy.error().code, ErrorCode::unavailable) << busy.error().to_string();
  std::this_thread::sleep_for(3s);  // the supervisor keeps retrying meanwhile
  EXPECT_EQ(hv_->status("busy1")->state, VmState::running);
  EXPECT_EQ(::kill(st.pid, 0), 0);
  queued.clear();
  holder->reset();  // the socket is free: the supervisor re-attaches
  Status paused = make_error(ErrorCode::unavailable, "not tried");
  for (int i = 0; i < 300 && !paused; ++i) {
    paused = hv_->pause("busy1");
    if (!paused) std::this_thread::sleep_for(100ms);
  }
  ASSERT_TRUE(paused) << paused.error().to_string();
  EXPECT_EQ(hv_->status("busy1")->state, VmState::paused);
  ASSERT_TRUE(hv_->resume("busy1"));
  EXPECT_EQ(hv_->status("busy1")->pid, st.pid);
}

TEST_F(QemuDriverTest, QemuKilledWhileAgentDownIsCrashed) {
  auto st = boot("kill1");
  hv_.reset();
  ASSERT_EQ(::kill(st.pid, SIGKILL), 0);
  for (int i = 0; i < 300 && !fs::exists(state_dir_ + "/vms/kill1/exit.json"); ++i)
    std::this_thread::sleep_for(100ms);
  hv_ = make(system_clock());
  ASSERT_TRUE(hv_->recover());
  auto after = *hv_->status("kill1");
  EXPECT_EQ(after.state, VmState::crashed);
  ASSERT_TRUE(after.last_exit);
  EXPECT_TRUE(after.last_exit->signaled);
  EXPECT_EQ(after.last_exit->code, 9);
}

// HA lease self-fencing with a real guest (docs/internals/ha.md, "Leases"): the agent is
// gone (as on a host cut off with a dead agent) and nobody renews the lease; the VM's shim
// stops QEMU when it runs out. The restarted agent reports why.
TEST_F(QemuDriverTest, LeaseRunsOutWhileTheAgentIsDeadAndTheShimStopsQemu) {
  auto st = boot("lease1");
  const auto renewed = std::chrono::steady_clock::now();
  ASSERT_EQ(hv_->renew_ha_leases({"lease1"}, 4s), std::vector<std::string>{"lease1"});
  hv_.reset();  // the agent dies; QEMU lives on under its shim, for the lease only
  // QEMU outlives its agent until the lease runs out, never less. On a loaded machine the
  // agent's own shutdown can outlast the lease (CI saw it): then QEMU may be gone already,
  // but not before the lease's 4 s from the renewal (the shim counts CLOCK_BOOTTIME, which
  // keeps pace with steady_clock while the machine does not sleep).
  if (::kill(st.pid, 0) != 0) {
    EXPECT_GE(std::chrono::steady_clock::now() - renewed, 4s)
        << "QEMU stopped before its lease ran out";
  }
  const std::string exit_json = state_dir_ + "/vms/lease1/exit.json";
  for (int i = 0; i < 600 && !fs::exists(exit_json); ++i) std::this_thread::sleep_for(100ms);
  ASSERT_TRUE(fs::exists(exit_json)) << "QEMU still runs after its lease ran out";
  hv_ = make(system_clock());
  ASSERT_TRUE(hv_->recover());
  auto after = *hv_->status("lease1");
  EXPECT_EQ(after.state, VmState::crashed);
  ASSERT_TRUE(after.last_exit);
  EXPECT_EQ(after.last_exit->reason, "ha-lease-expired");
  EXPECT_TRUE(after.last_exit->signaled);
  auto refused = hv_->start("lease1");
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, ErrorCode::failed_precondition);
}

// This thread (and what it starts) in a fresh network namespace holding only `lo`, until
// destroyed: bridges and taps made here leave the host's own namespace alone. Network calls
// open their netlink socket per call, on the calling thread, so they land here.
class ThreadNetns {
 public:
  ThreadNetns() {
    orig_ = ::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    if (orig_ < 0 || ::unshare(CLONE_NEWNET) != 0) why_ = std::strerror(errno);
  }
  ~ThreadNetns() {
    if (orig_ < 0) return;
    if (why_.empty()) (void)::setns(orig_, CLONE_NEWNET);
    ::close(orig_);
  }
  const std::string& why() const { return why_; }

 private:
  int orig_ = -1;
  std::string why_;
};

// A bridge NIC plugged into a running guest: the agent makes the tap on the bridge and hands
// QEMU its queue over the monitor (getfd, SCM_RIGHTS) for netdev_add, since the sandboxed
// QEMU cannot open /dev/net/tun itself. The guest sees the NIC and reaches the host over the
// bridge (a ping to the bridge's address); a detach takes the tap away again.
TEST_F(QemuDriverTest, ABridgeNicPlugsIntoTheRunningGuestAndCarriesItsTraffic) {
  if (::geteuid() != 0) GTEST_SKIP() << "SKIPPED: needs root (a network namespace, taps)";
  ThreadNetns netns;
  if (!netns.why().empty()) GTEST_SKIP() << "SKIPPED: no network namespace: " << netns.why();
  ASSERT_TRUE(run_checked({"ip", "link", "set", "lo", "up"}));
  auto network = make_netlink_network();
  const std::string bridge = "brhp";
  ASSERT_TRUE(network->ensure_bridge(bridge));
  ASSERT_TRUE(run_checked({"ip", "addr", "add", "10.77.0.1/24", "dev", bridge}));
  hv_.reset();
  hv_ = make(system_clock(), 1 << 20, network.get());
  ASSERT_TRUE(hv_);
  // Whatever happens below, the VM goes before the namespace and its Network do.
  struct Cleanup {
    HypervisorPtr& hv;
    ~Cleanup() {
      if (!hv) return;
      (void)hv->force_off("brnic");
      for (int i = 0; i < 100 && hv->status("brnic") && is_active(hv->status("brnic")->state); ++i)
        std::this_thread::sleep_for(100ms);
      (void)hv->undefine("brnic");
      hv.reset();
    }
  } cleanup{hv_};
  boot("brnic");
  if (HasFatalFailure()) return;
  int round = 0;
  // Runs `cmd` in the guest; what it printed between the tags.
  auto guest = [&](const std::string& cmd, std::chrono::seconds limit = 30s) {
    const std::string tag = "BR" + std::to_string(++round);
    EXPECT_TRUE(hv_->console_write("brnic", "echo " + tag + "-$(" + cmd + ")-END\n"));
    EXPECT_TRUE(wait_console("brnic", tag + "-", 2, limit)) << tail("brnic");
    std::string t = tail("brnic");
    auto at = t.rfind(tag + "-");
    auto end = t.find("-END", at);
    if (at == std::string::npos || end == std::string::npos) return std::string("?");
    return t.substr(at + tag.size() + 1, end - at - tag.size() - 1);
  };

  model::NicSpec want;
  want.mode = model::NicMode::bridge;
  want.bridge = bridge;
  want.mac = "52:54:00:12:34:88";
  auto nic = hv_->attach_nic("brnic", want);
  ASSERT_TRUE(nic) << nic.error().to_string();
  EXPECT_GT(nic->hotplug_slot, 0u);
  // The tap is on the bridge, on the host side.
  auto ports = run_checked({"ip", "-o", "link", "show", "master", bridge});
  ASSERT_TRUE(ports) << ports.error().to_string();
  EXPECT_NE(ports->find("master " + bridge), std::string::npos) << *ports;
  // The guest's new interface, by its MAC.
  const std::string find_if =
      "for i in /sys/class/net/*; do [ \"$(cat $i/address)\" = 52:54:00:12:34:88 ] && "
      "echo ${i##*/}; done";
  std::string ifname;
  for (int i = 0; i < 60 && (ifname.empty() || ifname == "?"); ++i) {
    ifname = guest(find_if);
    if (ifname.empty()) std::this_thread::sleep_for(500ms);
  }
  ASSERT_FALSE(ifname.empty()) << tail("brnic");
  ASSERT_NE(ifname, "?") << tail("brnic");
  // Traffic over it: the guest pings the bridge's address on the host.
  guest("ip link set " + ifname + " up; ip addr add 10.77.0.2/24 dev " + ifname + "; echo ok");
  std::string pinged;
  for (int i = 0; i < 5 && pinged != "0"; ++i)
    pinged = guest("ping -c 2 -W 3 10.77.0.1 >/dev/null 2>&1; echo $?", 60s);
  EXPECT_EQ(pinged, "0") << "the guest does not reach the host over the bridge:\n" << tail("brnic");

  ASSERT_TRUE(hv_->detach_nic("brnic", want.mac));
  std::string left;
  for (int i = 0; i < 60 && left != "0"; ++i) {
    left = guest("grep -l 52:54:00:12:34:88 /sys/class/net/*/address 2>/dev/null | wc -l");
    if (left != "0") std::this_thread::sleep_for(500ms);
  }
  EXPECT_EQ(left, "0") << tail("brnic");
  auto after = run_checked({"ip", "-o", "link", "show", "master", bridge});
  ASSERT_TRUE(after) << after.error().to_string();
  EXPECT_EQ(after->find("master " + bridge), std::string::npos)
      << "the tap outlived the detach: " << *after;
}

TEST_F(QemuDriverTest, GuestKernelPanicIsReportedAsCrashed) {
  // The VM has a pvpanic device; the guest's pvpanic driver tells QEMU about the panic
  // that sysrq-c triggers, QEMU emits GUEST_PANICKED and the driver reports the VM crashed.
  boot("panic1");
  ASSERT_TRUE(hv_->console_write("panic1", "echo c > /proc/sysrq-trigger\n"));
  EXPECT_TRUE(wait_console("panic1", "Kernel panic", 1, 60s)) << tail("panic1");
  ASSERT_TRUE(wait_state("panic1", VmState::crashed, 60s)) << tail("panic1");
  // QEMU's default panic action shuts it down; the driver records that exit as the panic.
  std::optional<VmExit> exit;
  for (int i = 0; i < 600 && !exit; ++i) {
    auto st = hv_->status("panic1");
    ASSERT_TRUE(st);
    EXPECT_EQ(st->state, VmState::crashed);
    exit = st->last_exit;
    if (!exit) std::this_thread::sleep_for(100ms);
  }
  ASSERT_TRUE(exit) << "the panicked QEMU's exit was never recorded";
  EXPECT_EQ(exit->reason, "guest-panicked");
  EXPECT_EQ(hv_->status("panic1")->pid, 0);
}

// The guest watchdog (hardware profile v3): the guest arms its i6300esb and never feeds it
// again, as a hung guest would (test/common/tiny_watchdog.h); QEMU's action runs and the
// driver reports it.
constexpr const char* kArmWatchdog = test::kArmTinyWatchdog;

TEST_F(QemuDriverTest, WatchdogResetsAHungGuestInPlaceAndIsReported) {
  struct Seen {
    std::mutex mu;
    std::vector<VmEvent> events;
  };
  auto seen = std::make_shared<Seen>();
  hv_->watch([seen](const VmEvent& e) {
    std::lock_guard lk(seen->mu);
    seen->events.push_back(e);
  });
  auto spec = tiny("wd1");
  spec.watchdog = model::Watchdog{model::WatchdogAction::reset};
  ASSERT_TRUE(hv_->define(spec));
  ASSERT_TRUE(hv_->start("wd1"));
  ASSERT_TRUE(wait_console("wd1", "STRATA-READY", 1)) << tail("wd1");
  ASSERT_TRUE(shell_ready("wd1")) << tail("wd1");
  const int pid = hv_->status("wd1")->pid;
  ASSERT_TRUE(hv_->console_write("wd1", kArmWatchdog));
  ASSERT_TRUE(wait_console("wd1", "WD-2-ARMED", 1, 30s)) << tail("wd1");
  // QEMU resets the guest: it boots again in the same QEMU.
  ASSERT_TRUE(wait_console("wd1", "STRATA-READY", 2)) << tail("wd1");
  auto st = hv_->status("wd1");
  ASSERT_TRUE(st);
  EXPECT_EQ(st->state, VmState::running);
  EXPECT_EQ(st->pid, pid);
  std::lock_guard lk(seen->mu);
  auto fired = std::find_if(seen->events.begin(), seen->events.end(),
                            [](const VmEvent& e) { return e.detail == "WATCHDOG reset"; });
  ASSERT_NE(fired, seen->events.end()) << "no WATCHDOG event";
  EXPECT_EQ(fired->vm, "wd1");
  // The state file records the device (a restart or a migration keeps the hardware).
  std::string state = slurp(state_dir_ + "/vms/wd1/state.json");
  EXPECT_NE(state.find("\"watchdog\": \"i6300esb\""), std::string::npos) << state;
}

TEST_F(QemuDriverTest, WatchdogPowerOffIsACrashWithItsReason) {
  auto spec = tiny("wd2");
  spec.watchdog = model::Watchdog{model::WatchdogAction::poweroff};
  ASSERT_TRUE(hv_->define(spec));
  ASSERT_TRUE(hv_->start("wd2"));
  ASSERT_TRUE(wait_console("wd2", "STRATA-READY", 1)) << tail("wd2");
  ASSERT_TRUE(shell_ready("wd2")) << tail("wd2");
  ASSERT_TRUE(hv_->console_write("wd2", kArmWatchdog));
  ASSERT_TRUE(wait_state("wd2", VmState::crashed, 60s)) << tail("wd2");
  std::optional<VmExit> exit;
  for (int i = 0; i < 100 && !exit; ++i) {
    exit = hv_->status("wd2")->last_exit;
    if (!exit) std::this_thread::sleep_for(100ms);
  }
  ASSERT_TRUE(exit) << "the exit was never recorded";
  EXPECT_EQ(exit->reason, "watchdog");
}

// Disk resize: live (QMP block_resize; the guest's virtio-blk sees the new capacity at
// once), grow only, then offline (qemu-img resize) on the stopped VM, which boots with the
// new size; the spec records each.
TEST_F(QemuDriverTest, DiskGrowsLiveAndOfflineAndNeverShrinks) {
  boot("grow1");
  auto sectors = [&](int n) {
    // The echoed command holds "SEC-$(...)"; only the output holds "SEC-<digits>".
    const std::string tag = "SEC" + std::to_string(n);
    EXPECT_TRUE(
        hv_->console_write("grow1", "echo " + tag + "-$(cat /sys/block/vda/size)-END\n"));
    EXPECT_TRUE(wait_console("grow1", "-END", static_cast<size_t>(2 * n), 30s)) << tail("grow1");
    std::string t = tail("grow1");
    auto at = t.rfind(tag + "-");
    if (at == std::string::npos) return std::string("?");
    auto end = t.find("-END", at);
    return t.substr(at + tag.size() + 1, end - at - tag.size() - 1);
  };
  const uint64_t base = 64ull << 20;  // the tiny base image's virtual size
  EXPECT_EQ(sectors(1), std::to_string(base / 512));
  auto grown = hv_->resize_disk("grow1", "root", 128ull << 20);
  ASSERT_TRUE(grown) << grown.error().to_string();
  EXPECT_EQ(*grown, 128ull << 20);
  EXPECT_EQ(sectors(2), std::to_string((128ull << 20) / 512));
  EXPECT_EQ(hv_->status("grow1")->spec.disks[0].size_bytes, 128ull << 20);
  auto shrink = hv_->resize_disk("grow1", "root", 96ull << 20);
  ASSERT_FALSE(shrink);
  EXPECT_EQ(shrink.error().field, "size_bytes");
  EXPECT_EQ(hv_->resize_disk("grow1", "swap", 1ull << 30).error().code, ErrorCode::not_found);
  EXPECT_TRUE(hv_->resize_disk("grow1", "root", 128ull << 20));  // the same size: nothing to do

  ASSERT_TRUE(hv_->force_off("grow1"));
  ASSERT_TRUE(wait_state("grow1", VmState::stopped));
  auto offline = hv_->resize_disk("grow1", "root", 192ull << 20);
  ASSERT_TRUE(offline) << offline.error().to_string();
  // A restarted agent reads the size from the VM's spec file.
  hv_.reset();
  hv_ = make(system_clock());
  ASSERT_TRUE(hv_->recover());
  EXPECT_EQ(hv_->status("grow1")->spec.disks[0].size_bytes, 192ull << 20);
  ASSERT_TRUE(hv_->start("grow1"));
  ASSERT_TRUE(wait_console("grow1", "STRATA-READY", 2)) << tail("grow1");
  ASSERT_TRUE(shell_ready("grow1")) << tail("grow1");
  EXPECT_EQ(sectors(3), std::to_string((192ull << 20) / 512));
}

// Hot-plug: a disk and a NIC join the running guest on hot-plug slots (its kernel sees them
// at once), the disk leaves again (the guest releases it; its file is deleted), devices placed
// at boot stay while it runs, and after an agent restart and a cold start the attached NIC
// is on its slot's root port still (the layout a migration target builds).
TEST_F(QemuDriverTest, DisksAndNicsHotPlugOnTheirSlotsAndStayThere) {
  boot("hp1");
  // Runs `cmd` in the guest and returns what it printed between OUT<n>- and -END.
  int round = 0;
  auto guest = [&](const std::string& cmd) {
    const std::string tag = "OUT" + std::to_string(++round);
    EXPECT_TRUE(hv_->console_write("hp1", "echo " + tag + "-$(" + cmd + ")-END\n"));
    EXPECT_TRUE(wait_console("hp1", tag + "-", 2, 30s)) << tail("hp1");
    std::string t = tail("hp1");
    auto at = t.rfind(tag + "-");
    auto end = t.find("-END", at);
    if (at == std::string::npos || end == std::string::npos) return std::string("?");
    return t.substr(at + tag.size() + 1, end - at - tag.size() - 1);
  };
  auto until = [&](const std::string& cmd, const std::string& want) {
    for (int i = 0; i < 60; ++i) {
      if (guest(cmd) == want) return true;
      std::this_thread::sleep_for(500ms);
    }
    return false;
  };

  auto disk = hv_->attach_disk("hp1", {"data1", "", 32ull << 20, false, false, "", ""});
  ASSERT_TRUE(disk) << disk.error().to_string();
  EXPECT_EQ(disk->hotplug_slot, 1u);
  EXPECT_TRUE(until("cat /sys/block/vdb/size 2>/dev/null", std::to_string((32ull << 20) / 512)))
      << tail("hp1");
  // A retried attach answers the disk as it is.
  auto again = hv_->attach_disk("hp1", {"data1", "", 32ull << 20, false, false, "", ""});
  ASSERT_TRUE(again) << again.error().to_string();
  EXPECT_EQ(again->hotplug_slot, 1u);

  model::NicSpec want;
  want.mac = "52:54:00:12:34:77";
  auto nic = hv_->attach_nic("hp1", want);
  ASSERT_TRUE(nic) << nic.error().to_string();
  EXPECT_EQ(nic->hotplug_slot, 2u);
  EXPECT_TRUE(until("grep -l 52:54:00:12:34:77 /sys/class/net/*/address | wc -l", "1"))
      << tail("hp1");

  // Placed at boot: stays while the VM runs. The boot disk never goes.
  auto root = hv_->detach_disk("hp1", "root");
  ASSERT_FALSE(root);
  EXPECT_EQ(root.error().code, ErrorCode::failed_precondition);
  const std::string boot_mac = hv_->status("hp1")->spec.nics[0].mac;
  auto boot_nic = hv_->detach_nic("hp1", boot_mac);
  ASSERT_FALSE(boot_nic);
  EXPECT_EQ(boot_nic.error().code, ErrorCode::failed_precondition) << boot_nic.error().to_string();

  auto file = store_->disk_info("hp1", "data1");
  ASSERT_TRUE(file) << file.error().to_string();
  auto gone = hv_->detach_disk("hp1", "data1");
  ASSERT_TRUE(gone) << gone.error().to_string();
  EXPECT_TRUE(until("ls /sys/block | grep -c vdb", "0")) << tail("hp1");
  EXPECT_FALSE(fs::exists(file->path));
  EXPECT_TRUE(hv_->detach_disk("hp1", "data1"));  // a retried detach: nothing to do
  auto spec = hv_->status("hp1")->spec;
  ASSERT_EQ(spec.disks.size(), 1u);
  ASSERT_EQ(spec.nics.size(), 2u);
  EXPECT_EQ(spec.nics[1].hotplug_slot, 2u);

  // A restarted agent reads the slots back; a cold start puts the NIC on rp2 again.
  hv_.reset();
  hv_ = make(system_clock());
  ASSERT_TRUE(hv_->recover());
  EXPECT_EQ(hv_->status("hp1")->spec.nics[1].hotplug_slot, 2u);
  ASSERT_TRUE(hv_->force_off("hp1"));
  ASSERT_TRUE(wait_state("hp1", VmState::stopped));
  ASSERT_TRUE(hv_->start("hp1"));
  ASSERT_TRUE(wait_console("hp1", "STRATA-READY", 2)) << tail("hp1");
  ASSERT_TRUE(shell_ready("hp1")) << tail("hp1");
  const int pid = hv_->status("hp1")->pid;
  std::ifstream cmdline("/proc/" + std::to_string(pid) + "/cmdline");
  std::string args((std::istreambuf_iterator<char>(cmdline)), std::istreambuf_iterator<char>());
  EXPECT_NE(args.find("id=nic-rp2,mac=52:54:00:12:34:77,bus=rp2"), std::string::npos) << args;
  EXPECT_TRUE(until("grep -l 52:54:00:12:34:77 /sys/class/net/*/address | wc -l", "1"))
      << tail("hp1");
  // Offline, the boot-time NIC may go too.
  ASSERT_TRUE(hv_->force_off("hp1"));
  ASSERT_TRUE(wait_state("hp1", VmState::stopped));
  ASSERT_TRUE(hv_->detach_nic("hp1", boot_mac));
  EXPECT_EQ(hv_->status("hp1")->spec.nics.size(), 1u);
}

TEST_F(QemuDriverTest, UndefineRemovesEveryFile) {
  boot("gone1");
  EXPECT_EQ(hv_->undefine("gone1").error().code, ErrorCode::failed_precondition);
  auto dup = tiny("gone1");
  EXPECT_EQ(hv_->define(dup).error().code, ErrorCode::already_exists);
  dup.name = "gone2";
  dup.uuid = hv_->status("gone1")->spec.uuid;
  EXPECT_EQ(hv_->define(dup).error().code, ErrorCode::already_exists);
  ASSERT_TRUE(hv_->force_off("gone1"));
  ASSERT_TRUE(hv_->undefine("gone1"));
  EXPECT_FALSE(fs::exists(state_dir_ + "/vms/gone1"));
  EXPECT_FALSE(fs::exists(store_->root() + "/vms/gone1"));
  EXPECT_EQ(hv_->status("gone1").error().code, ErrorCode::not_found);
  EXPECT_TRUE(fs::is_empty(state_dir_ + "/vms"));
}

// Images pushed by the catalog carry their kind: a kernel is never opened as a disk base
// (QEMU would probe its format), a disk image never passed as -kernel. Nothing is created.
TEST_F(QemuDriverTest, DefineRefusesAnImageUsedAsAnotherKind) {
  ASSERT_TRUE(store_->import_image("kind-kernel-" + std::to_string(::getpid()),
                                   manifest_["TINY_KERNEL"], "kernel"));
  ASSERT_TRUE(store_->import_image("kind-disk-" + std::to_string(::getpid()),
                                   manifest_["TINY_BASE"], "disk"));
  const std::string kernel = "kind-kernel-" + std::to_string(::getpid());
  const std::string disk = "kind-disk-" + std::to_string(::getpid());
  auto as_disk = tiny("kind1");
  as_disk.disks[0].base_image = kernel;
  auto r = hv_->define(as_disk);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::invalid_argument);
  EXPECT_EQ(r.error().field, "disks[0].base_image") << r.error().to_string();
  auto as_kernel = tiny("kind1");
  as_kernel.kernel_boot->kernel = disk;
  r = hv_->define(as_kernel);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().field, "kernel_boot.kernel") << r.error().to_string();
  auto as_initrd = tiny("kind1");
  as_initrd.kernel_boot->initrd = kernel;
  r = hv_->define(as_initrd);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().field, "kernel_boot.initrd") << r.error().to_string();
  EXPECT_FALSE(fs::exists(state_dir_ + "/vms/kind1"));
  EXPECT_FALSE(fs::exists(store_->root() + "/vms/kind1"));
  auto fine = tiny("kind1");
  fine.kernel_boot->kernel = kernel;
  fine.disks[0].base_image = disk;
  EXPECT_TRUE(hv_->define(fine));
  ASSERT_TRUE(hv_->undefine("kind1"));
}

TEST_F(QemuDriverTest, ConsoleLogIsRotated) {
  hv_ = make(system_clock(), 4096);
  boot("log1");
  ASSERT_TRUE(hv_->console_write("log1", "seq 1 3000; echo LOGGED-$((3*3))\n"));
  std::string log = state_dir_ + "/vms/log1/console.log";
  bool rotated = false;
  for (int i = 0; i < 600 && !rotated; ++i) {
    rotated = fs::exists(log + ".1");
    std::this_thread::sleep_for(100ms);
  }
  EXPECT_TRUE(rotated);
  // The line may sit in the live log or, when the supervisor rotates right after it was
  // written (seen under load), in the rotated one: look in both.
  auto both = [&] {
    std::ifstream old_log(log + ".1");
    std::string text((std::istreambuf_iterator<char>(old_log)), std::istreambuf_iterator<char>());
    return text + tail("log1");
  };
  bool logged = false;
  for (int i = 0; i < 600 && !logged; ++i) {
    logged = both().find("LOGGED-9") != std::string::npos;
    if (!logged) std::this_thread::sleep_for(200ms);
  }
  EXPECT_TRUE(logged) << both();
  // Once the output stops, the supervisor keeps the live log under the bound.
  for (int i = 0; i < 100 && fs::file_size(log) > 4096; ++i) std::this_thread::sleep_for(100ms);
  EXPECT_LE(fs::file_size(log), 4096u);
}

}  // namespace
}  // namespace strata::agent::qemu
