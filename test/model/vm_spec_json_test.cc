// VmSpec JSON: round trip, and strict rejection of unknown fields, wrong types and bad
// values, each naming the field path.
#include "strata/model/vm_spec_json.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace strata::model {
namespace {

using nlohmann::json;

json good_json() {
  return json::parse(R"({
    "name": "web-1",
    "uuid": "3f2504e0-4f89-41d3-9a0c-0305e82c3301",
    "vcpus": 2,
    "memory_mib": 512,
    "machine": "pc-q35-7.2",
    "kernel_boot": {"kernel": "vmlinuz", "initrd": "initrd.img", "cmdline": "console=ttyS0"},
    "disks": [
      {"name": "root", "base_image": "debian.qcow2", "boot": false},
      {"name": "data0", "size_bytes": 1073741824, "readonly": true}
    ],
    "nics": [{"mode": "bridge", "bridge": "br0", "mac": "52:54:00:00:00:01", "vlan": 10}, {}],
    "vnc": false,
    "labels": {"tier": "web"}
  })");
}

TEST(VmSpecJson, ParsesAllFields) {
  auto r = vm_spec_from_json(good_json());
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_EQ(r->name, "web-1");
  EXPECT_EQ(r->vcpus, 2u);
  EXPECT_EQ(r->memory_mib, 512u);
  EXPECT_EQ(r->machine, "pc-q35-7.2");
  ASSERT_TRUE(r->kernel_boot);
  EXPECT_EQ(r->kernel_boot->cmdline, "console=ttyS0");
  ASSERT_EQ(r->disks.size(), 2u);
  EXPECT_EQ(r->disks[1].size_bytes, 1073741824u);
  EXPECT_TRUE(r->disks[1].readonly);
  ASSERT_EQ(r->nics.size(), 2u);
  EXPECT_EQ(r->nics[0].mode, NicMode::bridge);
  EXPECT_EQ(r->nics[1].mode, NicMode::user);
  EXPECT_TRUE(r->nics[1].mac.empty());
  EXPECT_EQ(r->nics[0].vlan, 10);
  EXPECT_EQ(r->nics[1].vlan, 0);
  EXPECT_FALSE(r->vnc);
  EXPECT_EQ(r->labels.at("tier"), "web");
}

TEST(VmSpecJson, RoundTrips) {
  auto r = vm_spec_from_json(good_json());
  ASSERT_TRUE(r);
  json j = to_json(*r);
  auto again = vm_spec_from_json(j);
  ASSERT_TRUE(again) << again.error().to_string();
  EXPECT_EQ(to_json(*again), j);
  // And through text, as it travels.
  auto from_text = vm_spec_from_json(json::parse(j.dump()));
  ASSERT_TRUE(from_text);
  EXPECT_EQ(to_json(*from_text), j);
  // A NIC's VLAN is written only when set: spec files of VMs without one stay as they were.
  EXPECT_EQ(j["nics"][0]["vlan"], 10);
  EXPECT_FALSE(j["nics"][1].contains("vlan"));
}

TEST(VmSpecJson, DefaultsForOmittedFields) {
  auto r = vm_spec_from_json(
      json::parse(R"({"name":"a","disks":[{"name":"d","base_image":"x","boot":true}]})"));
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_EQ(r->vcpus, 1u);
  EXPECT_EQ(r->memory_mib, 256u);
  EXPECT_EQ(r->machine, "q35");
  EXPECT_TRUE(r->vnc);
  EXPECT_FALSE(r->kernel_boot);
}

struct JsonCase {
  std::string what;
  json::json_pointer where;  // what to replace (or add) in good_json()
  json value;
  std::string field;
};

