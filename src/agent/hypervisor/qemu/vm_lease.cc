// HA leases in the QEMU driver (ha_lease.h; docs/internals/ha.md, "Leases"): a manager
// heartbeat renews the leases of the VMs it names and drops the others'. The files are
// written outside the driver's lock (the lock only copies the VM table).
#include <filesystem>
#include <set>

#include "ha_lease.h"
#include "qemu_hypervisor.h"
#include "shim.h"
#include "strata/common/atomic_file.h"
#include "strata/common/log.h"

namespace strata::agent::qemu {

std::vector<std::string> QemuHypervisor::renew_ha_leases(const std::vector<std::string>& vms,
                                                         std::chrono::milliseconds lease) {
  const std::set<std::string> wanted(vms.begin(), vms.end());
  struct Entry {
    std::string name, dir, uuid;
    int pid = 0;
    bool starting = false;
  };
  std::vector<Entry> entries;
  {
    std::lock_guard lk(mu_);
    for (const auto& [name, vm] : vms_)
      entries.push_back({name, vm->dir, vm->spec.uuid, vm->rec.pid, vm->job == VmJob::start});
  }
  // The expiry counts from now, after the request arrived: never earlier than the manager
  // sent it, and the manager adds its heartbeat deadline to its margin for the difference.
  const int64_t expires = lease_clock_ms() + lease.count();
  std::vector<std::string> in_force;
  for (const auto& e : entries) {
    const std::string path = e.dir + "/" + kLeaseFile;
    if (!wanted.count(e.name)) {
      std::error_code ec;
      std::filesystem::remove(path, ec);  // not named: no lease (missing is fine)
      continue;
    }
    if (auto s = write_file_atomic(path, format_lease(expires), kVmFileMode); !s) {
      logger("agent.qemu")->warn("HA lease not renewed vm={} error={}", e.name,
                                 s.error().message);
      continue;
    }
    // A QEMU that runs (or is being started) must be under a shim that enforces the lease;
    // one started by an older agent's shim is not, and the manager must not rely on it.
    const bool qemu_may_run = e.starting || process_matches(e.pid, e.uuid);
    if (qemu_may_run && !e.starting && !shim_enforces_lease(e.dir)) continue;
    in_force.push_back(e.name);
  }
  return in_force;
}

}  // namespace strata::agent::qemu
