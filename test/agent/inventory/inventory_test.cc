// collect_inventory over fixture trees (a 2-socket Intel host and a small AMD host),
// abridged copies of real /proc and /sys layouts including their sysfs symlinks.
#include "strata/agent/inventory.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include <unistd.h>

#include <nlohmann/json.hpp>

namespace strata::agent {
namespace {

std::string fixture(const std::string& name) {
  return std::string(STRATA_INVENTORY_FIXTURES) + "/" + name;
}

InventorySources sources_for(const std::string& box) {
  std::string root = fixture(box);
  return InventorySources{root + "/proc", root + "/sys", root + "/etc/os-release",
                          root + "/etc/machine-id"};
}

const BlockDevice* disk(const HostInventory& inv, const std::string& name) {
  for (const auto& d : inv.block_devices)
    if (d.name == name) return &d;
  return nullptr;
}
const NetInterface* nic(const HostInventory& inv, const std::string& name) {
  for (const auto& n : inv.interfaces)
    if (n.name == name) return &n;
  return nullptr;
}

TEST(CollectInventory, IntelTwoSocket) {
  auto r = collect_inventory(sources_for("intel-2s"));
  ASSERT_TRUE(r) << r.error().to_string();
  const HostInventory& inv = *r;
  EXPECT_EQ(inv.cpu.vendor, "GenuineIntel");
  EXPECT_EQ(inv.cpu.model_name, "Intel(R) Xeon(R) Gold 6130 CPU @ 2.10GHz");
  EXPECT_EQ(inv.cpu.sockets, 2u);
  EXPECT_EQ(inv.cpu.cores, 4u);
  EXPECT_EQ(inv.cpu.threads, 8u);
  EXPECT_NE(std::find(inv.cpu.flags.begin(), inv.cpu.flags.end(), "vmx"), inv.cpu.flags.end());

  ASSERT_EQ(inv.numa_nodes.size(), 2u);
  EXPECT_EQ(inv.numa_nodes[0].cpus, (std::vector<uint32_t>{0, 2, 4, 6}));
  EXPECT_EQ(inv.numa_nodes[1].cpus, (std::vector<uint32_t>{1, 3, 5, 7}));
  EXPECT_EQ(inv.numa_nodes[1].memory_total_bytes, 197960524ull * 1024);
  EXPECT_EQ(inv.numa_nodes[1].memory_free_bytes, 150617056ull * 1024);

  EXPECT_EQ(inv.memory.total_bytes, 395921048ull * 1024);
  EXPECT_EQ(inv.memory.available_bytes, 352101376ull * 1024);
  EXPECT_EQ(inv.memory.hugepages_total, 1024u);
  EXPECT_EQ(inv.memory.hugepages_free, 512u);
  EXPECT_EQ(inv.memory.hugepage_size_bytes, 2u * 1024 * 1024);

  // loop0 (unused) is skipped; loop1 (attached) and sr0 (physical, no medium) are kept.
  std::vector<std::string> names;
  for (const auto& d : inv.block_devices) names.push_back(d.name);
  EXPECT_EQ(names, (std::vector<std::string>{"loop1", "nvme0n1", "sda", "sr0"}));
  ASSERT_TRUE(disk(inv, "sda"));
  EXPECT_EQ(disk(inv, "sda")->size_bytes, 7814037168ull * 512);
  EXPECT_TRUE(disk(inv, "sda")->rotational);
  EXPECT_EQ(disk(inv, "sda")->model, "ST4000NM0035-1V4");
  EXPECT_FALSE(disk(inv, "sda")->is_virtual);
  EXPECT_FALSE(disk(inv, "nvme0n1")->rotational);
  EXPECT_EQ(disk(inv, "nvme0n1")->model, "SAMSUNG MZQLB1T9HAJR-00007");  // padding trimmed
  EXPECT_TRUE(disk(inv, "loop1")->is_virtual);
  EXPECT_TRUE(disk(inv, "sr0")->removable);

  names.clear();
  for (const auto& n : inv.interfaces) names.push_back(n.name);
  EXPECT_EQ(names, (std::vector<std::string>{"br0", "eno1", "eno2", "lo", "vnet0"}));  // no bonding_masters
  const NetInterface* eno1 = nic(inv, "eno1");
  EXPECT_EQ(eno1->mac, "3c:fd:fe:a1:b2:c3");
  EXPECT_EQ(eno1->mtu, 9000u);
  EXPECT_EQ(eno1->operstate, "up");
  EXPECT_EQ(eno1->speed_mbps, 10000);
  EXPECT_FALSE(eno1->is_virtual);
  EXPECT_FALSE(eno1->is_bridge);
  EXPECT_EQ(nic(inv, "eno2")->speed_mbps, std::nullopt);  // kernel reports -1 when down
  EXPECT_TRUE(nic(inv, "br0")->is_bridge);
  EXPECT_TRUE(nic(inv, "br0")->vlan_filtering_supported);  // bridge/vlan_filtering exists
  EXPECT_FALSE(eno1->vlan_filtering_supported);
  EXPECT_TRUE(nic(inv, "br0")->is_virtual);
  EXPECT_TRUE(nic(inv, "vnet0")->is_virtual);
  EXPECT_FALSE(nic(inv, "vnet0")->is_bridge);
  EXPECT_TRUE(nic(inv, "lo")->is_virtual);

  EXPECT_EQ(inv.os.pretty_name, "Rocky Linux 9.3 (Blue Onyx)");
  EXPECT_EQ(inv.os.kernel_release, "5.14.0-362.8.1.el9_3.x86_64");
  EXPECT_EQ(inv.os.hostname, "hv-intel-01.example.net");
  EXPECT_EQ(inv.os.machine_id, "6f1c2a9e0b7d4e3f8a5b1c2d3e4f5a6b");
}

TEST(CollectInventory, SmallAmdWithoutSysfsTopology) {
  auto r = collect_inventory(sources_for("amd-small"));
  ASSERT_TRUE(r) << r.error().to_string();
  const HostInventory& inv = *r;
  EXPECT_EQ(inv.cpu.vendor, "AuthenticAMD");
  EXPECT_EQ(inv.cpu.model_name, "AMD Ryzen 5 3400G with Radeon Vega Graphics");
  // No sysfs topology in this tree: cpuinfo's physical id / core id are used.
  EXPECT_EQ(inv.cpu.sockets, 1u);
  EXPECT_EQ(inv.cpu.cores, 4u);
  EXPECT_EQ(inv.cpu.threads, 8u);
  EXPECT_NE(std::find(inv.cpu.flags.begin(), inv.cpu.flags.end(), "svm"), inv.cpu.flags.end());
  ASSERT_EQ(inv.numa_nodes.size(), 1u);
  EXPECT_EQ(inv.numa_nodes[0].cpus.size(), 8u);
  EXPECT_EQ(inv.memory.hugepages_total, 0u);
  ASSERT_EQ(inv.block_devices.size(), 1u);  // zram0 is empty -> skipped
  EXPECT_EQ(inv.block_devices[0].name, "nvme0n1");
  EXPECT_EQ(nic(inv, "enp3s0")->speed_mbps, 1000);
  EXPECT_TRUE(nic(inv, "virbr0")->is_bridge);
  // This tree's kernel has no bridge/vlan_filtering (no CONFIG_BRIDGE_VLAN_FILTERING).
  EXPECT_FALSE(nic(inv, "virbr0")->vlan_filtering_supported);
  EXPECT_EQ(inv.os.pretty_name, "Ubuntu 22.04.3 LTS");
  EXPECT_EQ(inv.os.machine_id, "");  // absent in this tree
}

TEST(CollectInventory, MissingCpuinfoIsAnError) {
  InventorySources s = sources_for("amd-small");
  s.proc_root = fixture("does-not-exist");
  auto r = collect_inventory(s);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::unavailable);
}

TEST(CollectInventory, MalformedMeminfoIsAnError) {
  namespace fs = std::filesystem;
  fs::path tmp = fs::temp_directory_path() / ("strata-inv-" + std::to_string(::getpid()));
  fs::create_directories(tmp / "proc");
  fs::copy_file(fixture("amd-small/proc/cpuinfo"), tmp / "proc/cpuinfo",
                fs::copy_options::overwrite_existing);
  {
    std::ofstream(tmp / "proc/meminfo") << "MemTotal: many kB\n";
  }
  InventorySources s = sources_for("amd-small");
  s.proc_root = (tmp / "proc").string();
  auto r = collect_inventory(s);
  fs::remove_all(tmp);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().field, "meminfo.MemTotal");
}

