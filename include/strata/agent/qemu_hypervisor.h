// Factory for the QEMU driver (src/agent/hypervisor/qemu/). Nothing outside that folder
// and the agent's main() knows QEMU exists.
#pragma once

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>

#include "strata/agent/datastore.h"
#include "strata/agent/hypervisor.h"
#include "strata/agent/image_store.h"
#include "strata/agent/network.h"
#include "strata/agent/qemu_user.h"
#include "strata/common/clock.h"

namespace strata::agent {

// The newest VM hardware profile (device layout version, src/agent/hypervisor/qemu/
// hardware_profile.h) this driver builds; the inventory reports it to the manager.
inline constexpr int kQemuHardwareProfileVersion = 4;

struct QemuOptions {
  std::string state_dir;                       // per-VM folders: <state_dir>/vms/<name>/
  std::string qemu_binary = "qemu-system-x86_64";
  std::string accelerator = "tcg";             // decided by the inventory probe: "kvm" | "tcg"
  ImageStore* images = nullptr;                // not owned; must outlive the hypervisor
  Network* network = nullptr;                  // not owned; may be null (then only user-mode NICs)
  // Shared storage (--datastore); not owned; may be null (then no disk may name a datastore).
  const Datastores* datastores = nullptr;
  std::string shim_exe;                        // binary run as `<shim_exe> shim ...` (strata-agent)
  ClockPtr clock;                              // defaults to system_clock()
  size_t console_log_max_bytes = 1 << 20;      // bounded serial log (rotated to .1)
  // The user QEMU runs as (the shim drops to it before exec; see decide_qemu_user);
  // nullopt: the agent's own user. The state and image folders must be searchable by it.
  std::optional<QemuUser> run_as;
  // QEMU's seccomp filter (-sandbox ...); false only when the binary lacks the option.
  bool sandbox = true;
  // The named CPU models this host offers with `accelerator` (the inventory's probe,
  // usable ones, sorted); a VM may name only these, or "host" (KVM) / "max". When the
  // probe did not answer (cpu_models_probed false) no named model is accepted.
  std::vector<std::string> cpu_models;
  bool cpu_models_probed = false;
  // The folder holding this host's migration identity (ca.crt, migration.crt,
  // migration.key; strata/agent/migration.h); empty: TLS migrations are refused.
  std::string migration_tls_dir;
  // Diffie-Hellman parameters (PKCS#3 PEM) for the target's TLS endpoint. Without them
  // QEMU generates 2048-bit parameters each time it loads server credentials: 0.2-1.6 s of
  // every TLS migration's prepare step (scripts/bench migrate). Empty: QEMU generates.
  std::string migration_dh_params_pem;
  // Guest facts (OS, host name, addresses; VmStatus::guest): each running VM's
  // qemu-guest-agent is asked at most once per this interval of clock time (each command
  // waits at most guest_facts_timeout); zero: never asked.
  std::chrono::milliseconds guest_facts_interval{std::chrono::seconds(30)};
  std::chrono::milliseconds guest_facts_timeout{std::chrono::seconds(5)};
  // UEFI firmware (Debian's ovmf; docs/internals/firmware.md): the code, opened read-only
  // by every UEFI VM, and the variables template each UEFI VM gets a copy of at define.
  std::string uefi_code = "/usr/share/OVMF/OVMF_CODE_4M.fd";
  std::string uefi_vars_template = "/usr/share/OVMF/OVMF_VARS_4M.fd";
};

Result<HypervisorPtr> make_qemu_hypervisor(QemuOptions options);

// Entry point of the per-VM shim process (`strata-agent shim ...`): it becomes the parent of
// QEMU in its own session, waits for it, and records its exit status in the VM folder so
// the agent can report a crash that happened while it was down. Returns the process exit code.
int run_shim(int argc, char** argv);

}  // namespace strata::agent
