// The driver's start, shutdown, crash and recovery paths without QEMU: the real driver and
// the real shim start fake_qemu_main.cc in QEMU's place, which serves a QMP scenario
// recorded from QEMU 7.2 (transcripts/*.scenario) and fails the test on any command the
// scenario does not expect. Real-guest versions of these paths: qemu_hypervisor_test.cc.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "../../../common/test_util.h"
#include "ha_lease.h"
#include "qemu_hypervisor.h"
#include "strata/agent/image_store.h"
#include "strata/agent/qemu_hypervisor.h"

namespace strata::agent::qemu {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using model::VmState;

// Disks are empty files: the fake QEMU never opens them.
class StubImageStore final : public ImageStore {
 public:
  explicit StubImageStore(std::string root) : root_(std::move(root)) {
    fs::create_directories(root_);
  }
  const std::string& root() const override { return root_; }
  std::vector<ImageInfo> list_images() const override { return {}; }
  Result<ImageInfo> image(const std::string& name) const override {
    return not_found("no image " + name);
  }
  Result<ImageInfo> import_image(const std::string&, const std::string&,
                                 const std::string&) override {
    return internal_error("unused");
  }
  Status delete_image(const std::string&) override { return {}; }
  Result<ImageInfo> create_overlay(const std::string&, const std::string&, const std::string&,
                                   uint64_t) override {
    return internal_error("unused");
  }
  Result<ImageInfo> create_blank(const std::string& vm, const std::string& disk,
                                 uint64_t) override {
    std::ofstream(path(vm, disk)).put('\0');
    return disk_info(vm, disk);
  }
  Result<ImageInfo> disk_info(const std::string& vm, const std::string& disk) const override {
    ImageInfo i;
    i.name = disk;
    i.path = path(vm, disk);
    i.format = "qcow2";
    return i;
  }
  Status resize_disk(const std::string&, const std::string&, uint64_t) override { return {}; }
  Status delete_vm_disks(const std::string& vm) override {
    for (auto& e : fs::directory_iterator(root_))
      if (e.path().filename().string().rfind(vm + "-", 0) == 0) fs::remove(e.path());
    return {};
  }

 private:
  std::string path(const std::string& vm, const std::string& disk) const {
    return root_ + "/" + vm + "-" + disk + ".qcow2";
  }
  std::string root_;
};

using test::slurp;

std::string transcript(const std::string& name) {
  return slurp(std::string(STRATA_TEST_SRC_DIR) + "/transcripts/" + name);
}

// The recorded start of a VM: greeting, capabilities, query-status (running).
std::string recorded_start() {
  std::string t = transcript("forceoff-7.2.scenario");
  auto q = t.find("> {\"execute\": \"quit\"}");
  EXPECT_NE(q, std::string::npos);
  return t.substr(0, q);
}

class QemuDriverFakeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() /
            ("stqf-" + std::to_string(::getpid()) + "-" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
    images_ = std::make_unique<StubImageStore>(root_ + "/img");
    hv_ = make();
  }
  void TearDown() override {
    if (hv_) {
      for (auto& st : hv_->list())
        if (st.pid > 0) ::kill(st.pid, SIGKILL);
      for (auto& st : hv_->list()) wait_state(st.spec.name, {VmState::crashed, VmState::stopped});
    }
    hv_.reset();
    for (auto& f : failures_files_)
      EXPECT_FALSE(fs::exists(f)) << "the fake QEMU saw unexpected commands: " << slurp(f);
    fs::remove_all(root_);
  }

  std::unique_ptr<QemuHypervisor> make() {
    QemuOptions o;
    o.state_dir = root_ + "/state";
    o.qemu_binary = STRATA_FAKE_QEMU;
    o.images = images_.get();
    o.shim_exe = STRATA_TEST_SHIM;
    if (!accelerator_.empty()) o.accelerator = accelerator_;
    auto hv = make_qemu_hypervisor(o);
    EXPECT_TRUE(hv) << hv.error().to_string();
    return std::unique_ptr<QemuHypervisor>(static_cast<QemuHypervisor*>(hv->release()));
  }