TEST(InventoryJson, CarriesAllSections) {
  auto r = collect_inventory(sources_for("intel-2s"));
  ASSERT_TRUE(r);
  AccelProbeResult accel{"auto", "tcg", false, "kvm unusable"};
  r->accelerator = accel;
  nlohmann::json j = to_json(*r);
  EXPECT_EQ(j["cpu"]["sockets"], 2);
  EXPECT_EQ(j["numa_nodes"].size(), 2u);
  EXPECT_EQ(j["memory"]["hugepages_total"], 1024);
  EXPECT_EQ(j["block_devices"][2]["name"], "sda");
  EXPECT_EQ(j["interfaces"][1]["speed_mbps"], 10000);
  EXPECT_TRUE(j["interfaces"][2]["speed_mbps"].is_null());
  EXPECT_EQ(j["interfaces"][0]["name"], "br0");
  EXPECT_EQ(j["interfaces"][0]["vlan_filtering_supported"], true);
  EXPECT_FALSE(j["interfaces"][1].contains("vlan_filtering_supported"));  // not a bridge
  EXPECT_EQ(j["os"]["pretty_name"], "Rocky Linux 9.3 (Blue Onyx)");
  EXPECT_TRUE(j["qemu"].is_null());
  EXPECT_EQ(j["accelerator"]["accelerator"], "tcg");
  EXPECT_EQ(j["accelerator"]["kvm_usable"], false);
}

}  // namespace
}  // namespace strata::agent