TEST(VmSpecJson, RejectsBadInput) {
  const std::vector<JsonCase> cases = {
      {"unknown top-level field", json::json_pointer("/memory"), 512, "memory"},
      {"unknown disk field", json::json_pointer("/disks/1/size"), 1, "disks[1].size"},
      {"unknown nic field", json::json_pointer("/nics/0/model"), "e1000", "nics[0].model"},
      {"unknown kernel field", json::json_pointer("/kernel_boot/append"), "x",
       "kernel_boot.append"},
      {"name not string", json::json_pointer("/name"), 5, "name"},
      {"vcpus string", json::json_pointer("/vcpus"), "2", "vcpus"},
      {"vcpus negative", json::json_pointer("/vcpus"), -1, "vcpus"},
      {"vcpus float", json::json_pointer("/vcpus"), 1.5, "vcpus"},
      {"vcpus over uint32", json::json_pointer("/vcpus"), 4294967296ull, "vcpus"},
      {"vcpus 10000", json::json_pointer("/vcpus"), 10000, "vcpus"},
      {"memory bool", json::json_pointer("/memory_mib"), true, "memory_mib"},
      {"memory 1 PiB", json::json_pointer("/memory_mib"), 1073741824ull, "memory_mib"},
      {"size_bytes string", json::json_pointer("/disks/1/size_bytes"), "1G", "disks[1].size_bytes"},
      {"size_bytes negative", json::json_pointer("/disks/1/size_bytes"), -5, "disks[1].size_bytes"},
      {"size_bytes null", json::json_pointer("/disks/1/size_bytes"), nullptr,
       "disks[1].size_bytes"},
      {"size_bytes 0 blank", json::json_pointer("/disks/1/size_bytes"), 0, "disks[1].size_bytes"},
      {"boot string", json::json_pointer("/disks/0/boot"), "true", "disks[0].boot"},
      {"disk not object", json::json_pointer("/disks/1"), "data0", "disks[1]"},
      {"disks not array", json::json_pointer("/disks"), json::object(), "disks"},
      {"disk missing name", json::json_pointer("/disks/1"), json::object({{"size_bytes", 1}}),
       "disks[1].name"},
      {"duplicate disk name", json::json_pointer("/disks/1/name"), "root", "disks[1].name"},
      {"nic mode unknown", json::json_pointer("/nics/0/mode"), "macvtap", "nics[0].mode"},
      {"nic mac multicast", json::json_pointer("/nics/0/mac"), "01:00:00:00:00:01", "nics[0].mac"},
      {"nic vlan 4095", json::json_pointer("/nics/0/vlan"), 4095, "nics[0].vlan"},
      {"nic vlan over uint16", json::json_pointer("/nics/0/vlan"), 65536 + 10, "nics[0].vlan"},
      {"nic vlan negative", json::json_pointer("/nics/0/vlan"), -1, "nics[0].vlan"},
      {"nic vlan string", json::json_pointer("/nics/0/vlan"), "10", "nics[0].vlan"},
      {"nic vlan on a user NIC", json::json_pointer("/nics/1/vlan"), 5, "nics[1].vlan"},
      {"kernel_boot not object", json::json_pointer("/kernel_boot"), "vmlinuz", "kernel_boot"},
      {"kernel missing", json::json_pointer("/kernel_boot"), json::object({{"cmdline", "x"}}),
       "kernel_boot.kernel"},
      {"cmdline newline", json::json_pointer("/kernel_boot/cmdline"), "a\nb",
       "kernel_boot.cmdline"},
      {"labels array", json::json_pointer("/labels"), json::array(), "labels"},
      {"label value number", json::json_pointer("/labels/tier"), 1, "labels.tier"},
      {"vnc number", json::json_pointer("/vnc"), 1, "vnc"},
      {"uuid bad", json::json_pointer("/uuid"), "xyz", "uuid"},
      {"name traversal", json::json_pointer("/name"), "../x", "name"},
      {"machine injection", json::json_pointer("/machine"), "q35,accel=kvm", "machine"},
  };
  for (const JsonCase& c : cases) {
    json j = good_json();
    j[c.where] = c.value;
    auto r = vm_spec_from_json(j);
    ASSERT_FALSE(r) << c.what;
    EXPECT_EQ(r.error().code, ErrorCode::invalid_argument) << c.what;
    EXPECT_EQ(r.error().field, c.field) << c.what << ": " << r.error().to_string();
  }
}

