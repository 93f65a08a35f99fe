// Hardware profile: the machine alias pinned from QEMU 7.2's recorded `-machine help`, the
// v1 command line (golden), the record in state.json, and VMs without a profile (defined
// before profiles) keeping the legacy layout.
#include "hardware_profile.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "argv.h"
#include "vm_dir.h"

namespace strata::agent::qemu {
namespace {

std::map<std::string, std::string> recorded_machines() {
  std::ifstream in(std::string(STRATA_TEST_SRC_DIR) + "/transcripts/machine-help-7.2.txt");
  std::stringstream ss;
  ss << in.rdbuf();
  return parse_machine_help(ss.str());
}

TEST(HardwareProfile, MachineAliasIsPinnedFromQemusList) {
  auto m = recorded_machines();
  EXPECT_EQ(m["q35"], "pc-q35-7.2");
  EXPECT_EQ(m["pc"], "pc-i440fx-7.2");
  EXPECT_EQ(m["pc-q35-7.2"], "pc-q35-7.2");
  EXPECT_EQ(m["pc-q35-6.0"], "pc-q35-6.0");
  EXPECT_EQ(m.count("Supported"), 0u);
  auto p = new_hardware_profile("q35", "tcg", m);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->version, kHardwareProfileVersion);
  EXPECT_EQ(p->machine, "pc-q35-7.2");
  EXPECT_EQ(p->cpu_model, "max");
  EXPECT_EQ(new_hardware_profile("q35", "kvm", m)->cpu_model, "host");
  EXPECT_EQ(new_hardware_profile("pc-q35-6.0", "kvm", m)->machine, "pc-q35-6.0");
  auto pc = new_hardware_profile("pc", "tcg", m);  // i440fx: no PCIe root ports, no AHCI
  ASSERT_TRUE(pc);
  EXPECT_EQ(pc->machine, "pc-i440fx-7.2");
  EXPECT_EQ(pc->spare_root_ports, 0);
  EXPECT_FALSE(pc->cdrom);
  EXPECT_TRUE(pc->usb_tablet);
  auto none = new_hardware_profile("q99", "tcg", m);
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().code, ErrorCode::failed_precondition);
}

TEST(HardwareProfile, JsonRoundTripAndStrictParsing) {
  auto p = *new_hardware_profile("q35", "tcg", recorded_machines());
  auto back = hardware_profile_from_json(to_json(p));
  ASSERT_TRUE(back);
  EXPECT_EQ(*back, p);
  auto j = to_json(p);
  j["version"] = 99;
  EXPECT_FALSE(hardware_profile_from_json(j));
  j = to_json(p);
  j.erase("machine");
  EXPECT_FALSE(hardware_profile_from_json(j));
  j = to_json(p);
  j["cdrom"] = "yes";
  EXPECT_FALSE(hardware_profile_from_json(j));
}

TEST(HardwareProfile, RecordedInStateAndLegacyVmsKeepTheirLayout) {
  std::string dir = std::filesystem::temp_directory_path() / ("sthp-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  StateRecord r;
  r.profile = *new_hardware_profile("q35", "tcg", recorded_machines());
  ASSERT_TRUE(write_state_record(dir, r));
  auto back = read_state_record(dir);
  ASSERT_TRUE(back);
  EXPECT_EQ(back->profile, r.profile);
  // A state.json written before profiles existed.
  std::ofstream(dir + "/state.json") << R"({"state": "defined", "pid": 0})";
  back = read_state_record(dir);
  ASSERT_TRUE(back);
  EXPECT_EQ(back->profile.version, 0);
  std::filesystem::remove_all(dir);
}

model::VmSpec spec() {
  model::VmSpec s;
  s.name = "web1";
  s.uuid = "0b8e5c1e-3f5d-4c62-9a3e-1f2d3c4b5a69";
  s.disks.push_back({"root", "debian-12", 0, true, false, "", ""});
  s.vnc = false;
  return s;
}

ResolvedVm resolved() {
  ResolvedVm r;
  r.vm_dir = "/var/lib/strata/vms/web1";
  r.disks.push_back({"/var/lib/strata/images/vms/web1/root.qcow2", "qcow2"});
  return r;
}

std::string joined(const std::vector<std::string>& argv) {
  std::string s;
  for (auto& a : argv) s += a + "\n";
  return s;
}

TEST(HardwareProfile, V1CommandLine) {
  ArgvOptions o;
  o.profile = *new_hardware_profile("q35", "tcg", recorded_machines());
  auto argv = build_qemu_argv(spec(), resolved(), o);
  ASSERT_TRUE(argv) << argv.error().to_string();
  std::string path = std::string(STRATA_TEST_SRC_DIR) + "/golden/profile-v1-tcg.args";
  if (getenv("STRATA_UPDATE_GOLDEN")) std::ofstream(path) << joined(*argv);
  std::ifstream in(path);
  ASSERT_TRUE(in) << "missing golden file " << path;
  std::stringstream ss;
  ss << in.rdbuf();
  EXPECT_EQ(joined(*argv), ss.str());
  // Legacy VMs (profile version 0): the spec's alias as given and none of the v1 devices.
  auto legacy = build_qemu_argv(spec(), resolved(), {});
  ASSERT_TRUE(legacy);
  std::string l = joined(*legacy);
  EXPECT_NE(l.find("type=q35\n"), std::string::npos);
  EXPECT_EQ(l.find("pcie-root-port"), std::string::npos);
  EXPECT_EQ(l.find("usb-tablet"), std::string::npos);
  EXPECT_EQ(l.find("ide-cd"), std::string::npos);
}

}  // namespace
}  // namespace strata::agent::qemu

