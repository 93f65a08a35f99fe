// HostInventory -> v1::HostInventory and the enrollment JSON (host_inventory_proto.h).
#include "host_inventory_proto.h"

#include "strata/agent/qemu_hypervisor.h"

#ifndef STRATA_VERSION
#define STRATA_VERSION "0.0.0"
#endif

namespace strata::agent::cli {

v1::HostInventory inventory_to_proto(const HostInventory& inv, const Datastores* datastores,
                                     uint32_t api_level) {
  v1::HostInventory p;
  p.set_hostname(inv.os.hostname);
  if (inv.accelerator) {
    p.set_accelerator(inv.accelerator->accelerator);
    p.set_accelerator_reason(inv.accelerator->reason);
  }
  p.set_cpu_threads(inv.cpu.threads);
  p.set_cpu_cores(inv.cpu.cores);
  p.set_cpu_sockets(inv.cpu.sockets);
  p.set_cpu_model(inv.cpu.model_name);
  p.set_memory_total_bytes(inv.memory.total_bytes);
  p.set_os(inv.os.pretty_name);
  p.set_kernel(inv.os.kernel_release);
  if (inv.qemu) p.set_qemu_version(inv.qemu->version);
  p.set_agent_version(STRATA_VERSION);
  const uint32_t reported = wire::reported_api_level(api_level);
  if (reported) p.set_api_level(reported);
  auto j = to_json(inv);
  // The agent itself: the manager reads its API level here (enrollment, upgrades).
  j["agent"] = {{"version", STRATA_VERSION}, {"hardware_profile", kQemuHardwareProfileVersion}};
  if (reported) j["agent"]["api_level"] = reported;
  // Shared storage this host mounts: the manager places VMs with datastore disks only on
  // hosts that report the datastore's UUID.
  j["datastores"] = nlohmann::json::array();
  if (datastores)
    for (const auto& ds : datastores->list())
      j["datastores"].push_back({{"name", ds.name},
                                 {"id", ds.id},
                                 {"path", ds.path},
                                 {"total_bytes", ds.total_bytes},
                                 {"free_bytes", ds.free_bytes}});
  p.set_inventory_json(j.dump());
  return p;
}

nlohmann::json enrollment_inventory(const v1::HostInventory& inv) {
  nlohmann::json out = nlohmann::json::object();
  auto j = nlohmann::json::parse(inv.inventory_json(), nullptr, false);
  if (!j.is_discarded() && j.is_object()) out = j;
  out["accelerator"] = inv.accelerator();
  out["cpu_threads"] = inv.cpu_threads();
  out["memory_total_bytes"] = inv.memory_total_bytes();
  return out;
}

}  // namespace strata::agent::cli
