// The HA lease of a VM (docs/internals/ha.md, "Leases"): self-fencing that does not rely
// on the agent being alive. The manager grants leases with its heartbeats; the agent
// writes each granted VM's lease expiry into <vm_dir>/ha-lease; the VM's shim, QEMU's
// parent, reads that file twice a second and kills QEMU once the expiry has passed. So a
// host cut off from the manager (or whose agent is dead) stops its HA VMs by itself, and
// the manager may restart them elsewhere once the last lease it granted plus a margin has
// run out, without a power fence.
//
// Time is CLOCK_BOOTTIME in milliseconds: one clock that the agent and every shim on the
// host share (independent processes), that never goes back and keeps counting through a
// suspend (a host that slept past its leases stops its VMs when it wakes).
// The parsing and the verdict are pure (tested without processes); a malformed file
// counts as expired: when in doubt, the VM stops rather than risk two copies.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace strata::agent::qemu {

inline constexpr const char* kLeaseFile = "ha-lease";             // written by the agent
inline constexpr const char* kLeaseExpiredFile = "ha-lease-expired";  // written by the shim

// Milliseconds of CLOCK_BOOTTIME (the lease clock).
int64_t lease_clock_ms();

// The file's text for a lease that runs out at `expires_ms` (lease clock).
std::string format_lease(int64_t expires_ms);
// The expiry in a lease file's text; nullopt when it is not one.
std::optional<int64_t> parse_lease(std::string_view text);

enum class LeaseVerdict {
  none,     // no lease file: the VM is not under a lease
  valid,    // the lease runs
  expired,  // run out, or a file that is not a lease
};
// `file`: the lease file's content, nullopt when there is none.
LeaseVerdict judge_lease(const std::optional<std::string>& file, int64_t now_ms);

// The verdict for <vm_dir>/ha-lease now (reads the file).
LeaseVerdict read_lease_verdict(const std::string& vm_dir);

}  // namespace strata::agent::qemu
