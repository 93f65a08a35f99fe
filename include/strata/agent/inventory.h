// The agent's host inventory: what the physical machine is (CPUs, NUMA, memory, disks,
// NICs, OS) read from /proc, /sys and /etc, plus the probed QEMU capabilities and
// accelerator. Every path is injectable (InventorySources) so tests read fixture trees.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "strata/agent/accel_probe.h"
#include "strata/agent/cpu_models.h"
#include "strata/agent/inventory_qemu.h"
#include "strata/common/error.h"

namespace strata::agent {

// Where collect_inventory reads from. Defaults are the live machine.
struct InventorySources {
  std::string proc_root = "/proc";
  std::string sys_root = "/sys";
  std::string os_release = "/etc/os-release";
  std::string machine_id = "/etc/machine-id";
};

struct CpuInventory {
  std::string vendor;            // "GenuineIntel", "AuthenticAMD"
  std::string model_name;        // "Intel(R) Xeon(R) Gold 6248R CPU @ 3.00GHz"
  uint32_t sockets = 0;          // distinct physical package ids
  uint32_t cores = 0;            // distinct (package, core) pairs, all sockets
  uint32_t threads = 0;          // logical CPUs (online)
  std::vector<std::string> flags;  // from the first processor, in /proc/cpuinfo order
};

struct NumaNode {
  uint32_t id = 0;
  std::vector<uint32_t> cpus;    // expanded from nodeN/cpulist
  uint64_t memory_total_bytes = 0;
  uint64_t memory_free_bytes = 0;
};

struct MemoryInventory {
  uint64_t total_bytes = 0;
  uint64_t available_bytes = 0;
  uint64_t hugepages_total = 0;
  uint64_t hugepages_free = 0;
  uint64_t hugepage_size_bytes = 0;
};

struct BlockDevice {
  std::string name;              // "sda", "nvme0n1", "vda"
  uint64_t size_bytes = 0;
  bool rotational = false;
  bool removable = false;
  std::string model;             // empty when the device has none (virtio, loop)
  bool is_virtual = false;       // under /sys/devices/virtual (loop, ram, zram, dm)
};

struct NetInterface {
  std::string name;
  std::string mac;               // "52:54:00:12:34:56"
  uint32_t mtu = 0;
  std::string operstate;         // "up", "down", "unknown", ...
  std::optional<int64_t> speed_mbps;  // absent when the kernel reports none (-1 / EINVAL)
  bool is_bridge = false;
  // A bridge whose kernel can filter 802.1Q VLANs (CONFIG_BRIDGE_VLAN_FILTERING: sysfs has
  // bridge/vlan_filtering), so a VM's NIC can join it on a VLAN. False for other interfaces.
  bool vlan_filtering_supported = false;
  bool is_virtual = false;       // under /sys/devices/virtual (lo, bridges, veth, tap)
};

struct OsInventory {
  std::string pretty_name;       // os-release PRETTY_NAME
  std::string kernel_release;    // /proc/sys/kernel/osrelease
  std::string hostname;
  std::string machine_id;        // empty if absent
};

struct HostInventory {
  CpuInventory cpu;
  std::vector<NumaNode> numa_nodes;
  MemoryInventory memory;
  std::vector<BlockDevice> block_devices;   // sorted by name
  std::vector<NetInterface> interfaces;     // sorted by name
  OsInventory os;
  // Filled by the agent after probing (not by collect_inventory, which only reads files).
  std::optional<QemuCapabilities> qemu;
  std::optional<AccelProbeResult> accelerator;
  // The named CPU models this host offers with that accelerator (absent when QEMU could
  // not be asked: the host then offers only its own CPU, "host" or "max").
  std::optional<CpuModelProbe> cpu_models;
};

// Reads the physical side of the inventory. Fails when /proc/cpuinfo or /proc/meminfo is
// missing or malformed, or when NUMA files exist but do not parse; optional parts (NUMA,
// disks, NICs, machine-id) are left empty when absent.
Result<HostInventory> collect_inventory(const InventorySources& sources = {});

struct HostProbeOptions {
  std::string qemu_binary = "qemu-system-x86_64";
  std::string accelerator = "auto";  // "auto" | "kvm" | "tcg" (agent configuration)
  std::string state_dir;             // for the probe guest's image; must exist
  std::chrono::milliseconds timeout = std::chrono::seconds(20);
};

// collect_inventory plus the probes: QEMU capabilities over QMP and the accelerator
// choice from the probe guest. Errors: QEMU missing or not answering QMP (unavailable /
// not_found), kvm requested but unusable (failed_precondition).
Result<HostInventory> collect_host_inventory(const InventorySources& sources,
                                             const HostProbeOptions& probe);

// JSON for the API. Field names are snake_case and documented in api/openapi.yaml.
nlohmann::json to_json(const HostInventory& inv);

}  // namespace strata::agent
