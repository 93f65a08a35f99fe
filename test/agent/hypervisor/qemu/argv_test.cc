// Golden-file and injection tests for the QEMU argv builder (like libvirt's
// qemuxml2argvdata). Regenerate goldens with STRATA_UPDATE_GOLDEN=1.
#include "argv.h"
#include "migration.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <sstream>

namespace strata::agent::qemu {
namespace {

std::string golden_dir() { return std::string(STRATA_TEST_SRC_DIR) + "/golden/"; }

std::string join_lines(const std::vector<std::string>& v) {
  std::string s;
  for (auto& a : v) s += a + "\n";
  return s;
}

void expect_golden(const std::string& name, const std::vector<std::string>& argv) {
  std::string path = golden_dir() + name + ".args";
  std::string got = join_lines(argv);
  if (getenv("STRATA_UPDATE_GOLDEN")) {
    std::ofstream(path) << got;
    return;
  }
  std::ifstream in(path);
  ASSERT_TRUE(in) << "missing golden file " << path;
  std::stringstream ss;
  ss << in.rdbuf();
  EXPECT_EQ(ss.str(), got) << "argv differs from " << path;
}

// QEMU's QemuOpts/keyval reading of "a=b,c=d" with ",," as an escaped comma: the test's
// independent model of how QEMU splits an option.
std::vector<std::pair<std::string, std::string>> parse_opts(const std::string& s) {
  std::vector<std::pair<std::string, std::string>> out;
  std::string cur;
  std::vector<std::string> parts;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == ',') {
      if (i + 1 < s.size() && s[i + 1] == ',') {
        cur += ',';
        ++i;
        continue;
      }
      parts.push_back(cur);
      cur.clear();
    } else {
      cur += s[i];
    }
  }
  parts.push_back(cur);
  for (auto& p : parts) {
    auto eq = p.find('=');
    if (eq == std::string::npos)
      out.emplace_back("", p);
    else
      out.emplace_back(p.substr(0, eq), p.substr(eq + 1));
  }
  return out;
}

model::VmSpec base_spec() {
  model::VmSpec s;
  s.name = "web1";
  s.uuid = "0b8e5c1e-3f5d-4c62-9a3e-1f2d3c4b5a69";
  s.vcpus = 2;
  s.memory_mib = 512;
  s.disks.push_back({"root", "debian-12", 0, true, false, "", ""});
  s.nics.push_back({model::NicMode::user, "", "52:54:00:12:34:56"});
  return s;
}

ResolvedVm base_resolved() {
  ResolvedVm r;
  r.vm_dir = "/var/lib/strata/vms/web1";
  r.disks.push_back({"/var/lib/strata/images/vms/web1/root.qcow2", "qcow2"});
  r.taps.push_back("");
  return r;
}

TEST(QemuArgv, DiskBootUserNicTcg) {
  auto argv = build_qemu_argv(base_spec(), base_resolved(), {});
  ASSERT_TRUE(argv) << argv.error().to_string();
  expect_golden("disk-boot-user-nic-tcg", *argv);
}

TEST(QemuArgv, KernelBootBridgeKvmNoVnc) {
  auto spec = base_spec();
  spec.kernel_boot = model::KernelBoot{"tiny-kernel", "tiny-initrd", "console=ttyS0 quiet"};
  spec.vnc = false;
  spec.disks.push_back({"data0", "", 1 << 30, false, true, "", ""});
  spec.nics[0] = {model::NicMode::bridge, "br0", "52:54:00:aa:bb:cc"};
  spec.nics.push_back({model::NicMode::user, "", "52:54:00:aa:bb:cd"});
  auto r = base_resolved();
  r.kernel_path = "/var/lib/strata/images/images/tiny-kernel";
  r.initrd_path = "/var/lib/strata/images/images/tiny-initrd";
  r.disks.push_back({"/var/lib/strata/images/vms/web1/data0.qcow2", "qcow2"});
  r.taps = {"st0123abcdn0", ""};
  auto argv = build_qemu_argv(spec, r, {"/usr/bin/qemu-system-x86_64", "kvm"});
  ASSERT_TRUE(argv) << argv.error().to_string();
  expect_golden("kernel-boot-bridge-kvm-novnc", *argv);
}

