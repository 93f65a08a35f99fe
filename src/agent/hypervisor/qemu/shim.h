// Starting QEMU under the per-VM shim, detached from the agent: the agent double-forks,
// the middle child calls setsid() and exits, so the shim (and QEMU, its child) is adopted
// by init and outlives the agent. The shim itself is run_shim() in the same binary.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "strata/agent/qemu_user.h"
#include "strata/common/error.h"

namespace strata::agent::qemu {

struct ShimOptions {
  // The shim drops to this user (setgroups, setgid, setuid) between fork and exec of QEMU;
  // it stays root itself to record QEMU's exit. nullopt: QEMU keeps the shim's user.
  std::optional<QemuUser> run_as;
  // Taps the shim opens (as root, before the drop) and hands to QEMU as fds
  // kFirstTapFd, kFirstTapFd + 1, ... in this order.
  std::vector<std::string> taps;
  // Enforce the VM's HA lease (ha_lease.h): kill QEMU once <vm_dir>/ha-lease has run out.
  // The agent always sets it; the flag on the shim's command line also tells a restarted
  // agent that this shim enforces leases (a shim of an older agent does not).
  bool lease = false;
};

inline constexpr const char* kShimLeaseFlag = "--lease";

// Runs `<shim_exe> shim --vm-dir <vm_dir> [--uid U --gid G --groups G1,G2] [--tap T]...
// [--lease] -- <qemu_argv...>` detached. Returns once the shim has been exec'd (an exec failure is
// reported as an error). The shim writes shim.pid, and exit.json when QEMU ends.
Status spawn_shim(const std::string& shim_exe, const std::string& vm_dir,
                  const std::vector<std::string>& qemu_argv, const ShimOptions& options = {});

// The shim's arguments before `--` (exposed for tests).
std::vector<std::string> shim_args(const std::string& vm_dir, const ShimOptions& options);

// True if `pid` is alive and its command line contains `needle` as one whole argument
// (the VM's uuid, or its folder): a reused pid never passes for our process.
bool process_matches(int pid, const std::string& needle);

// True if the VM in `vm_dir` has a live shim that enforces its HA lease.
bool shim_enforces_lease(const std::string& vm_dir);

}  // namespace strata::agent::qemu
