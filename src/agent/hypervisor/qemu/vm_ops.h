// What the QEMU driver's VM operations (vm_*.cc: snapshots, backups, migration) share: the
// bound on one QMP command, the poll interval of their waits, the guest-agent and fs-freeze
// timeouts, and small questions about a VM's state and block nodes. One definition each,
// so the operations cannot drift apart (a freeze bounded differently by backups and
// snapshots, say).
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "qemu_monitor.h"
#include "strata/model/vm_spec.h"

namespace strata::agent::qemu {

// One QMP command (not a job it starts): QEMU answers within milliseconds unless stuck.
inline constexpr std::chrono::milliseconds kCmd{30000};
// The poll interval of a wait for QEMU or the guest (a job's end, a state change).
inline constexpr std::chrono::milliseconds kPoll{100};
// How long a guest agent has to answer guest-ping before the operation goes on without it
// (crash-consistent): a guest without an agent costs a snapshot or backup this much.
inline constexpr std::chrono::milliseconds kGuestAgentProbe{1500};
// The bound on guest-fsfreeze-freeze (the guest flushes its page cache first).
inline constexpr std::chrono::milliseconds kFreezeTimeout{20000};

// A QEMU process runs the guest's memory (it can be snapshotted or read live).
constexpr bool live(model::VmState s) {
  return s == model::VmState::running || s == model::VmState::paused;
}
// No QEMU process: the disks may be read and written by qemu-img.
constexpr bool offline(model::VmState s) {
  return s == model::VmState::defined || s == model::VmState::stopped ||
         s == model::VmState::crashed;
}

// The format node (not the file protocol node) QEMU opened `file` with, or null.
inline const BlockNodeInfo* format_node(const std::vector<BlockNodeInfo>& nodes,
                                        const std::string& file) {
  for (auto& n : nodes)
    if (n.file == file && n.drv != "file") return &n;
  return nullptr;
}

}  // namespace strata::agent::qemu
