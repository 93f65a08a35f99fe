// What an unprivileged QEMU may touch, set up by the agent (root) before each start: the
// VM folder stays root's (group: QEMU's, search only), QEMU owns only its sockets folder
// run/, the files the agent pre-creates for it (console.log, qemu.pid) and the VM's own
// disk files. Base images stay root's and read-only to it. See docs/internals/qemu-sandbox.md.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "argv.h"
#include "strata/agent/qemu_user.h"
#include "strata/common/error.h"

namespace strata::agent::qemu {

// Makes run/ and, when `user` is set, hands QEMU what it needs. Idempotent; applied at
// every start, so a changed --qemu-user takes effect on the VM's next start.
Status prepare_qemu_access(const std::string& vm_dir, const VmFiles& files,
                           const std::vector<std::string>& disk_paths,
                           const std::optional<QemuUser>& user);

}  // namespace strata::agent::qemu
