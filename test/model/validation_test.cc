// Table-driven tests for model validation: every class of bad input is rejected with
// invalid_argument naming the field; good inputs pass; complete() is deterministic.
#include "strata/model/validation.h"

#include <gtest/gtest.h>

#include <functional>
#include <set>
#include <string>
#include <vector>

namespace strata::model {
namespace {

using namespace std::string_literals;

VmSpec good_spec() {
  VmSpec s;
  s.name = "web-1";
  s.uuid = "3f2504e0-4f89-41d3-9a0c-0305e82c3301";
  s.kernel_boot = KernelBoot{"vmlinuz-6.1", "initrd.img", "console=ttyS0 root=/dev/vda rw"};
  s.disks.push_back(DiskSpec{"root", "debian-12.qcow2", 0, false, false, "", ""});
  s.disks.push_back(DiskSpec{"data0", "", 1ull << 30, false, false, "", ""});
  s.nics.push_back(NicSpec{NicMode::user, "", "52:54:00:12:34:56"});
  s.nics.push_back(NicSpec{NicMode::bridge, "br-strata0", "52:54:00:12:34:57"});
  s.labels["tier"] = "web";
  return s;
}

void expect_invalid(const Status& s, const std::string& field, const std::string& what) {
  ASSERT_FALSE(s) << what << ": expected rejection";
  EXPECT_EQ(s.error().code, ErrorCode::invalid_argument) << what;
  EXPECT_EQ(s.error().field, field) << what << ": " << s.error().to_string();
  EXPECT_FALSE(s.error().message.empty()) << what;
}

struct Case {
  std::string what;
  std::string value;
};

const std::vector<Case> kBadNames = {
    {"empty", ""},
    {"too long", std::string(64, 'a')},
    {"slash", "a/b"},
    {"dotdot", ".."},
    {"path traversal", "../etc"},
    {"space", "a b"},
    {"tab", "a\tb"},
    {"newline", "a\nb"},
    {"nul", "a\0b"s},
    {"del", "a\x7f"},
    {"uppercase", "Web"},
    {"comma (qemu option)", "a,b"},
    {"equals (qemu option)", "a=b"},
    {"semicolon", "a;b"},
    {"dollar", "a$b"},
    {"backtick", "a`b"},
    {"single quote", "a'b"},
    {"double quote", "a\"b"},
    {"pipe", "a|b"},
    {"ampersand", "a&b"},
    {"star", "a*"},
    {"leading dash", "-a"},
    {"trailing dash", "a-"},
    {"underscore", "a_b"},
    {"dot", "a.b"},
    {"utf8", "caf\xc3\xa9"},
};

TEST(ValidateName, RejectsBadNames) {
  for (const Case& c : kBadNames) expect_invalid(validate_name("name", c.value), "name", c.what);
}

TEST(ValidateName, RejectsBadVmNamesInSpec) {
  for (const Case& c : kBadNames) {
    VmSpec s = good_spec();
    s.name = c.value;
    expect_invalid(validate(s), "name", c.what);
  }
}

TEST(ValidateName, AcceptsDnsLabels) {
  for (const char* n : {"a", "web-1", "0abc", "a1-b2-c3"})
    EXPECT_TRUE(validate_name("name", n)) << n;
  EXPECT_TRUE(validate_name("name", std::string(63, 'z')));
}

TEST(ValidateName, ErrorNamesTheCharacter) {
  auto s = validate_name("name", "a/b");
  ASSERT_FALSE(s);
  EXPECT_NE(s.error().message.find("'/'"), std::string::npos) << s.error().message;
  s = validate_name("name", "a\x01");
  ASSERT_FALSE(s);
  EXPECT_NE(s.error().message.find("\\x01"), std::string::npos) << s.error().message;
}

TEST(ValidateImageName, Table) {
  const std::vector<Case> bad = {
      {"empty", ""},
      {"too long", std::string(129, 'a')},
      {"slash", "a/b"},
      {"absolute", "/etc/passwd"},
      {"dotdot", ".."},
      {"traversal", "../etc/passwd"},
      {"inner dotdot", "a..b"},
      {"leading dot", ".hidden"},
      {"space", "a b"},
      {"comma", "a,b"},
      {"colon", "file:x"},
      {"nul", "a\0b"s},
      {"newline", "a\n"},
      {"dollar", "$x"},
  };
  for (const Case& c : bad) expect_invalid(validate_image_name("img", c.value), "img", c.what);
  for (const char* n : {"debian-12.qcow2", "vmlinuz-6.1.0-28-cloud-amd64", "A_b.c-1"})
    EXPECT_TRUE(validate_image_name("img", n)) << n;
}

TEST(ValidateIfname, Table) {
  const std::vector<Case> bad = {
      {"empty", ""},       {"16 chars", "abcdefghijklmnop"},
      {"dot", "."},        {"dotdot", ".."},
      {"slash", "br/0"},   {"space", "br 0"},
      {"colon", "br:0"},   {"newline", "br\n"},
      {"percent", "br%d"}, {"nul", "b\0r"s},
  };
  for (const Case& c : bad) expect_invalid(validate_ifname("bridge", c.value), "bridge", c.what);
  for (const char* n : {"br0", "virbr0", "br-strata.10", "abcdefghijklmno"})
    EXPECT_TRUE(validate_ifname("bridge", n)) << n;
}

TEST(ValidateUuid, Table) {
  const std::vector<Case> bad = {
      {"empty", ""},
      {"short", "3f2504e0-4f89-41d3-9a0c-0305e82c330"},
      {"long", "3f2504e0-4f89-41d3-9a0c-0305e82c33011"},
      {"no dashes", "3f2504e04f8941d39a0c0305e82c330100ab"},
      {"dash misplaced", "3f2504e04-f89-41d3-9a0c-0305e82c3301"},
      {"non-hex", "3f2504e0-4f89-41d3-9a0c-0305e82c330g"},
      {"braces", "{3f2504e0-4f89-41d3-9a0c-0305e82c33}"},
      {"nil", "00000000-0000-0000-0000-000000000000"},
      {"injection", "3f2504e0-4f89-41d3-9a0c-0305e82c,x=1"},
  };
  for (const Case& c : bad) expect_invalid(validate_uuid("uuid", c.value), "uuid", c.what);
  EXPECT_TRUE(validate_uuid("uuid", "3F2504E0-4F89-41D3-9A0C-0305E82C3301"));
  VmSpec s = good_spec();
  s.uuid = "not-a-uuid";
  expect_invalid(validate(s), "uuid", "uuid in spec");
}

TEST(ValidateMac, Table) {
  const std::vector<Case> bad = {
      {"empty", ""},
      {"short", "52:54:00:12:34"},
      {"dashes", "52-54-00-12-34-56"},
      {"non-hex", "52:54:00:12:34:5g"},
      {"multicast", "53:54:00:12:34:56"},
      {"broadcast", "ff:ff:ff:ff:ff:ff"},
      {"multicast ipv4", "01:00:5e:00:00:01"},
      {"globally administered", "00:16:3e:12:34:56"},
      {"all zero", "00:00:00:00:00:00"},
      {"trailing garbage", "52:54:00:12:34:56,"},
  };
  for (const Case& c : bad) expect_invalid(validate_mac("mac", c.value), "mac", c.what);
  EXPECT_TRUE(validate_mac("mac", "52:54:00:AB:cd:ef"));
  EXPECT_TRUE(validate_mac("mac", "02:00:00:00:00:01"));
}

TEST(ValidateCmdline, Table) {
  const std::vector<Case> bad = {
      {"newline", "console=ttyS0\ninit=/bin/sh"},
      {"carriage return", "a\rb"},
      {"tab", "a\tb"},
      {"nul", "a\0b"s},
      {"escape", "a\x1b[31m"},
      {"del", "a\x7f"},
      {"non-ascii", "caf\xc3\xa9"},
      {"too long", std::string(2049, 'a')},
  };
  for (const Case& c : bad) expect_invalid(validate_cmdline("cmdline", c.value), "cmdline", c.what);
  EXPECT_TRUE(validate_cmdline("cmdline", ""));
  EXPECT_TRUE(validate_cmdline("cmdline", std::string(2048, 'a')));
  // Commas and quotes are legal kernel syntax; QEMU escaping is the argv builder's job.
  EXPECT_TRUE(validate_cmdline("cmdline", "console=ttyS0,115200 foo=\"a b\" quiet"));
}

TEST(ValidateMachine, Table) {
  const std::vector<Case> bad = {
      {"empty", ""},
      {"unknown", "microvm"},
      {"uppercase", "Q35"},
      {"option injection", "q35,accel=kvm"},
      {"help", "help"},
      {"unversioned prefix", "pc-q35-"},
      {"three part version", "pc-q35-7.2.1"},
      {"letters in version", "pc-q35-7.x"},
      {"trailing newline", "q35\n"},
      {"leading space", " q35"},
      {"big version", "pc-q35-123.4"},
      {"other arch", "virt"},
  };
  for (const Case& c : bad) expect_invalid(validate_machine("machine", c.value), "machine", c.what);
  for (const char* m : {"q35", "pc", "pc-q35-7.2", "pc-i440fx-7.2", "pc-q35-10.0"})
    EXPECT_TRUE(validate_machine("machine", m)) << m;
}

TEST(ValidateSpec, GoodSpecPasses) {
  auto s = validate(good_spec());
  EXPECT_TRUE(s) << s.error().to_string();
}

struct SpecCase {
  std::string what;
  std::function<void(VmSpec&)> mutate;
  std::string field;
};

TEST(ValidateSpec, RejectsBadSpecs) {
  const std::vector<SpecCase> cases = {
      {"vcpus 0", [](VmSpec& s) { s.vcpus = 0; }, "vcpus"},
      {"vcpus 10000", [](VmSpec& s) { s.vcpus = 10000; }, "vcpus"},
      {"vcpus max+1", [](VmSpec& s) { s.vcpus = kMaxVcpus + 1; }, "vcpus"},
      {"memory 0", [](VmSpec& s) { s.memory_mib = 0; }, "memory_mib"},
      {"memory below min", [](VmSpec& s) { s.memory_mib = kMinMemoryMib - 1; }, "memory_mib"},
      {"memory 1 PiB", [](VmSpec& s) { s.memory_mib = 1024ull * 1024 * 1024; }, "memory_mib"},
      {"machine unknown", [](VmSpec& s) { s.machine = "isapc"; }, "machine"},
      {"blank disk 0 bytes", [](VmSpec& s) { s.disks[1].size_bytes = 0; }, "disks[1].size_bytes"},
      {"disk too large", [](VmSpec& s) { s.disks[1].size_bytes = kMaxDiskBytes + 1; },
       "disks[1].size_bytes"},
      {"overlay too large", [](VmSpec& s) { s.disks[0].size_bytes = ~0ull; },
       "disks[0].size_bytes"},
      {"duplicate disk names", [](VmSpec& s) { s.disks[1].name = "root"; }, "disks[1].name"},
      {"bad disk name", [](VmSpec& s) { s.disks[1].name = "Data 0"; }, "disks[1].name"},
      {"disk base traversal", [](VmSpec& s) { s.disks[0].base_image = "../../etc/shadow"; },
       "disks[0].base_image"},
      {"too many disks",
       [](VmSpec& s) {
         for (size_t i = 0; s.disks.size() <= kMaxDisks; ++i)
           s.disks.push_back(DiskSpec{"extra" + std::to_string(i), "", 1 << 20, false, false, "", ""});
       },
       "disks"},
      {"two boot disks",
       [](VmSpec& s) {
         s.disks[0].boot = true;
         s.disks[1].boot = true;
       },
       "disks"},
      {"no boot source", [](VmSpec& s) { s.kernel_boot.reset(); }, "kernel_boot"},
      {"kernel traversal", [](VmSpec& s) { s.kernel_boot->kernel = "/boot/vmlinuz"; },
       "kernel_boot.kernel"},
      {"kernel empty", [](VmSpec& s) { s.kernel_boot->kernel = ""; }, "kernel_boot.kernel"},
      {"initrd bad", [](VmSpec& s) { s.kernel_boot->initrd = "a b"; }, "kernel_boot.initrd"},
      {"cmdline newline", [](VmSpec& s) { s.kernel_boot->cmdline = "quiet\ninit=/bin/sh"; },
       "kernel_boot.cmdline"},
      {"cmdline too long", [](VmSpec& s) { s.kernel_boot->cmdline = std::string(3000, 'x'); },
       "kernel_boot.cmdline"},
      {"duplicate MACs", [](VmSpec& s) { s.nics[1].mac = "52:54:00:12:34:56"; }, "nics[1].mac"},
      {"duplicate MACs differing in case",
       [](VmSpec& s) {
         s.nics[0].mac = "52:54:00:ab:cd:ef";
         s.nics[1].mac = "52:54:00:AB:CD:EF";
       },
       "nics[1].mac"},
      {"multicast MAC", [](VmSpec& s) { s.nics[0].mac = "01:00:5e:00:00:01"; }, "nics[0].mac"},
      {"two devices on one hot-plug slot",
       [](VmSpec& s) {
         s.disks[1].hotplug_slot = 2;
         s.nics[1].hotplug_slot = 2;
       },
       "nics[1].hotplug_slot"},
      {"hot-plug slot out of range",
       [](VmSpec& s) { s.disks[1].hotplug_slot = kMaxHotplugSlots + 1; }, "disks[1].hotplug_slot"},
      {"bridge name too long", [](VmSpec& s) { s.nics[1].bridge = "a-very-long-bridge"; },
       "nics[1].bridge"},
      {"bridge name injection", [](VmSpec& s) { s.nics[1].bridge = "br0;reboot"; },
       "nics[1].bridge"},
      {"bridge mode without bridge", [](VmSpec& s) { s.nics[1].bridge = ""; }, "nics[1].bridge"},
      {"user mode with bridge", [](VmSpec& s) { s.nics[0].bridge = "br0"; }, "nics[0].bridge"},
      {"vlan 4095 (reserved)", [](VmSpec& s) { s.nics[1].vlan = 4095; }, "nics[1].vlan"},
      {"vlan max uint16", [](VmSpec& s) { s.nics[1].vlan = 65535; }, "nics[1].vlan"},
      {"vlan on a user NIC", [](VmSpec& s) { s.nics[0].vlan = 10; }, "nics[0].vlan"},
      {"too many NICs",
       [](VmSpec& s) {
         while (s.nics.size() <= kMaxNics) s.nics.push_back(NicSpec{});
       },
       "nics"},
      {"label key bad", [](VmSpec& s) { s.labels["a b"] = "x"; }, "labels"},
      {"label value control", [](VmSpec& s) { s.labels["tier"] = "x\n"; }, "labels.tier"},
      {"too many labels",
       [](VmSpec& s) {
         for (size_t i = 0; s.labels.size() <= kMaxLabels; ++i)
           s.labels["k" + std::to_string(i)] = "v";
       },
       "labels"},
      {"label key too long", [](VmSpec& s) { s.labels[std::string(64, 'k')] = "v"; }, "labels"},
      {"label value too long", [](VmSpec& s) { s.labels["tier"] = std::string(256, 'v'); },
       "labels.tier"},
  };
  for (const SpecCase& c : cases) {
    VmSpec s = good_spec();
    c.mutate(s);
    expect_invalid(validate(s), c.field, c.what);
  }
}

TEST(ValidateSpec, BridgeNicVlansFromOneTo4094) {
  for (uint16_t vlan : {0, 1, 10, 4094}) {
    VmSpec s = good_spec();
    s.nics[1].vlan = vlan;
    auto st = validate(s);
    EXPECT_TRUE(st) << vlan << ": " << st.error().to_string();
  }
}

TEST(ValidateSpec, BootDiskIsABootSource) {
  VmSpec s = good_spec();
  s.kernel_boot.reset();
  s.disks[0].boot = true;
  EXPECT_TRUE(validate(s));
}

TEST(ValidateSpec, EmptyUuidAndMacMeanGenerate) {
  VmSpec s = good_spec();
  s.uuid.clear();
  s.nics[0].mac.clear();
  EXPECT_TRUE(validate(s));
}

uint64_t g_counter = 0;
uint64_t counting_random() { return 0x0123456789abcdefull * ++g_counter; }
uint64_t constant_random() { return 0x42; }

TEST(Complete, FillsUuidV4AndQemuMacsDeterministically) {
  VmSpec s = good_spec();
  s.uuid.clear();
  s.nics[0].mac.clear();
  s.nics[1].mac.clear();
  g_counter = 0;
  auto a = complete(s, counting_random);
  ASSERT_TRUE(a) << a.error().to_string();
  g_counter = 0;
  auto b = complete(s, counting_random);
  ASSERT_TRUE(b);
  EXPECT_EQ(a->uuid, b->uuid);
  EXPECT_EQ(a->nics[0].mac, b->nics[0].mac);
  EXPECT_TRUE(validate_uuid("uuid", a->uuid));
  EXPECT_EQ(a->uuid[14], '4') << a->uuid;                                          // version nibble
  EXPECT_NE(std::string("89ab").find(a->uuid[19]), std::string::npos) << a->uuid;  // variant
  for (const NicSpec& n : a->nics) {
    EXPECT_EQ(n.mac.substr(0, 9), "52:54:00:") << n.mac;
    EXPECT_TRUE(validate_mac("mac", n.mac)) << n.mac;
  }
  EXPECT_NE(a->nics[0].mac, a->nics[1].mac);
}

TEST(NewUuid, IsAVersion4UuidBuiltFromTheRandomSource) {
  g_counter = 0;
  std::string u = new_uuid(counting_random);
  EXPECT_TRUE(validate_uuid("uuid", u)) << u;
  EXPECT_EQ(u, "01234567-89ab-4def-8246-8acf13579bde") << u;  // 1x and 2x the constant
  EXPECT_NE(new_uuid(counting_random), u);
}

TEST(Complete, KeepsGivenValues) {
  VmSpec s = good_spec();
  auto r = complete(s, counting_random);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->uuid, s.uuid);
  EXPECT_EQ(r->nics[0].mac, s.nics[0].mac);
}

uint64_t g_seq = 0;
uint64_t sequence_random() { return g_seq++; }

TEST(Complete, AvoidsCollisionWithExistingMac) {
  VmSpec s = good_spec();
  s.nics[0].mac = "52:54:00:00:00:42";
  s.nics[1].mac.clear();
  g_seq = 0x42;  // the first candidate collides with nics[0]
  auto r = complete(s, sequence_random);
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_NE(r->nics[1].mac, "52:54:00:00:00:42");
  EXPECT_EQ(r->nics[1].mac.substr(0, 9), "52:54:00:");
}

TEST(Complete, ConstantRandomSourceStillGivesDistinctMacs) {
  VmSpec s = good_spec();
  s.nics.clear();
  for (size_t i = 0; i < kMaxNics; ++i) s.nics.push_back(NicSpec{});
  auto r = complete(s, constant_random);
  ASSERT_TRUE(r) << r.error().to_string();
  std::set<std::string> macs;
  for (const NicSpec& n : r->nics) macs.insert(n.mac);
  EXPECT_EQ(macs.size(), kMaxNics);
}

TEST(Complete, RejectsInvalidSpec) {
  VmSpec s = good_spec();
  s.vcpus = 0;
  auto r = complete(s, counting_random);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().field, "vcpus");
}

TEST(ValidateLabels, BoundsCountKeyAndValue) {
  std::map<std::string, std::string> m;
  for (size_t i = 0; i < kMaxLabels; ++i) m["k" + std::to_string(i)] = std::string(255, 'v');
  m.begin()->second = std::string(255, 'v');
  EXPECT_TRUE(validate_labels("node_selector", m)) << "64 labels of 255 characters fit";
  m["one-more"] = "v";
  auto st = validate_labels("node_selector", m);
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().field, "node_selector");
  EXPECT_NE(st.error().message.find("at most 64"), std::string::npos) << st.error().message;
}

}  // namespace
}  // namespace strata::model
