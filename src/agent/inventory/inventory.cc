// Collects the physical host inventory from /proc, /sys and /etc (roots injectable).
#include "strata/agent/inventory.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <optional>
#include <regex>
#include <set>
#include <sstream>

#include "strata/agent/inventory_parsers.h"

namespace strata::agent {
namespace fs = std::filesystem;
namespace {

// Whole file, or nullopt when it cannot be read (absent, EINVAL from sysfs attributes
// like a down NIC's speed).
std::optional<std::string> read_text(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) return std::nullopt;
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return std::nullopt;
  return ss.str();
}

std::string read_trimmed(const fs::path& p) {
  auto t = read_text(p);
  return t ? std::string(trim(*t)) : std::string();
}

std::optional<int64_t> read_i64(const fs::path& p) {
  auto t = read_text(p);
  if (!t) return std::nullopt;
  auto v = parse_i64(*t);
  return v ? std::optional(*v) : std::nullopt;
}

// Entries of a directory (sorted by name); empty when it does not exist.
std::vector<fs::path> list_dir(const fs::path& dir) {
  std::vector<fs::path> out;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec))
    out.push_back(it->path());
  std::sort(out.begin(), out.end());
  return out;
}

// sysfs class entries are symlinks into /sys/devices; virtual devices live under
// devices/virtual.
bool is_virtual_device(const fs::path& class_entry) {
  std::error_code ec;
  fs::path target = fs::canonical(class_entry, ec);
  if (ec) return false;
  return target.generic_string().find("/devices/virtual/") != std::string::npos;
}

Status fill_cpu(const InventorySources& src, HostInventory& inv) {
  auto text = read_text(fs::path(src.proc_root) / "cpuinfo");
  if (!text) return unavailable("cannot read " + src.proc_root + "/cpuinfo");
  auto procs = parse_cpuinfo(*text);
  if (!procs) return tl::unexpected(procs.error().wrap("cpuinfo"));
  const auto& first = procs->front();
  inv.cpu.vendor = first.vendor;
  inv.cpu.model_name = first.model_name;
  inv.cpu.flags = first.flags;
  inv.cpu.threads = static_cast<uint32_t>(procs->size());

  // Topology: sysfs is authoritative where present; cpuinfo's ids are the fallback.
  std::set<int64_t> packages;
  std::set<std::pair<int64_t, int64_t>> cores;
  fs::path cpu_dir = fs::path(src.sys_root) / "devices/system/cpu";
  for (const auto& p : *procs) {
    fs::path topo = cpu_dir / ("cpu" + std::to_string(p.processor)) / "topology";
    int64_t pkg = read_i64(topo / "physical_package_id").value_or(p.physical_id);
    int64_t core = read_i64(topo / "core_id").value_or(p.core_id);
    if (core < 0) core = p.processor;  // unknown core id: count each thread as a core
    packages.insert(pkg);
    cores.insert({pkg, core});
  }
  inv.cpu.sockets = static_cast<uint32_t>(packages.size());
  inv.cpu.cores = static_cast<uint32_t>(cores.size());
  return {};
}

Status fill_memory(const InventorySources& src, HostInventory& inv) {
  auto text = read_text(fs::path(src.proc_root) / "meminfo");
  if (!text) return unavailable("cannot read " + src.proc_root + "/meminfo");
  auto m = parse_meminfo(*text);
  if (!m) return tl::unexpected(m.error().wrap("meminfo"));
  auto get = [&](const char* k) { auto it = m->find(k); return it == m->end() ? 0 : it->second; };
  if (!m->count("MemTotal")) return invalid_argument("meminfo.MemTotal", "MemTotal missing");
  inv.memory.total_bytes = get("MemTotal");
  // MemAvailable exists since Linux 3.14; MemFree is the conservative fallback.
  inv.memory.available_bytes = m->count("MemAvailable") ? get("MemAvailable") : get("MemFree");
  inv.memory.hugepages_total = get("HugePages_Total");
  inv.memory.hugepages_free = get("HugePages_Free");
  inv.memory.hugepage_size_bytes = get("Hugepagesize");
  return {};
}