namespace strata::agent::qemu {
namespace {

// v2 records the firmware; a v1 state.json (written by the agent before v2) still reads,
// as "bios", and a v2 record without a valid firmware is refused, not guessed.
TEST(HardwareProfile, V2RecordsFirmwareAndV1ProfilesStillRead) {
  auto p = *new_hardware_profile("q35", "tcg", recorded_machines());
  settle_version(p);  // no watchdog: recorded as v2
  EXPECT_EQ(p.version, 2);
  EXPECT_EQ(p.firmware, "bios");
  p.firmware = "uefi";
  auto j = to_json(p);
  EXPECT_EQ(j["firmware"], "uefi");
  auto back = hardware_profile_from_json(j);
  ASSERT_TRUE(back) << back.error().to_string();
  EXPECT_EQ(*back, p);
  auto v1 = nlohmann::json::parse(R"({"version": 1, "machine": "pc-q35-7.2",
      "cpu_model": "max", "spare_root_ports": 4, "usb_tablet": true, "cdrom": true})");
  auto old = hardware_profile_from_json(v1);
  ASSERT_TRUE(old) << old.error().to_string();
  EXPECT_EQ(old->version, 1);
  EXPECT_EQ(old->firmware, "bios");
  EXPECT_FALSE(to_json(*old).contains("firmware"));  // written back as it was
  j.erase("firmware");
  EXPECT_FALSE(hardware_profile_from_json(j));
  j["firmware"] = "coreboot";
  EXPECT_FALSE(hardware_profile_from_json(j));
  auto pc = *new_hardware_profile("pc", "tcg", recorded_machines());
  pc.firmware = "uefi";  // i440fx: refused when read back
  EXPECT_FALSE(hardware_profile_from_json(to_json(pc)));
}

TEST(HardwareProfile, V3RecordsTheWatchdogAndAVmWithoutOneStaysV2) {
  auto p = *new_hardware_profile("q35", "tcg", recorded_machines());
  EXPECT_EQ(p.version, kHardwareProfileVersion);
  p.watchdog = "i6300esb";
  settle_version(p);
  EXPECT_EQ(p.version, 3);  // a watchdog needs v3 (v4's hot-plug slots live in the spec)
  auto j = to_json(p);
  EXPECT_EQ(j["watchdog"], "i6300esb");
  auto back = hardware_profile_from_json(j);
  ASSERT_TRUE(back) << back.error().to_string();
  EXPECT_EQ(*back, p);
  // Without one the VM records v2, which an agent that knows only v2 still reads.
  auto plain = *new_hardware_profile("q35", "tcg", recorded_machines());
  settle_version(plain);
  EXPECT_EQ(plain.version, 2);
  EXPECT_FALSE(to_json(plain).contains("watchdog"));
  // Strict: a v3 profile names its watchdog, and only a model this driver builds.
  j.erase("watchdog");
  EXPECT_FALSE(hardware_profile_from_json(j));
  j["watchdog"] = "ib700";
  EXPECT_FALSE(hardware_profile_from_json(j));
  j["watchdog"] = "";
  EXPECT_TRUE(hardware_profile_from_json(j));
  j["version"] = kHardwareProfileVersion +
                 1;  // newer than this agent: refused (a migration from a newer host)
  EXPECT_FALSE(hardware_profile_from_json(j));
}

// The watchdog device comes after every other device (so the rest of the PCI layout is the
// same with or without it), with QEMU's action; the spec and the profile must agree.
TEST(HardwareProfile, V3WatchdogCommandLine) {
  ArgvOptions o;
  o.profile = *new_hardware_profile("q35", "tcg", recorded_machines());
  o.profile.watchdog = "i6300esb";
  auto s = spec();
  s.watchdog = model::Watchdog{model::WatchdogAction::poweroff};
  auto argv = build_qemu_argv(s, resolved(), o);
  ASSERT_TRUE(argv) << argv.error().to_string();
  auto dev = std::find(argv->begin(), argv->end(), "i6300esb,id=watchdog0");
  ASSERT_NE(dev, argv->end()) << joined(*argv);
  EXPECT_EQ(*(dev - 1), "-device");
  ASSERT_LT(dev + 2, argv->end());
  EXPECT_EQ(*(dev + 1), "-action");
  EXPECT_EQ(*(dev + 2), "watchdog=poweroff");
  EXPECT_EQ(std::count(argv->begin(), argv->end(), "-device"),
            std::count(argv->begin(), dev, "-device"));  // the last device
  // Without it: the same command line minus those four words.
  auto plain_opts = o;
  plain_opts.profile.watchdog.clear();
  auto plain_spec = s;
  plain_spec.watchdog.reset();
  auto plain = build_qemu_argv(plain_spec, resolved(), plain_opts);
  ASSERT_TRUE(plain) << plain.error().to_string();
  auto with = *argv;
  const auto at = dev - argv->begin();
  with.erase(with.begin() + at - 1, with.begin() + at + 3);
  EXPECT_EQ(with, *plain);
  // Disagreement either way is refused, naming the field.
  auto e = build_qemu_argv(s, resolved(), plain_opts);
  ASSERT_FALSE(e);
  EXPECT_EQ(e.error().field, "watchdog");
  e = build_qemu_argv(plain_spec, resolved(), o);
  ASSERT_FALSE(e);
  EXPECT_EQ(e.error().field, "watchdog");
}

// Golden: a v2 UEFI VM installing from an ISO (CD-ROM first, then the disk), and the same
// spec refused when the resolved paths are missing or the profile disagrees.
TEST(HardwareProfile, V2UefiCdromCommandLine) {
  ArgvOptions o;
  o.profile = *new_hardware_profile("q35", "tcg", recorded_machines());
  o.profile.firmware = "uefi";
  auto s = spec();
  s.firmware = model::Firmware::uefi;
  s.cdrom = "debian-12-netinst";
  s.boot = {model::BootDevice::cdrom, model::BootDevice::disk};
  auto r = resolved();
  r.cdrom_path = "/var/lib/strata/images/images/debian-12-netinst";
  r.uefi_code = "/usr/share/OVMF/OVMF_CODE_4M.fd";
  r.uefi_vars = "/var/lib/strata/vms/web1/uefi-vars.fd";
  auto argv = build_qemu_argv(s, r, o);
  ASSERT_TRUE(argv) << argv.error().to_string();
  std::string path = std::string(STRATA_TEST_SRC_DIR) + "/golden/profile-v2-uefi-cdrom-tcg.args";
  if (getenv("STRATA_UPDATE_GOLDEN")) std::ofstream(path) << joined(*argv);
  std::ifstream in(path);
  ASSERT_TRUE(in) << "missing golden file " << path;
  std::stringstream ss;
  ss << in.rdbuf();
  EXPECT_EQ(joined(*argv), ss.str());

  auto no_vars = r;
  no_vars.uefi_vars.clear();
  auto e = build_qemu_argv(s, no_vars, o);
  ASSERT_FALSE(e);
  EXPECT_EQ(e.error().field, "uefi_vars");
  auto bios_profile = o;
  bios_profile.profile.firmware = "bios";
  e = build_qemu_argv(s, r, bios_profile);  // the spec says uefi, the VM's hardware bios
  ASSERT_FALSE(e);
  EXPECT_EQ(e.error().field, "firmware");
  auto no_iso = r;
  no_iso.cdrom_path = "debian.iso";  // never a relative path (only the store's files)
  e = build_qemu_argv(s, no_iso, o);
  ASSERT_FALSE(e);
  EXPECT_EQ(e.error().field, "cdrom");
  // Legacy (v0) and i440fx VMs have no CD-ROM slot: a medium or a cdrom boot is refused.
  ArgvOptions legacy;
  auto bios = s;
  bios.firmware = model::Firmware::bios;
  e = build_qemu_argv(bios, r, legacy);
  ASSERT_FALSE(e);
  EXPECT_EQ(e.error().field, "cdrom");
  EXPECT_EQ(e.error().code, ErrorCode::failed_precondition);
}

}  // namespace
}  // namespace strata::agent::qemu
