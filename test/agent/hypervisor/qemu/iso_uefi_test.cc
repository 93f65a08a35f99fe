// Installing from an ISO, UEFI (issue 12) with real TCG guests (label qemu): the tiny guest's
// kernel and initrd on a bootable ISO made in the test by grub-mkrescue (Debian's
// grub-common + grub-pc-bin + grub-efi-amd64-bin + xorriso + mtools: one image that boots
// under SeaBIOS and under OVMF), in the catalog's image store as kind iso; the VM boots
// from its CD-ROM, the medium is changed and ejected while it runs (seen by QMP
// query-block), and kept across a restart of QEMU and of the driver. UEFI: the same ISO
// under OVMF, with the VM's own variables file. Generous timeouts, no timing assertions.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include "../../../common/test_util.h"
#include "qemu_hypervisor.h"
#include "qemu_monitor.h"
#include "strata/agent/image_store.h"
#include "strata/agent/qemu_hypervisor.h"
#include "strata/agent/qemu_user.h"
#include "strata/common/process.h"
#include "vm_dir.h"

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

class IsoUefiTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    manifest_ = read_manifest();
    if (manifest_.count("TINY_KERNEL") == 0) {
      skip_ = "tiny guest image missing: run scripts/guest-images tiny";
      return;
    }
    for (const char* tool : {"grub-mkrescue", "xorriso", "mformat", "qemu-system-x86_64"})
      if (find_executable(tool).empty()) {
        skip_ = std::string("no ") + tool + " (scripts/setup installs it)";
        return;
      }
    if (!fs::exists("/usr/lib/grub/i386-pc") || !fs::exists("/usr/lib/grub/x86_64-efi")) {
      skip_ = "grub-pc-bin / grub-efi-amd64-bin missing (scripts/setup installs them)";
      return;
    }
    root_ = "/tmp/stiso-" + std::to_string(::getpid());
    fs::remove_all(root_);
    fs::create_directories(root_ + "/live/boot/grub");
    fs::create_directories(root_ + "/data");
    fs::copy_file(manifest_["TINY_KERNEL"], root_ + "/live/vmlinuz");
    fs::copy_file(manifest_["TINY_INITRD"], root_ + "/live/initrd.img");
    // grub on the serial console, no menu delay: the guest's own lines follow at once.
    std::ofstream(root_ + "/live/boot/grub/grub.cfg")
        << "serial --unit=0 --speed=115200\nterminal_input serial\nterminal_output serial\n"
           "set timeout=0\nmenuentry tiny {\n  echo STRATA-GRUB-ON-CDROM\n  linux /vmlinuz "
        << manifest_["TINY_CMDLINE"] << "\n  initrd /initrd.img\n}\n";
    std::ofstream(root_ + "/data/marker.txt") << "second medium\n";
    for (auto argv :
         {std::vector<std::string>{"grub-mkrescue", "-o", root_ + "/live.iso", root_ + "/live"},
          std::vector<std::string>{"xorriso", "-as", "mkisofs", "-quiet", "-o", root_ + "/data.iso",
                                   root_ + "/data"}}) {
      if (auto r = run_checked(argv); !r) {
        skip_ = "building the test ISOs failed: " + r.error().to_string();
        return;
      }
    }
    auto store = make_image_store(root_ + "/img");
    if (!store) {
      skip_ = store.error().to_string();
      return;
    }
    store_ = std::move(*store);
    for (auto [name, path, kind] : {std::tuple{"live-iso", root_ + "/live.iso", "iso"},
                                    std::tuple{"data-iso", root_ + "/data.iso", "iso"},
                                    std::tuple{"tiny-kernel", manifest_["TINY_KERNEL"], "kernel"},
                                    std::tuple{"tiny-base", manifest_["TINY_BASE"], "disk"}}) {
      if (auto r = store_->import_image(name, path, kind); !r) {
        skip_ = r.error().to_string();
        return;
      }
    }
  }
  static void TearDownTestSuite() {
    store_.reset();
    if (!root_.empty()) fs::remove_all(root_);
  }

  void SetUp() override {
    if (!skip_.empty()) GTEST_SKIP() << "SKIPPED: " << skip_;
    state_dir_ =
        root_ + "/state-" + ::testing::UnitTest::GetInstance()->current_test_info()->name();
    hv_ = make();
  }

  void TearDown() override {
    if (state_dir_.empty()) return;
    if (!hv_) hv_ = make();
    if (!hv_) return;
    (void)hv_->recover();
    for (auto& st : hv_->list()) {
      if (is_active(st.state)) (void)hv_->force_off(st.spec.name);
      (void)hv_->undefine(st.spec.name, true);
    }
    hv_.reset();
  }

  HypervisorPtr make() {
    QemuOptions o;
    o.state_dir = state_dir_;
    o.accelerator = "tcg";
    o.images = store_.get();
    o.shim_exe = STRATA_TEST_SHIM;
    auto user = decide_qemu_user(std::nullopt, ::geteuid(), lookup_system_user);
    EXPECT_TRUE(user) << user.error().to_string();
    if (user) o.run_as = user->user;
    auto h = make_qemu_hypervisor(std::move(o));
    EXPECT_TRUE(h) << h.error().to_string();
    return h ? std::move(*h) : nullptr;
  }

  // An installer-shaped VM: a blank disk, the ISO in the CD-ROM, boot from the CD-ROM.
  model::VmSpec installer(const std::string& name, model::Firmware fw) {
    model::VmSpec s;
    s.name = name;
    s.memory_mib = 256;
    s.disks.push_back({"root", "", 64ull << 20, false, false, "", ""});
    s.nics.push_back({});
    s.cdrom = "live-iso";
    s.boot = {model::BootDevice::cdrom};
    s.firmware = fw;
    s.vnc = false;
    return s;
  }

  std::string tail(const std::string& name) {
    auto t = hv_->console_tail(name, 1 << 20);
    return t ? *t : t.error().to_string();
  }

  static size_t count_of(const std::string& hay, const std::string& needle) {
    size_t n = 0;
    for (size_t p = hay.find(needle); p != std::string::npos; p = hay.find(needle, p + 1)) ++n;
    return n;
  }

  // The console log keeps earlier boots: wait for the `times`-th occurrence.
  bool wait_console(const std::string& name, const std::string& text, size_t times,
                    std::chrono::seconds limit = kBootTimeout) {
    auto deadline = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < deadline) {
      if (count_of(tail(name), text) >= times) return true;
      std::this_thread::sleep_for(100ms);
    }
    return false;
  }

  // The file in the CD-ROM as QEMU reports it (query-block through the typed parser);
  // empty: no medium.
  std::string medium(const std::string& name) {
    auto r = dynamic_cast<QemuHypervisor&>(*hv_).qmp(name, "query-block");
    EXPECT_TRUE(r) << r.error().to_string();
    if (!r) return "?";
    auto devs = parse_query_block(*r);
    EXPECT_TRUE(devs) << devs.error().to_string();
    if (!devs) return "?";
    for (auto& d : *devs)
      if (d.qdev == "cdrom0") return d.file;
    ADD_FAILURE() << "no cdrom0 in query-block: " << r->dump();
    return "?";
  }

  std::string image_path(const std::string& image) { return store_->image(image)->path; }

  // Whether process `pid` has `path` open (its /proc/PID/fd links).
  static bool holds_open(int pid, const std::string& path) {
    std::error_code ec;
    for (const auto& e : fs::directory_iterator("/proc/" + std::to_string(pid) + "/fd", ec)) {
      std::error_code rec;
      if (fs::read_symlink(e.path(), rec) == path) return true;
    }
    EXPECT_FALSE(ec) << "cannot read /proc/" << pid << "/fd: " << ec.message();
    return false;
  }

  // Starts `name` and returns the seconds from start() to the guest's ready line, which
  // must follow grub's line from the CD-ROM (the n-th boot: the n-th of each).
  double start_and_wait(const std::string& name, size_t nth) {
    auto t0 = std::chrono::steady_clock::now();
    auto s = hv_->start(name);
    EXPECT_TRUE(s) << s.error().to_string();
    EXPECT_TRUE(wait_console(name, "STRATA-READY", nth)) << tail(name);
    EXPECT_EQ(count_of(tail(name), "STRATA-GRUB-ON-CDROM"), nth) << tail(name);
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }

  static inline std::map<std::string, std::string> manifest_;
  static inline std::string root_, skip_;
  static inline ImageStorePtr store_;
  std::string state_dir_;
  HypervisorPtr hv_;
};