TEST(VmSpecJson, RejectsNonObjectsAndMissingName) {
  for (const json& j : {json(nullptr), json(1), json("spec"), json::array(), json::object()}) {
    auto r = vm_spec_from_json(j);
    ASSERT_FALSE(r) << j.dump();
    EXPECT_EQ(r.error().code, ErrorCode::invalid_argument) << j.dump();
  }
  EXPECT_EQ(vm_spec_from_json(json::object()).error().field, "name");
}

TEST(VmSpecJson, TooManyDisksStopsEarly) {
  json j = good_json();
  j["disks"] = json::array();
  for (int i = 0; i < 100000; ++i) j["disks"].push_back(json::object());
  auto r = vm_spec_from_json(j);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().field, "disks");
}

TEST(VmSpecJson, UnknownKeyWithControlCharsIsEscapedInField) {
  json j = good_json();
  j["evil\nkey"] = 1;
  auto r = vm_spec_from_json(j);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().field, "evil\\x0akey");
}

}  // namespace
}  // namespace strata::model

namespace strata::model {
namespace {

json installer_json() {
  return json::parse(R"({
    "name": "inst",
    "disks": [{"name": "root", "size_bytes": 1073741824, "boot": true}],
    "cdrom": "debian-netinst",
    "boot": ["cdrom", "disk"],
    "firmware": "uefi"
  })");
}

// CD-ROM, boot order, firmware: parsed, round-tripped, and bad values refused naming the
// field (docs/internals/firmware.md).
TEST(VmSpecJson, CdromBootOrderAndFirmware) {
  auto r = vm_spec_from_json(installer_json());
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_EQ(r->cdrom, "debian-netinst");
  EXPECT_EQ(r->boot, (std::vector<BootDevice>{BootDevice::cdrom, BootDevice::disk}));
  EXPECT_EQ(r->firmware, Firmware::uefi);
  auto back = vm_spec_from_json(to_json(*r));
  ASSERT_TRUE(back);
  EXPECT_EQ(back->cdrom, r->cdrom);
  EXPECT_EQ(back->boot, r->boot);
  EXPECT_EQ(back->firmware, r->firmware);
  // Defaults: nothing written, so older spec files and agents see no new keys.
  auto plain = to_json(*vm_spec_from_json(json::parse(
      R"({"name": "p", "disks": [{"name": "root", "size_bytes": 1, "boot": true}]})")));
  EXPECT_FALSE(plain.contains("cdrom"));
  EXPECT_FALSE(plain.contains("boot"));
  EXPECT_FALSE(plain.contains("firmware"));

  struct Case {
    const char* patch;  // merged into installer_json()
    const char* field;
  };
  for (const Case& c : std::vector<Case>{
           {R"({"cdrom": 7})", "cdrom"},
           {R"({"cdrom": "../etc/shadow"})", "cdrom"},
           {R"({"cdrom": "/srv/x.iso"})", "cdrom"},
           {R"({"boot": "cdrom"})", "boot"},
           {R"({"boot": ["floppy"]})", "boot[0]"},
           {R"({"boot": ["cdrom", "cdrom"]})", "boot[1]"},
           {R"({"boot": ["cdrom", "disk", "cdrom"]})", "boot"},
           {R"({"boot": [1]})", "boot[0]"},
           {R"({"firmware": "coreboot"})", "firmware"},
           {R"({"firmware": true})", "firmware"},
           {R"({"machine": "pc"})", "cdrom"},
           {R"({"machine": "pc", "cdrom": null, "boot": ["disk"]})", "firmware"},
           {R"({"disks": [{"name": "root", "size_bytes": 1}]})", "boot[1]"},
           {R"({"kernel_boot": {"kernel": "k"}})", "boot"},
       }) {
    json j = installer_json();
    j.merge_patch(json::parse(c.patch));
    auto e = vm_spec_from_json(j);
    ASSERT_FALSE(e) << c.patch;
    EXPECT_EQ(e.error().field, c.field) << c.patch << ": " << e.error().to_string();
  }
  // Booting only from the CD-ROM is a boot source (an installer on a blank disk).
  json cd_only = installer_json();
  cd_only["disks"][0].erase("boot");
  cd_only["boot"] = {"cdrom"};
  EXPECT_TRUE(vm_spec_from_json(cd_only)) << vm_spec_from_json(cd_only).error().to_string();
  // ... but an empty boot order without a boot disk or kernel is none.
  cd_only.erase("boot");
  auto none = vm_spec_from_json(cd_only);
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().field, "kernel_boot");
}