  // The accelerator the driver records for new VMs (empty: QemuOptions' default). The
  // migration transcripts were recorded copying RAM live: the driver does that for KVM (a
  // TCG VM on QEMU < 9 is paused for the RAM copy, which these transcripts do not have).
  std::string accelerator_;

  // Defines a VM whose fake QEMU will replay `scenario`.
  void define(const std::string& name, const std::string& scenario) {
    model::VmSpec s;
    s.name = name;
    s.vnc = false;
    s.disks.push_back({"root", "", 1 << 20, true, false, "", ""});
    auto st = hv_->define(s);
    ASSERT_TRUE(st) << st.error().to_string();
    std::string dir = root_ + "/state/vms/" + name;
    std::ofstream(dir + "/fake-qmp.scenario") << scenario;
    failures_files_.push_back(dir + "/fake-qmp.failures");
  }

  bool wait_state(const std::string& name, std::initializer_list<VmState> want) {
    for (int i = 0; i < 1200; ++i) {  // a generous bound: only a broken driver waits this long
      auto st = hv_->status(name);
      if (st && std::find(want.begin(), want.end(), st->state) != want.end()) return true;
      std::this_thread::sleep_for(50ms);
    }
    return false;
  }

  std::string root_;
  std::unique_ptr<StubImageStore> images_;
  std::unique_ptr<QemuHypervisor> hv_;
  std::vector<std::string> failures_files_;
};

TEST_F(QemuDriverFakeTest, StartThenGuestPowerdown) {
  define("pd", transcript("powerdown-7.2.scenario"));
  ASSERT_TRUE(hv_->start("pd"));
  auto st = hv_->status("pd");
  ASSERT_TRUE(st);
  EXPECT_EQ(st->state, VmState::running);
  EXPECT_GT(st->pid, 0);
  // system_powerdown, POWERDOWN, the guest's SHUTDOWN, QEMU exits 0.
  ASSERT_TRUE(hv_->shutdown("pd", 60s));
  st = hv_->status("pd");
  EXPECT_EQ(st->state, VmState::stopped);
  ASSERT_TRUE(st->last_exit);
  EXPECT_FALSE(st->last_exit->signaled);
  EXPECT_EQ(st->last_exit->code, 0);
  EXPECT_EQ(st->last_exit->reason, "guest-shutdown");
}

TEST_F(QemuDriverFakeTest, StartThenForceOff) {
  define("fo", transcript("forceoff-7.2.scenario"));
  ASSERT_TRUE(hv_->start("fo"));
  ASSERT_TRUE(hv_->force_off("fo"));
  auto st = hv_->status("fo");
  EXPECT_EQ(st->state, VmState::stopped);
  ASSERT_TRUE(st->last_exit);
  EXPECT_EQ(st->last_exit->reason, "host-qmp-quit");
}

