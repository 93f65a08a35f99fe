// External disk snapshots of a VM: the record kept in the VM's state folder
// (snapshots.json, written atomically) and the pure rules on the snapshot tree. The driver's
// operations are QemuHypervisor::snapshot_* (vm_snapshot.cc); the design (why external,
// the file layout, revert and delete) is in docs/internals/qemu-driver.md, "Snapshots".
//
// Each snapshot freezes one qcow2 file per disk: the file that was the disk's active
// (written) file when the snapshot was taken. A new empty overlay backed by it becomes the
// active file. So a snapshot's file never changes after it is taken (until a delete of
// its parent streams the parent's data into it), and the files form a tree: a snapshot's
// file is backed by its parent snapshot's file (the first snapshot's by the disk's base).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "strata/common/error.h"

namespace strata::agent::qemu {

inline constexpr const char* kSnapshotsFile = "snapshots.json";

struct SnapshotRecord {
  std::string name;
  std::string parent;  // "" for a root snapshot
  int64_t created_unix_ms = 0;
  // "filesystem": taken with the guest's filesystems frozen by qemu-guest-agent; "crash":
  // as after a power cut (no agent answered, or the VM was not running).
  std::string consistency;
  std::string vm_state;                      // the VM's state when taken ("running", ...)
  std::map<std::string, std::string> files;  // disk name -> the frozen file (absolute)
};

struct SnapshotTree {
  uint64_t next_layer = 1;  // names the next overlay file: "<disk>.l<next_layer>.qcow2"
  std::string current;      // the snapshot the active files are backed by ("" none)
  std::map<std::string, std::string> active;  // disk name -> its written file (absolute)
  std::vector<SnapshotRecord> snapshots;      // in creation order

  const SnapshotRecord* find(const std::string& name) const;
  SnapshotRecord* find(const std::string& name);
  bool empty() const { return snapshots.empty(); }
  // The snapshots whose parent is `name`.
  std::vector<std::string> children(const std::string& name) const;
  // `name` and its ancestors, nearest first (the chain below the active files when `name`
  // is current).
  std::vector<std::string> lineage(const std::string& name) const;
  // Every file the tree names (active and frozen), for QEMU's access rights.
  std::vector<std::string> all_files() const;
};

// not_found when the VM has no snapshots.json (no snapshot was ever taken).
Result<SnapshotTree> read_snapshot_tree(const std::string& vm_dir);
Status write_snapshot_tree(const std::string& vm_dir, const SnapshotTree& t);
// The tree's JSON (exposed for tests); parse rejects unknown shapes.
std::string snapshot_tree_to_json(const SnapshotTree& t);
Result<SnapshotTree> snapshot_tree_from_json(const std::string& text);

}  // namespace strata::agent::qemu