// Only an ISO enters the store as an iso, and the CD-ROM takes only an iso.
TEST_F(IsoUefiTest, IsoKindIsCheckedBothWays) {
  auto fake = store_->import_image("fake-iso", manifest_["TINY_KERNEL"], "iso");
  ASSERT_FALSE(fake);
  EXPECT_EQ(fake.error().code, ErrorCode::invalid_argument);
  auto qcow = store_->import_image("qcow-iso", manifest_["TINY_BASE"], "iso");
  ASSERT_FALSE(qcow);  // a qcow2 under the iso kind
  auto s = installer("kinds", model::Firmware::bios);
  s.cdrom = "tiny-base";  // a disk image in the CD-ROM
  auto d = hv_->define(s);
  ASSERT_FALSE(d);
  EXPECT_EQ(d.error().field, "cdrom");
  s.cdrom = "live-iso";
  s.disks[0].base_image = "live-iso";  // an iso as a disk base
  s.disks[0].size_bytes = 0;
  d = hv_->define(s);
  ASSERT_FALSE(d);
  EXPECT_EQ(d.error().field, "disks[0].base_image");
  s.disks[0] = {"root", "", 64ull << 20, false, false, "", ""};
  ASSERT_TRUE(hv_->define(s));
  auto c = hv_->change_cdrom("kinds", "tiny-kernel");
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error().field, "cdrom");
  EXPECT_EQ(hv_->status("kinds")->spec.cdrom, "live-iso");
}