// The k-th bridged NIC is handed its tap as fd kFirstTapFd + k (user NICs take none);
// QEMU is never told a tap name, so it never opens /dev/net/tun itself.
TEST(QemuArgv, BridgedNicsGetTapFdsInOrder) {
  auto spec = base_spec();
  spec.nics = {{model::NicMode::bridge, "br0", "52:54:00:aa:bb:01"},
               {model::NicMode::user, "", "52:54:00:aa:bb:02"},
               {model::NicMode::bridge, "br1", "52:54:00:aa:bb:03"}};
  auto r = base_resolved();
  r.taps = {"sttapn0", "", "sttapn2"};
  auto argv = build_qemu_argv(spec, r, {});
  ASSERT_TRUE(argv) << argv.error().to_string();
  std::vector<std::string> netdevs;
  for (size_t i = 0; i + 1 < argv->size(); ++i)
    if ((*argv)[i] == "-netdev") netdevs.push_back((*argv)[i + 1]);
  EXPECT_EQ(netdevs, (std::vector<std::string>{"tap,id=net0,fd=3", "user,id=net1",
                                               "tap,id=net2,fd=4"}));
  for (const auto& a : *argv) EXPECT_EQ(a.find("ifname"), std::string::npos) << a;
}

// -sandbox is on by default with every deny group; off only when asked (QEMU lacks it).
TEST(QemuArgv, SandboxOnByDefaultAndOffWhenQemuLacksIt) {
  auto on = build_qemu_argv(base_spec(), base_resolved(), {});
  ASSERT_TRUE(on);
  auto it = std::find(on->begin(), on->end(), "-sandbox");
  ASSERT_NE(it, on->end());
  ASSERT_NE(it + 1, on->end());
  EXPECT_EQ(*(it + 1), "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny");
  ArgvOptions off;
  off.sandbox = false;
  auto without = build_qemu_argv(base_spec(), base_resolved(), off);
  ASSERT_TRUE(without);
  EXPECT_EQ(std::find(without->begin(), without->end(), "-sandbox"), without->end());
}

TEST(QemuArgv, CommaInVmDirIsEscapedEverywhere) {
  auto r = base_resolved();
  r.vm_dir = "/tmp/a,server=off,b";
  r.disks[0].path = "/tmp/x,driver=host_device,filename=/dev/sda";
  auto argv = build_qemu_argv(base_spec(), r, {});
  ASSERT_TRUE(argv) << argv.error().to_string();
  expect_golden("comma-in-paths", *argv);
  // Every comma-parsed option still has exactly the keys the builder meant, and each path
  // value round-trips through QEMU's splitting unchanged.
  for (size_t i = 0; i + 1 < argv->size(); ++i) {
    const auto& flag = (*argv)[i];
    if (flag != "-chardev" && flag != "-blockdev" && flag != "-vnc") continue;
    auto kv = parse_opts((*argv)[i + 1]);
    std::map<std::string, int> seen;
    for (auto& [k, v] : kv) {
      EXPECT_EQ(++seen[k], 1) << "duplicate key " << k << " in " << (*argv)[i + 1];
      if (k == "path" || k == "logfile") {
        EXPECT_EQ(v.rfind("/tmp/a,server=off,b/", 0), 0u) << v;
      }
      if (k == "filename") {
        EXPECT_EQ(v, r.disks[0].path);
      }
      if (k == "vnc") {
        EXPECT_EQ(v, "unix:/tmp/a,server=off,b/run/vnc.sock");
      }
      EXPECT_NE(k, "driver=host_device");
    }
    if (flag == "-chardev") {
      EXPECT_EQ(seen["server"], 1);
    }
  }
}