Status fill_numa(const InventorySources& src, HostInventory& inv) {
  static const std::regex node_re("node([0-9]+)");
  for (const auto& dir : list_dir(fs::path(src.sys_root) / "devices/system/node")) {
    std::smatch m;
    std::string name = dir.filename().string();
    if (!std::regex_match(name, m, node_re)) continue;
    NumaNode node;
    node.id = static_cast<uint32_t>(std::stoul(m[1].str()));
    auto cpus = parse_cpu_list(read_trimmed(dir / "cpulist"));
    if (!cpus) return tl::unexpected(cpus.error().wrap(name));
    node.cpus = std::move(*cpus);
    if (auto text = read_text(dir / "meminfo")) {
      auto mi = parse_node_meminfo(*text);
      if (!mi) return tl::unexpected(mi.error().wrap(name));
      if (auto it = mi->find("MemTotal"); it != mi->end()) node.memory_total_bytes = it->second;
      if (auto it = mi->find("MemFree"); it != mi->end()) node.memory_free_bytes = it->second;
    }
    inv.numa_nodes.push_back(std::move(node));
  }
  std::sort(inv.numa_nodes.begin(), inv.numa_nodes.end(),
            [](const NumaNode& a, const NumaNode& b) { return a.id < b.id; });
  return {};
}

void fill_block(const InventorySources& src, HostInventory& inv) {
  for (const auto& dir : list_dir(fs::path(src.sys_root) / "block")) {
    BlockDevice d;
    d.name = dir.filename().string();
    // "size" is always in 512-byte sectors, whatever the logical block size.
    d.size_bytes = static_cast<uint64_t>(std::max<int64_t>(0, read_i64(dir / "size").value_or(0))) * 512;
    d.rotational = read_i64(dir / "queue/rotational").value_or(0) == 1;
    d.removable = read_i64(dir / "removable").value_or(0) == 1;
    d.model = read_trimmed(dir / "device/model");
    d.is_virtual = is_virtual_device(dir);
    // Unused loop/ram/zram devices: present on every host, say nothing.
    if (d.is_virtual && d.size_bytes == 0) continue;
    inv.block_devices.push_back(std::move(d));
  }
}

void fill_net(const InventorySources& src, HostInventory& inv) {
  for (const auto& dir : list_dir(fs::path(src.sys_root) / "class/net")) {
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) continue;  // bonding_masters is a plain file
    NetInterface n;
    n.name = dir.filename().string();
    n.mac = read_trimmed(dir / "address");
    n.mtu = static_cast<uint32_t>(std::max<int64_t>(0, read_i64(dir / "mtu").value_or(0)));
    n.operstate = read_trimmed(dir / "operstate");
    if (auto s = read_i64(dir / "speed"); s && *s >= 0) n.speed_mbps = *s;
    n.is_bridge = fs::is_directory(dir / "bridge", ec);
    n.vlan_filtering_supported = n.is_bridge && fs::exists(dir / "bridge/vlan_filtering", ec);
    n.is_virtual = is_virtual_device(dir);
    inv.interfaces.push_back(std::move(n));
  }
}

void fill_os(const InventorySources& src, HostInventory& inv) {
  if (auto text = read_text(src.os_release)) {
    auto kv = parse_os_release(*text);
    inv.os.pretty_name = kv.count("PRETTY_NAME") ? kv["PRETTY_NAME"] : kv["NAME"];
  }
  inv.os.kernel_release = read_trimmed(fs::path(src.proc_root) / "sys/kernel/osrelease");
  inv.os.hostname = read_trimmed(fs::path(src.proc_root) / "sys/kernel/hostname");
  inv.os.machine_id = read_trimmed(src.machine_id);
}

}  // namespace

Result<HostInventory> collect_inventory(const InventorySources& sources) {
  HostInventory inv;
  if (auto st = fill_cpu(sources, inv); !st) return tl::unexpected(st.error());
  if (auto st = fill_memory(sources, inv); !st) return tl::unexpected(st.error());
  if (auto st = fill_numa(sources, inv); !st) return tl::unexpected(st.error());
  fill_block(sources, inv);
  fill_net(sources, inv);
  fill_os(sources, inv);
  return inv;
}

}  // namespace strata::agent
