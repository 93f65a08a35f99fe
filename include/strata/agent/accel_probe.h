// Accelerator choice, decided by running a tiny probe guest (a 512-byte boot sector that
// exercises cpuid, fxsave and cmpxchg8b and reports through isa-debug-exit), not by the
// existence of /dev/kvm: nested or emulated KVM implementations open /dev/kvm fine and
// then fail to run guests.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "strata/common/error.h"

namespace strata::agent {

// What the probe guest writes to the isa-debug-exit port. QEMU then exits with
// (value << 1) | 1.
enum class ProbeGuestCode : uint8_t {
  pass = 0x31,              // every check passed -> QEMU exit status 99
  cpuid_failed = 0x11,      // cpuid leaf 0 returned an empty vendor
  no_fxsr = 0x12,           // cpuid leaf 1 lacks FXSR
  fxsave_mismatch = 0x13,   // fxsave did not store the FCW set by fninit
  cmpxchg8b_failed = 0x14,  // cmpxchg8b did not swap
};
constexpr int qemu_exit_status(ProbeGuestCode code) {
  return (static_cast<int>(code) << 1) | 1;
}
constexpr uint16_t kProbeDebugExitPort = 0xf4;

// The probe guest: a 512-byte MBR boot sector (ends in 0x55 0xAA), real-mode code.
std::vector<uint8_t> make_probe_boot_sector();

struct AccelProbeOptions {
  std::string qemu_binary = "qemu-system-x86_64";
  std::string state_dir;        // where probe.img is written (must exist)
  std::chrono::milliseconds timeout = std::chrono::seconds(10);
  // CPU model per accelerator. KVM guests run with the host model in production, so that
  // is what is probed; empty means QEMU's default.
  std::string kvm_cpu = "host";
  std::string tcg_cpu;
};

// The outcome of one probe run under one accelerator.
struct ProbeRun {
  std::string accel;            // "kvm" | "tcg"
  bool passed = false;
  int exit_status = -1;         // QEMU's exit status (-1 if killed/signaled)
  bool timed_out = false;
  std::string detail;           // human summary incl. a stderr excerpt on failure
};

// Boots the probe guest once under `accel` ("kvm" or "tcg", CPU model from opts). Error only when QEMU cannot be started or the image cannot be written;
// a guest that fails is a ProbeRun with passed=false.
Result<ProbeRun> run_probe_guest(const std::string& accel, const AccelProbeOptions& opts);

struct AccelProbeResult {
  std::string requested;        // "auto" | "kvm" | "tcg"
  std::string accelerator;      // the choice: "kvm" | "tcg"
  bool kvm_usable = false;      // the probe guest passed under KVM
  std::string reason;           // why this choice (probe detail, or "tcg requested")
};

// requested "auto": kvm if the KVM probe passes, else tcg. "kvm": kvm if the probe
// passes, else failed_precondition carrying the reason. "tcg": tcg without probing
// KVM. Anything else: invalid_argument.
Result<AccelProbeResult> probe_accelerator(const std::string& requested,
                                           const AccelProbeOptions& opts);

// Pure decision step, split out for unit tests. `kvm_run` is the KVM probe's outcome
// (ignored for "tcg").
Result<AccelProbeResult> decide_accelerator(const std::string& requested,
                                            const ProbeRun& kvm_run);

nlohmann::json to_json(const AccelProbeResult& r);

}  // namespace strata::agent
