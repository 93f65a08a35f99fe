// Hardware profile: the machine alias pinned from QEMU 7.2's recorded `-machine help`, the
// v1 command line (golden), the record in state.json, and VMs without a profile (defined
// before profiles) keeping the legacy layout.
#include "hardware_profile.h"

#include <gtest/gtest.h>
#include <unistd.h>

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