TEST_F(IsoUefiTest, BiosBootsFromTheCdromAndTheMediumChangesWhileRunning) {
  ASSERT_TRUE(hv_->define(installer("cd1", model::Firmware::bios)));
  double secs = start_and_wait("cd1", 1);
  std::printf("[ bios ] from start() to STRATA-READY off the CD-ROM: %.1f s\n", secs);
  EXPECT_EQ(medium("cd1"), image_path("live-iso"));

  ASSERT_TRUE(hv_->change_cdrom("cd1", "data-iso"));
  EXPECT_EQ(medium("cd1"), image_path("data-iso"));
  // QEMU let go of the first medium's file (its start-up nodes are deleted, not only
  // detached) and holds the new one.
  const int pid = hv_->status("cd1")->pid;
  EXPECT_FALSE(holds_open(pid, image_path("live-iso")));
  EXPECT_TRUE(holds_open(pid, image_path("data-iso")));
  EXPECT_EQ(hv_->status("cd1")->spec.cdrom, "data-iso");
  ASSERT_TRUE(hv_->change_cdrom("cd1", ""));
  EXPECT_EQ(medium("cd1"), "");
  EXPECT_FALSE(holds_open(pid, image_path("data-iso")));
  EXPECT_EQ(hv_->status("cd1")->spec.cdrom, "");
  EXPECT_FALSE(nlohmann::json::parse(slurp(state_dir_ + "/vms/cd1/spec.json")).contains("cdrom"));

  // The medium is recorded: a new driver (agent restart) and a new QEMU both keep it.
  ASSERT_TRUE(hv_->change_cdrom("cd1", "live-iso"));
  ASSERT_TRUE(hv_->force_off("cd1"));
  hv_ = make();
  ASSERT_TRUE(hv_->recover());
  EXPECT_EQ(hv_->status("cd1")->spec.cdrom, "live-iso");
  start_and_wait("cd1", 2);
  EXPECT_EQ(medium("cd1"), image_path("live-iso"));
  // A stopped VM's medium changes in the record only.
  ASSERT_TRUE(hv_->force_off("cd1"));
  ASSERT_TRUE(hv_->change_cdrom("cd1", "data-iso"));
  EXPECT_EQ(nlohmann::json::parse(slurp(state_dir_ + "/vms/cd1/spec.json"))["cdrom"], "data-iso");
}

