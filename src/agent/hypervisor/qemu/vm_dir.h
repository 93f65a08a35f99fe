// The VM's state folder on disk (<state_dir>/vms/<name>/): file names, atomic writes, and
// the records kept there (state.json by the agent, exit.json by the shim). This folder is
// what lets a restarted agent re-attach to running VMs or learn how they ended.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "hardware_profile.h"
#include "strata/agent/hypervisor.h"
#include "strata/common/atomic_file.h"
#include "strata/common/error.h"
#include "strata/model/vm_spec.h"

namespace strata::agent::qemu {

inline constexpr const char* kSpecFile = "spec.json";
// A linked clone's source VM (its disks are overlays of that VM's files): the source's
// undefine is refused while the clone exists (vm_clone.cc).
inline constexpr const char* kLinkedToFile = "linked-to";
inline constexpr const char* kStateFile = "state.json";
inline constexpr const char* kExitFile = "exit.json";    // written by the shim
inline constexpr const char* kShimPidFile = "shim.pid";  // written by the shim
inline constexpr const char* kQemuLog = "qemu.log";      // QEMU's stdout/stderr
// A UEFI VM's firmware variables (OVMF pflash1), copied from the host's template at define
// and written by the guest's firmware from then on (docs/internals/firmware.md).
inline constexpr const char* kUefiVarsFile = "uefi-vars.fd";
inline constexpr size_t kMaxUefiVarsBytes = 16 << 20;  // OVMF's are 128 KiB .. 540 KiB
inline std::string uefi_vars_path(const std::string& vm_dir) {
  return vm_dir + "/" + kUefiVarsFile;
}

// VM files are written with strata::write_file_atomic (strata/common/atomic_file.h) and
// this mode.
inline constexpr unsigned kVmFileMode = 0640;
// not_found when absent; invalid_argument when larger than `max_bytes`.
Result<std::string> read_small_file(const std::string& path, size_t max_bytes = 1 << 20);

// How QEMU ended, as the shim saw it from waitpid().
struct ExitRecord {
  int qemu_pid = 0;
  bool signaled = false;
  int code = 0;  // exit status, or signal number when signaled
  int64_t at_unix_ms = 0;
};
Status write_exit_record(const std::string& vm_dir, const ExitRecord& r);
Result<ExitRecord> read_exit_record(const std::string& vm_dir);

// The agent's record of the VM's lifecycle.
struct StateRecord {
  model::VmState state = model::VmState::defined;
  int64_t changed_unix_ms = 0;
  std::string reason;
  int pid = 0;  // QEMU pid while it runs
  std::string accelerator;
  std::optional<VmExit> last_exit;
  // Fixed at define; version 0 for VMs defined before profiles (they keep that layout).
  HardwareProfile profile;
};
Status write_state_record(const std::string& vm_dir, const StateRecord& r);
Result<StateRecord> read_state_record(const std::string& vm_dir);

int64_t now_unix_ms();

}  // namespace strata::agent::qemu