TEST(QemuArgv, InjectionInNameMacAndTapCannotAddKeys) {
  auto spec = base_spec();
  spec.name = "x,id=evil";
  spec.nics[0] = {model::NicMode::bridge, "br0", "52:54:00:12:34:56"};
  auto r = base_resolved();
  r.taps = {"tap0,script=/bin/sh"};
  EXPECT_FALSE(build_qemu_argv(spec, r, {}));  // tap names are a closed charset
  r.taps = {"tap0"};
  auto argv = build_qemu_argv(spec, r, {});
  ASSERT_TRUE(argv);
  for (size_t i = 0; i + 1 < argv->size(); ++i) {
    if ((*argv)[i] != "-name") continue;
    auto kv = parse_opts((*argv)[i + 1]);
    ASSERT_EQ(kv.size(), 1u);
    EXPECT_EQ(kv[0].first, "guest");
    EXPECT_EQ(kv[0].second, "x,id=evil");
  }
  spec.nics[0].mac = "52:54:00:12:34,id";
  EXPECT_FALSE(build_qemu_argv(spec, r, {}));
}

TEST(QemuArgv, RejectsControlCharactersAndRawCommas) {
  auto spec = base_spec();
  auto r = base_resolved();
  r.disks[0].path = "/tmp/disk\n-monitor stdio";
  EXPECT_EQ(build_qemu_argv(spec, r, {}).error().code, ErrorCode::invalid_argument);
  r = base_resolved();
  spec.kernel_boot = model::KernelBoot{"k", "", "console=ttyS0\n"};
  r.kernel_path = "/k";
  EXPECT_EQ(build_qemu_argv(spec, r, {}).error().field, "kernel_boot.cmdline");
  spec.kernel_boot->cmdline = "console=ttyS0";
  r.kernel_path = "/k,initrd=/etc/shadow";  // -kernel is not comma-parsed: refuse commas
  EXPECT_EQ(build_qemu_argv(spec, r, {}).error().field, "kernel_boot.kernel");
  r.kernel_path = "relative/kernel";
  EXPECT_FALSE(build_qemu_argv(spec, r, {}));
}

TEST(QemuArgv, RejectsBadScalars) {
  auto r = base_resolved();
  auto spec = base_spec();
  spec.machine = "q35,accel=kvm";
  EXPECT_EQ(build_qemu_argv(spec, r, {}).error().field, "machine");
  spec = base_spec();
  spec.uuid = "-monitor stdio";
  EXPECT_EQ(build_qemu_argv(spec, r, {}).error().field, "uuid");
  spec = base_spec();
  EXPECT_EQ(build_qemu_argv(spec, r, {"qemu", "xen"}).error().field, "accelerator");
  r.vm_dir = "/" + std::string(120, 'a');
  EXPECT_EQ(build_qemu_argv(spec, r, {}).error().field, "vm_dir");
  r = base_resolved();
  r.disks.clear();
  EXPECT_FALSE(build_qemu_argv(spec, r, {}));
}

TEST(QemuArgv, EscapeDoublesCommas) {
  EXPECT_EQ(*escape_opt_value("f", "a,b,,c"), "a,,b,,,,c");
  EXPECT_EQ(*escape_opt_value("f", ""), "");
  EXPECT_FALSE(escape_opt_value("f", std::string("a\0b", 3)));
  EXPECT_FALSE(escape_opt_value("f", "a\x7f"));
}

}  // namespace
}  // namespace strata::agent::qemu

