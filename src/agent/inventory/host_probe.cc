// The agent's full inventory: files (collect_inventory) plus the QEMU and accelerator
// probes, which run real processes.
#include "strata/agent/inventory.h"

#include <algorithm>

#include "strata/common/log.h"

namespace strata::agent {

Result<HostInventory> collect_host_inventory(const InventorySources& sources,
                                             const HostProbeOptions& probe) {
  auto inv = collect_inventory(sources);
  if (!inv) return inv;
  auto caps = probe_qemu_capabilities(probe.qemu_binary, probe.timeout);
  if (!caps) return tl::unexpected(caps.error().wrap("QEMU capabilities"));
  inv->qemu = std::move(*caps);
  AccelProbeOptions ao;
  ao.qemu_binary = probe.qemu_binary;
  ao.state_dir = probe.state_dir;
  ao.timeout = probe.timeout;
  auto accel = probe_accelerator(probe.accelerator, ao);
  if (!accel) return tl::unexpected(accel.error().wrap("accelerator"));
  const auto& built = inv->qemu->accelerators;
  if (std::find(built.begin(), built.end(), accel->accelerator) == built.end())
    return make_error(ErrorCode::failed_precondition,
                      probe.qemu_binary + " was built without " + accel->accelerator, "accelerator");
  inv->accelerator = std::move(*accel);
  // Which named CPU models this host can offer with that accelerator (the cluster's
  // baseline is chosen from them). A failure is not fatal: the host then offers its own
  // CPU only, and the manager keeps it out of any baseline until a later probe answers.
  auto models = probe_cpu_models(probe.qemu_binary, inv->accelerator->accelerator,
                                 inv->qemu->cpu_model_names, probe.timeout);
  if (models)
    inv->cpu_models = std::move(*models);
  else
    logger("agent.inventory")->warn("CPU model probe failed, no named models offered: {}",
                                    models.error().to_string());
  return inv;
}

}  // namespace strata::agent
