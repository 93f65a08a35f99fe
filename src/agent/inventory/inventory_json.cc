// JSON encoding of the host inventory and QEMU capabilities for the agent's API.
#include <nlohmann/json.hpp>

#include "strata/agent/inventory.h"

namespace strata::agent {

nlohmann::json to_json(const QemuCapabilities& caps) {
  nlohmann::json machines = nlohmann::json::array();
  for (const auto& m : caps.machines) {
    nlohmann::json j = {{"name", m.name}, {"is_default", m.is_default},
                        {"deprecated", m.deprecated}, {"cpu_max", m.cpu_max}};
    if (!m.alias.empty()) j["alias"] = m.alias;
    machines.push_back(std::move(j));
  }
  return {{"binary", caps.binary},
          {"version", caps.version},
          {"package", caps.package},
          {"machines", std::move(machines)},
          {"accelerators", caps.accelerators},
          {"has_query_accelerators", caps.has_query_accelerators},
          {"kvm_present", caps.kvm_present},
          {"sandbox", caps.sandbox},
          {"cpu_model_names", caps.cpu_model_names}};
}

nlohmann::json to_json(const HostInventory& inv) {
  nlohmann::json numa = nlohmann::json::array();
  for (const auto& n : inv.numa_nodes)
    numa.push_back({{"id", n.id}, {"cpus", n.cpus}, {"memory_total_bytes", n.memory_total_bytes},
                    {"memory_free_bytes", n.memory_free_bytes}});
  nlohmann::json disks = nlohmann::json::array();
  for (const auto& d : inv.block_devices)
    disks.push_back({{"name", d.name}, {"size_bytes", d.size_bytes}, {"rotational", d.rotational},
                     {"removable", d.removable}, {"model", d.model}, {"virtual", d.is_virtual}});
  nlohmann::json nics = nlohmann::json::array();
  for (const auto& n : inv.interfaces) {
    nlohmann::json j = {{"name", n.name}, {"mac", n.mac}, {"mtu", n.mtu}, {"operstate", n.operstate},
                        {"bridge", n.is_bridge}, {"virtual", n.is_virtual}};
    j["speed_mbps"] = n.speed_mbps ? nlohmann::json(*n.speed_mbps) : nlohmann::json(nullptr);
    if (n.is_bridge) j["vlan_filtering_supported"] = n.vlan_filtering_supported;
    nics.push_back(std::move(j));
  }
  nlohmann::json j = {
      {"cpu", {{"vendor", inv.cpu.vendor}, {"model_name", inv.cpu.model_name},
               {"sockets", inv.cpu.sockets}, {"cores", inv.cpu.cores},
               {"threads", inv.cpu.threads}, {"flags", inv.cpu.flags}}},
      {"numa_nodes", std::move(numa)},
      {"memory", {{"total_bytes", inv.memory.total_bytes},
                  {"available_bytes", inv.memory.available_bytes},
                  {"hugepages_total", inv.memory.hugepages_total},
                  {"hugepages_free", inv.memory.hugepages_free},
                  {"hugepage_size_bytes", inv.memory.hugepage_size_bytes}}},
      {"block_devices", std::move(disks)},
      {"interfaces", std::move(nics)},
      {"os", {{"pretty_name", inv.os.pretty_name}, {"kernel_release", inv.os.kernel_release},
              {"hostname", inv.os.hostname}, {"machine_id", inv.os.machine_id}}},
  };
  j["qemu"] = inv.qemu ? to_json(*inv.qemu) : nlohmann::json(nullptr);
  j["accelerator"] = inv.accelerator ? to_json(*inv.accelerator) : nlohmann::json(nullptr);
  j["cpu_models"] = inv.cpu_models ? to_json(*inv.cpu_models) : nlohmann::json(nullptr);
  return j;
}

}  // namespace strata::agent