TEST_F(IsoUefiTest, UefiBootsTheIsoAndKeepsItsOwnVariables) {
  QemuOptions probe;
  if (!fs::exists(probe.uefi_code) || !fs::exists(probe.uefi_vars_template))
    GTEST_SKIP() << "SKIPPED: no OVMF at " << probe.uefi_code << " (apt-get install ovmf)";
  ASSERT_TRUE(hv_->define(installer("efi1", model::Firmware::uefi)));
  const std::string vars = state_dir_ + "/vms/efi1/" + kUefiVarsFile;
  const std::string tmpl = slurp(probe.uefi_vars_template);
  ASSERT_EQ(slurp(vars), tmpl);  // a copy of the template, made at define
  double secs = start_and_wait("efi1", 1);
  std::printf("[ uefi ] from start() to STRATA-READY under OVMF off the CD-ROM: %.1f s\n", secs);
  // OVMF records its boot options in the variables: the VM's own file, written by QEMU.
  ASSERT_TRUE(hv_->force_off("efi1"));
  std::string after = slurp(vars);
  EXPECT_EQ(after.size(), tmpl.size());
  EXPECT_NE(after, tmpl) << "OVMF wrote nothing into the VM's variables file";
  // Kept across restarts: the next start uses the same file, not a fresh template copy.
  start_and_wait("efi1", 2);
  auto busy = hv_->write_uefi_vars("efi1", tmpl);  // never under a running firmware
  ASSERT_FALSE(busy);
  EXPECT_EQ(busy.error().code, ErrorCode::failed_precondition);
  ASSERT_TRUE(hv_->force_off("efi1"));
  EXPECT_NE(slurp(vars), tmpl);

  // Cold migration's carry: read here, written over a new VM's fresh copy (its target).
  auto read = hv_->read_uefi_vars("efi1");
  ASSERT_TRUE(read) << read.error().to_string();
  EXPECT_EQ(*read, slurp(vars));
  ASSERT_TRUE(hv_->define(installer("efi2", model::Firmware::uefi)));
  const std::string vars2 = state_dir_ + "/vms/efi2/" + kUefiVarsFile;
  EXPECT_EQ(slurp(vars2), tmpl);
  ASSERT_TRUE(hv_->write_uefi_vars("efi2", *read));
  EXPECT_EQ(slurp(vars2), *read);
  auto short_vars = hv_->write_uefi_vars("efi2", read->substr(0, 4096));  // another OVMF build
  ASSERT_FALSE(short_vars);
  EXPECT_EQ(short_vars.error().field, "vars");
  EXPECT_EQ(slurp(vars2), *read);
  start_and_wait("efi2", 1);  // boots on the carried variables
  ASSERT_TRUE(hv_->force_off("efi2"));
  ASSERT_TRUE(hv_->define(installer("bios1", model::Firmware::bios)));
  EXPECT_EQ(hv_->read_uefi_vars("bios1").error().code, ErrorCode::failed_precondition);
  EXPECT_FALSE(fs::exists(state_dir_ + "/vms/bios1/" + kUefiVarsFile));
  ASSERT_TRUE(hv_->undefine("efi1", true));
  EXPECT_FALSE(fs::exists(vars));
}

}  // namespace
}  // namespace strata::agent::qemu