// The guest agent's replies come from inside the guest: a tenant chooses them. A sync reply
// whose "return" is a string used to make nlohmann's value() throw out of guest_agent() (on
// the guest facts poller's thread: std::terminate, the agent down with every VM's
// management), and a number out of int64's range was undefined behaviour. Each is now a
// reply that is not the sync, so the call ends in its deadline with an error.
TEST_F(QemuDriverFakeTest, HostileGuestAgentSyncRepliesAreErrorsNotCrashes) {
  define("ga", transcript("forceoff-7.2.scenario"));
  ASSERT_TRUE(hv_->start("ga"));
  const std::string sock = vm_files(root_ + "/state/vms/ga").qga_socket;
  const std::vector<std::string> replies = {
      R"({"return":"x"})",  R"({"return":1e300})",          R"({"return":18446744073709551615})",
      R"({"return":null})", R"({"return":[1]})",            R"({"return":{"a":1}})",
      R"([1,2,3])",         std::string(100000, '[') + "1" + std::string(100000, ']'),
  };
  for (const auto& reply : replies) {
    ::unlink(sock.c_str());
    int srv = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT_GE(srv, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    ASSERT_LT(sock.size(), sizeof a.sun_path);
    std::memcpy(a.sun_path, sock.c_str(), sock.size());
    ASSERT_EQ(::bind(srv, reinterpret_cast<sockaddr*>(&a), sizeof a), 0) << std::strerror(errno);
    ASSERT_EQ(::listen(srv, 1), 0);
    // The hostile guest: answers the sync with `reply`, then stays silent.
    std::thread guest([srv, reply] {
      int c = ::accept(srv, nullptr, nullptr);
      if (c < 0) return;
      char buf[4096];
      std::string got;
      while (got.find('\n') == std::string::npos) {
        ssize_t n = ::read(c, buf, sizeof buf);
        if (n <= 0) break;
        got.append(buf, static_cast<size_t>(n));
      }
      std::string out = "\xff" + reply + "\n";
      (void)!::write(c, out.data(), out.size());
      while (::read(c, buf, sizeof buf) > 0) {
      }
      ::close(c);
    });
    Result<std::string> r = internal_error("not called");
    EXPECT_NO_THROW(r = hv_->guest_agent("ga", R"({"execute":"guest-ping"})", 250ms))
        << reply.substr(0, 60);
    EXPECT_FALSE(r) << reply.substr(0, 60);
    if (!r) {
      EXPECT_EQ(r.error().code, ErrorCode::deadline_exceeded)
          << reply.substr(0, 60) << ": " << r.error().to_string();
    }
    guest.join();
    ::close(srv);
  }
  ASSERT_TRUE(hv_->force_off("ga"));
}

TEST_F(QemuDriverFakeTest, QemuKilledIsCrashed) {
  define("kill", recorded_start() + "! stall\n");
  ASSERT_TRUE(hv_->start("kill"));
  int pid = hv_->status("kill")->pid;
  ASSERT_GT(pid, 0);
  ASSERT_EQ(::kill(pid, SIGKILL), 0);
  ASSERT_TRUE(wait_state("kill", {VmState::crashed}));
  auto st = hv_->status("kill");
  ASSERT_TRUE(st->last_exit);
  EXPECT_TRUE(st->last_exit->signaled);
  EXPECT_EQ(st->last_exit->code, SIGKILL);
  EXPECT_EQ(st->last_exit->reason, "qemu-killed-by-signal");
}

// The agent restarts; QEMU lives but its monitor does not answer (busy): the VM stays
// running and commands say "retry". Then QEMU dies: now it is crashed.
TEST_F(QemuDriverFakeTest, RecoverWithBusyMonitorIsNotDeathButQemuGoneIs) {
  define("busy", recorded_start() + "! client-closes\n! stall\n");
  ASSERT_TRUE(hv_->start("busy"));
  int pid = hv_->status("busy")->pid;
  hv_.reset();  // the agent stops; its QMP connection closes
  hv_ = make();
  ASSERT_TRUE(hv_->recover());
  auto st = hv_->status("busy");
  ASSERT_TRUE(st);
  EXPECT_EQ(st->state, VmState::running);
  EXPECT_EQ(st->pid, pid);
  auto paused = hv_->pause("busy");
  ASSERT_FALSE(paused);
  EXPECT_EQ(paused.error().code, ErrorCode::unavailable) << paused.error().to_string();
  ASSERT_EQ(::kill(pid, SIGKILL), 0);
  ASSERT_TRUE(wait_state("busy", {VmState::crashed}));
  EXPECT_TRUE(hv_->status("busy")->last_exit->signaled);
}

// The agent restarts and the monitor answers: re-attached, state from query-status.
TEST_F(QemuDriverFakeTest, RecoverReattaches) {
  std::string start = recorded_start();
  define("back", start + "! client-closes\n" + start + "! stall\n");
  ASSERT_TRUE(hv_->start("back"));
  int pid = hv_->status("back")->pid;
  hv_.reset();
  hv_ = make();
  ASSERT_TRUE(hv_->recover());
  auto st = hv_->status("back");
  ASSERT_TRUE(st);
  EXPECT_EQ(st->state, VmState::running);
  EXPECT_EQ(st->pid, pid);
  EXPECT_EQ(::kill(pid, 0), 0);
}

// QEMU died while the agent was down: recover() reports it crashed, from the shim's record.
TEST_F(QemuDriverFakeTest, QemuGoneWhileAgentDownIsCrashed) {
  define("gone", recorded_start() + "! client-closes\n! stall\n");
  ASSERT_TRUE(hv_->start("gone"));
  int pid = hv_->status("gone")->pid;
  hv_.reset();
  ASSERT_EQ(::kill(pid, SIGKILL), 0);
  // Until the shim has recorded the exit, QEMU may still be dying (then recover() would
  // re-attach and the supervisor see the death a moment later).
  std::string exit_json = root_ + "/state/vms/gone/exit.json";
  for (int i = 0; i < 1200 && !fs::exists(exit_json); ++i) std::this_thread::sleep_for(50ms);
  hv_ = make();
  ASSERT_TRUE(hv_->recover());
  auto st = hv_->status("gone");
  ASSERT_TRUE(st);
  EXPECT_EQ(st->state, VmState::crashed);
  ASSERT_TRUE(st->last_exit);
  EXPECT_TRUE(st->last_exit->signaled);
}

// HA leases through the driver (ha_lease.h): a heartbeat's grant renews the named VMs'
// leases and confirms them (their QEMU runs under a shim that enforces leases); a lease
// that runs out stops QEMU (reason ha-lease-expired) and keeps the VM from starting until
// the next grant; a VM the grant leaves out loses its lease.
TEST_F(QemuDriverFakeTest, HaLeaseRenewedConfirmedAndEnforced) {
  define("ha", recorded_start() + "! stall\n");
  ASSERT_TRUE(hv_->start("ha"));
  const std::string lease_file = root_ + "/state/vms/ha/" + kLeaseFile;
  EXPECT_FALSE(fs::exists(lease_file)) << "no lease before the first grant";
  EXPECT_EQ(hv_->renew_ha_leases({"ha", "not-here"}, 60s), std::vector<std::string>{"ha"});
  EXPECT_EQ(read_lease_verdict(root_ + "/state/vms/ha"), LeaseVerdict::valid);

  // The host hears nothing more: a short lease runs out and the shim stops QEMU.
  EXPECT_EQ(hv_->renew_ha_leases({"ha"}, 300ms), std::vector<std::string>{"ha"});
  ASSERT_TRUE(wait_state("ha", {VmState::crashed, VmState::stopped}));
  auto st = hv_->status("ha");
  ASSERT_TRUE(st->last_exit);
  EXPECT_EQ(st->last_exit->reason, "ha-lease-expired");
  EXPECT_TRUE(st->last_exit->signaled);

  auto refused = hv_->start("ha");
  ASSERT_FALSE(refused) << "started with its lease run out";
  EXPECT_EQ(refused.error().code, ErrorCode::failed_precondition);
  EXPECT_NE(refused.error().message.find("lease"), std::string::npos);

  // The manager's next grant renews it: it starts, and stays up.
  EXPECT_EQ(hv_->renew_ha_leases({"ha"}, 60s), std::vector<std::string>{"ha"});
  ASSERT_TRUE(hv_->start("ha"));
  EXPECT_EQ(hv_->status("ha")->state, VmState::running);

  // Left out of a grant (no longer HA): no lease, nothing enforced, nothing confirmed.
  EXPECT_TRUE(hv_->renew_ha_leases({}, 60s).empty());
  EXPECT_FALSE(fs::exists(lease_file));
}

// Live migration's failure paths on the source, against QEMU 7.2's recorded answers
// (record.py migrate-fail / mirror-fail): whatever fails, the unwind leaves the VM running
// here, its job ended, and says so.
IncomingInfo recorded_target(const std::string& scenario) {
  IncomingInfo t;
  t.nbd_host = "127.0.0.1";
  t.nbd_port = "10899";
  std::string key = "\"uri\": \"";
  auto p = scenario.find(key);
  if (p != std::string::npos)
    t.migration_uri = scenario.substr(p + key.size(), scenario.find('"', p + key.size()) - p - key.size());
  return t;
}

TEST_F(QemuDriverFakeTest, TargetDiesDuringMigrationKeepsTheVmRunningHere) {
  hv_.reset();
  accelerator_ = "kvm";
  hv_ = make();
  std::string scenario = transcript("migrate-fail-source-7.2.scenario");
  define("mig", scenario);
  ASSERT_TRUE(hv_->start("mig"));
  MigrationPolicy p;
  p.max_bandwidth = 1 << 20;
  std::vector<std::string> phases;
  auto out = hv_->migrate_out("mig", recorded_target(scenario), p,
                              [&](const MigrationProgress& m) { phases.push_back(m.phase); });
  ASSERT_FALSE(out);
  EXPECT_EQ(out.error().code, ErrorCode::unavailable) << out.error().to_string();
  // The target died mid-stream: "Broken pipe" or "Connection reset by peer" (recordings
  // differ in which the source saw first).
  EXPECT_NE(out.error().message.find("Unable to write to socket"), std::string::npos)
      << out.error().message;
  EXPECT_NE(out.error().message.find("keeps running on this host"), std::string::npos);
  ASSERT_FALSE(phases.empty());
  EXPECT_EQ(phases.front(), "mirror");
  EXPECT_EQ(phases.back(), "ram");
  EXPECT_EQ(hv_->status("mig")->state, VmState::running);
  // The job ended: the VM can be driven again (force_off sends the recorded quit).
  ASSERT_TRUE(hv_->force_off("mig"));
}

// Auto-converge asked for: the driver turns QEMU's capability on (the scenario fails the
// test on any other command: record.py migrate-fail-ac); the same failure then unwinds.
// Without it, the capability is turned off explicitly (the scenarios above), since QEMU
// keeps capabilities from one migration to the next.
TEST_F(QemuDriverFakeTest, AutoConvergeIsTurnedOnWhenAskedFor) {
  hv_.reset();
  accelerator_ = "kvm";
  hv_ = make();
  std::string scenario = transcript("migrate-fail-ac-source-7.2.scenario");
  define("mig", scenario);
  ASSERT_TRUE(hv_->start("mig"));
  MigrationPolicy p;
  p.max_bandwidth = 1 << 20;
  p.auto_converge = true;
  auto out = hv_->migrate_out("mig", recorded_target(scenario), p);
  ASSERT_FALSE(out);
  EXPECT_NE(out.error().message.find("keeps running on this host"), std::string::npos)
      << out.error().message;
  EXPECT_EQ(hv_->status("mig")->state, VmState::running);
  ASSERT_TRUE(hv_->force_off("mig"));
}

TEST_F(QemuDriverFakeTest, MirrorFailureKeepsTheVmRunningHere) {
  hv_.reset();
  accelerator_ = "kvm";
  hv_ = make();
  std::string scenario = transcript("mirror-fail-source-7.2.scenario");
  define("mirror", scenario);
  ASSERT_TRUE(hv_->start("mirror"));
  auto out = hv_->migrate_out("mirror", recorded_target(scenario), MigrationPolicy{});
  ASSERT_FALSE(out);
  EXPECT_EQ(out.error().code, ErrorCode::unavailable) << out.error().to_string();
  EXPECT_NE(out.error().message.find("the mirror of disk0 failed: Input/output error"),
            std::string::npos)
      << out.error().message;
  EXPECT_EQ(hv_->status("mirror")->state, VmState::running);
  ASSERT_TRUE(hv_->force_off("mirror"));
}

// The other phases refuse a VM that is not migrating (nothing is sent to QEMU).
TEST_F(QemuDriverFakeTest, ConfirmOrCancelWithoutAMigrationIsRefused) {
  define("idle", recorded_start() + "> {\"execute\": \"quit\"}\n< {\"return\": {}}\n! hangup\n");
  ASSERT_TRUE(hv_->start("idle"));
  EXPECT_EQ(hv_->confirm_out("idle").error().code, ErrorCode::failed_precondition);
  EXPECT_EQ(hv_->cancel_out("idle").error().code, ErrorCode::failed_precondition);
  EXPECT_EQ(hv_->abort_incoming("idle").error().code, ErrorCode::failed_precondition);
  EXPECT_EQ(hv_->finish_incoming("idle").error().code, ErrorCode::failed_precondition);
  ASSERT_TRUE(hv_->force_off("idle"));
}

}  // namespace
}  // namespace strata::agent::qemu