// A guest watchdog: parsed with its defaults, round-tripped, absent by default (no key
// written), and bad values refused naming the field.
TEST(VmSpecJson, Watchdog) {
  json j = installer_json();
  j["watchdog"] = json::object();
  auto r = vm_spec_from_json(j);
  ASSERT_TRUE(r) << r.error().to_string();
  ASSERT_TRUE(r->watchdog);
  EXPECT_EQ(r->watchdog->action, WatchdogAction::reset);  // the default
  j["watchdog"] = {{"model", "i6300esb"}, {"action", "inject-nmi"}};
  r = vm_spec_from_json(j);
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_EQ(r->watchdog->action, WatchdogAction::inject_nmi);
  EXPECT_EQ(to_json(*r)["watchdog"], j["watchdog"]);
  auto back = vm_spec_from_json(to_json(*r));
  ASSERT_TRUE(back);
  EXPECT_EQ(back->watchdog, r->watchdog);
  EXPECT_FALSE(to_json(*vm_spec_from_json(installer_json())).contains("watchdog"));
  j["watchdog"] = nullptr;  // null: none
  EXPECT_FALSE(vm_spec_from_json(j)->watchdog);
  for (auto [patch, field] : std::vector<std::pair<const char*, const char*>>{
           {R"({"watchdog": "reset"})", "watchdog"},
           {R"({"watchdog": {"action": "explode"}})", "watchdog.action"},
           {R"({"watchdog": {"action": 1}})", "watchdog.action"},
           {R"({"watchdog": {"model": "ib700"}})", "watchdog.model"},
           {R"({"watchdog": {"timeout": 5}})", "watchdog.timeout"},
       }) {
    json bad = installer_json();
    bad.merge_patch(json::parse(patch));
    auto e = vm_spec_from_json(bad);
    ASSERT_FALSE(e) << patch;
    EXPECT_EQ(e.error().field, field) << patch << ": " << e.error().to_string();
  }
  for (auto a : {WatchdogAction::reset, WatchdogAction::shutdown, WatchdogAction::poweroff,
                 WatchdogAction::pause, WatchdogAction::inject_nmi, WatchdogAction::none})
    EXPECT_EQ(watchdog_action_from_string(to_string(a)), a);
}

}  // namespace
}  // namespace strata::model

namespace strata::model {
namespace {

// Hot-plug slots: written only when set (spec files of VMs without them stay as they were),
// read back, bounded.
TEST(VmSpecJson, HotplugSlots) {
  VmSpec s;
  s.name = "hp";
  s.disks.push_back({"root", "base", 0, true, false, "", ""});
  s.disks.push_back({"data1", "", 1 << 20, false, false, "", "", 3});
  s.nics.push_back({NicMode::user, "", "52:54:00:00:00:01"});
  s.nics.push_back({NicMode::user, "", "52:54:00:00:00:02"});
  s.nics.back().hotplug_slot = 1;
  auto j = to_json(s);
  EXPECT_FALSE(j["disks"][0].contains("hotplug_slot"));
  EXPECT_EQ(j["disks"][1]["hotplug_slot"], 3);
  EXPECT_FALSE(j["nics"][0].contains("hotplug_slot"));
  EXPECT_EQ(j["nics"][1]["hotplug_slot"], 1);
  auto back = vm_spec_from_json(j);
  ASSERT_TRUE(back) << back.error().to_string();
  EXPECT_EQ(back->disks[1].hotplug_slot, 3u);
  EXPECT_EQ(back->nics[1].hotplug_slot, 1u);
  j["nics"][1]["hotplug_slot"] = 99;
  auto bad = vm_spec_from_json(j);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().field, "nics[1].hotplug_slot");
  j["nics"][1]["hotplug_slot"] = -1;
  EXPECT_FALSE(vm_spec_from_json(j));
}

}  // namespace
}  // namespace strata::model