namespace strata::agent::qemu {
namespace {

// A live migration's target: the same command line plus -S -incoming defer at the end.
TEST(QemuArgv, IncomingAddsStoppedDeferredIncoming) {
  auto plain = build_qemu_argv(base_spec(), base_resolved(), {});
  ArgvOptions o;
  o.incoming = true;
  auto in = build_qemu_argv(base_spec(), base_resolved(), o);
  ASSERT_TRUE(plain && in);
  ASSERT_EQ(in->size(), plain->size() + 3);
  EXPECT_TRUE(std::equal(plain->begin(), plain->end(), in->begin()));
  EXPECT_EQ(std::vector<std::string>(in->end() - 3, in->end()),
            (std::vector<std::string>{"-S", "-incoming", "defer"}));
}

// cloud-init: the seed is one read-only raw virtio disk appended after every other device
// (so the rest of the layout is unchanged); without a resolved seed the spec is refused.
TEST(QemuArgv, CloudInitSeedIsAReadOnlyDiskAtTheEnd) {
  auto spec = base_spec();
  spec.cloud_init = model::CloudInit{};
  auto plain = build_qemu_argv(base_spec(), base_resolved(), {});
  auto missing = build_qemu_argv(spec, base_resolved(), {});
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().field, "cloud_init_seed");
  auto r = base_resolved();
  r.cloud_init_seed = "/var/lib/strata/vms/web1/cidata.iso";
  auto with = build_qemu_argv(spec, r, {});
  ASSERT_TRUE(plain && with) << with.error().to_string();
  ASSERT_EQ(with->size(), plain->size() + 6);
  EXPECT_TRUE(std::equal(plain->begin(), plain->end(), with->begin()));
  EXPECT_EQ(std::vector<std::string>(with->end() - 6, with->end()),
            (std::vector<std::string>{
                "-blockdev",
                "driver=file,node-name=file-cidata,filename=/var/lib/strata/vms/web1/cidata.iso,"
                "read-only=on",
                "-blockdev", "driver=raw,node-name=cidata,file=file-cidata,read-only=on", "-device",
                "virtio-blk-pci,drive=cidata,id=cidata,serial=cidata"}));
}

// The convergence policy: a deadline scaled by memory, the downtime limit raised in steps.
TEST(MigrationPolicy, DeadlineAndDowntimeSteps) {
  EXPECT_EQ(deadline_for(0), std::chrono::seconds(60));
  EXPECT_EQ(deadline_for(1ull << 30), std::chrono::seconds(120));
  EXPECT_EQ(deadline_for(256ull << 20), std::chrono::milliseconds(60000 + 2 * 6000));
  MigrationPolicy p;
  EXPECT_EQ(downtime_limit_at(p, std::chrono::milliseconds(0)), 100);
  EXPECT_EQ(downtime_limit_at(p, std::chrono::milliseconds(1999)), 100);
  EXPECT_EQ(downtime_limit_at(p, std::chrono::milliseconds(2000)), 200);
  EXPECT_EQ(downtime_limit_at(p, std::chrono::seconds(600)), 1000);  // capped
  p.step_interval = std::chrono::milliseconds(0);
  EXPECT_EQ(downtime_limit_at(p, std::chrono::seconds(600)), 100);
  EXPECT_EQ(real_downtime_ms(1'000'000, 1'177'000), 177);
}

}  // namespace
}  // namespace strata::agent::qemu

