// The agent's full inventory: files (collect_inventory) plus the QEMU and accelerator
// probes, which run real processes.
#include "strata/agent/inventory.h"

#include <algorithm>

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
  return inv;
}

}  // namespace strata::agent
