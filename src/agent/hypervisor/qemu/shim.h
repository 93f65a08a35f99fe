// Starting QEMU under the per-VM shim, detached from the agent: the agent double-forks,
// the middle child calls setsid() and exits, so the shim (and QEMU, its child) is adopted
// by init and outlives the agent. The shim itself is run_shim() in the same binary.
#pragma once

#include <string>
#include <vector>

#include "strata/common/error.h"

namespace strata::agent::qemu {

// Runs `<shim_exe> shim --vm-dir <vm_dir> -- <qemu_argv...>` detached. Returns once the
// shim has been exec'd (an exec failure is reported as an error). The shim writes
// shim.pid, and exit.json when QEMU ends.
Status spawn_shim(const std::string& shim_exe, const std::string& vm_dir,
                  const std::vector<std::string>& qemu_argv);

// True if `pid` is alive and its command line contains `needle` as one whole argument
// (the VM's uuid, or its folder): a reused pid never passes for our process.
bool process_matches(int pid, const std::string& needle);

}  // namespace strata::agent::qemu