namespace strata::agent::qemu {
namespace {

std::string arg_after(const std::vector<std::string>& argv, const std::string& prefix) {
  for (const auto& a : argv)
    if (a.rfind(prefix, 0) == 0) return a;
  return "";
}

// The CD-ROM: its medium is the resolved store file, read-only on both nodes; the boot
// order becomes bootindex on the CD-ROM and the boot disk, in the spec's order.
TEST(QemuArgv, CdromMediumIsReadOnlyAndBootOrderIsBootindex) {
  ArgvOptions o;
  o.profile.version = 2;
  o.profile.machine = "pc-q35-7.2";
  o.profile.cpu_model = "max";
  o.profile.cdrom = true;
  auto s = base_spec();
  s.cdrom = "installer";
  s.boot = {model::BootDevice::cdrom, model::BootDevice::disk};
  auto r = base_resolved();
  r.cdrom_path = "/srv/images/images/installer";
  auto argv = build_qemu_argv(s, r, o);
  ASSERT_TRUE(argv) << argv.error().to_string();
  EXPECT_EQ(arg_after(*argv, "driver=file,node-name=file-cdrom0"),
            "driver=file,node-name=file-cdrom0,filename=/srv/images/images/installer,read-only=on");
  EXPECT_EQ(arg_after(*argv, "driver=raw,node-name=media-cdrom0"),
            "driver=raw,node-name=media-cdrom0,file=file-cdrom0,read-only=on");
  EXPECT_EQ(arg_after(*argv, "ide-cd"),
            "ide-cd,bus=ide.2,id=cdrom0,drive=media-cdrom0,bootindex=1");
  EXPECT_NE(arg_after(*argv, "virtio-blk-pci,drive=disk0").find("bootindex=2"), std::string::npos);

  // Disk first: the CD-ROM (empty tray) comes second.
  s.cdrom.clear();
  s.boot = {model::BootDevice::disk, model::BootDevice::cdrom};
  argv = build_qemu_argv(s, base_resolved(), o);
  ASSERT_TRUE(argv);
  EXPECT_EQ(arg_after(*argv, "ide-cd"), "ide-cd,bus=ide.2,id=cdrom0,bootindex=2");
  EXPECT_NE(arg_after(*argv, "virtio-blk-pci,drive=disk0").find("bootindex=1"), std::string::npos);
  EXPECT_EQ(arg_after(*argv, "driver=file,node-name=file-cdrom0"), "");

  // A store path with a comma stays one value (escaped), never a new option.
  s.cdrom = "x";
  r.cdrom_path = "/srv/a,file.locking=off/iso";
  argv = build_qemu_argv(s, r, o);
  ASSERT_TRUE(argv);
  auto opts = parse_opts(arg_after(*argv, "driver=file,node-name=file-cdrom0"));
  ASSERT_EQ(opts.size(), 4u);
  EXPECT_EQ(opts[2].second, "/srv/a,file.locking=off/iso");
  EXPECT_EQ(opts[3], (std::pair<std::string, std::string>{"read-only", "on"}));
}

// Hot-plug slots: a disk or NIC attached later sits on its slot's spare root port and is
// named by the slot, so the devices placed at boot keep their names and addresses (a
// restart and a migration target build this same layout). A slot the VM's hardware does
// not have is refused.
TEST(QemuArgv, HotPluggedDevicesSitOnTheirSlotsRootPorts) {
  ArgvOptions o;
  o.profile.version = 3;
  o.profile.machine = "pc-q35-7.2";
  o.profile.cpu_model = "max";
  o.profile.spare_root_ports = 4;
  auto s = base_spec();
  s.disks.push_back({"data1", "", 1 << 30, false, false, "", "", 3});
  model::NicSpec hot{model::NicMode::bridge, "br0", "52:54:00:aa:bb:09"};
  hot.hotplug_slot = 1;
  s.nics.push_back(hot);
  auto r = base_resolved();
  r.disks.push_back({"/var/lib/strata/images/vms/web1/data1.qcow2", "qcow2"});
  r.taps.push_back("st0123abcdp1");
  auto argv = build_qemu_argv(s, r, o);
  ASSERT_TRUE(argv) << argv.error().to_string();
  EXPECT_EQ(arg_after(*argv, "pcie-root-port,id=rp3"),
            "pcie-root-port,id=rp3,chassis=3,bus=pcie.0");
  EXPECT_EQ(arg_after(*argv, "virtio-blk-pci,drive=disk0,id=virtio-disk0,serial=root").find("bus="),
            std::string::npos);
  EXPECT_EQ(arg_after(*argv, "driver=qcow2,node-name=disk-rp3"),
            "driver=qcow2,node-name=disk-rp3,file=file-rp3,read-only=off");
  EXPECT_EQ(arg_after(*argv, "virtio-blk-pci,drive=disk-rp3"),
            "virtio-blk-pci,drive=disk-rp3,id=virtio-disk-rp3,serial=data1,bus=rp3");
  EXPECT_EQ(arg_after(*argv, "tap,id=net-rp1"), "tap,id=net-rp1,fd=3");
  EXPECT_EQ(arg_after(*argv, "virtio-net-pci,netdev=net-rp1"),
            "virtio-net-pci,netdev=net-rp1,id=nic-rp1,mac=52:54:00:aa:bb:09,bus=rp1");
  EXPECT_EQ(arg_after(*argv, "virtio-net-pci,netdev=net0"),
            "virtio-net-pci,netdev=net0,id=nic0,mac=52:54:00:12:34:56");

  o.profile.spare_root_ports = 2;
  auto no_port = build_qemu_argv(s, r, o);
  ASSERT_FALSE(no_port);
  EXPECT_EQ(no_port.error().field, "disks[1].hotplug_slot");
}

}  // namespace
}  // namespace strata::agent::qemu
