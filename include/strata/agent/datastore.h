// Datastores: shared storage for VM disks (docs/internals/datastores.md). A datastore is a
// folder that every host of a pool mounts (NFS, CephFS, GFS2/OCFS2 on a shared LUN), given
// to the agent as --datastore NAME=PATH. Its identity is a UUID in a marker file at its
// root, written by the first agent that opens it, so hosts that report the same UUID see
// the same storage whatever the mount point (vSphere's datastore UUIDs, the same idea).
//
// Layout under PATH:
//   .strata-datastore          {"uuid": "...", "name": "..."}
//   vms/<vm-uuid>/<disk>.qcow2 a VM's disk: self-contained (no backing file), so any host
//                              that mounts the datastore opens it without the base image
//   vms/<vm-uuid>/.tmp-*       files being made (renamed into place when complete)
//
// Who may delete: a datastore disk outlives the VM's copy on one host (HA restart and
// migration run the VM elsewhere from the same file). The agent deletes it only when told
// the VM itself is deleted (UndefineVm.delete_shared_disks).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "strata/agent/image_store.h"
#include "strata/common/error.h"

namespace strata::agent {

struct DatastoreInfo {
  std::string name;   // the operator's name for it on this host (DNS label)
  std::string path;   // the folder, absolute
  std::string id;     // UUID from the marker file
  uint64_t total_bytes = 0;
  uint64_t free_bytes = 0;  // available to the agent (statvfs f_bavail)
};

// The marker file's name at a datastore's root.
inline constexpr const char* kDatastoreMarker = ".strata-datastore";

// Parses "NAME=PATH" (the agent's --datastore flag): NAME a DNS label, PATH absolute.
Result<std::pair<std::string, std::string>> parse_datastore_flag(const std::string& text);

class Datastores {
 public:
  // Opens each (name, folder). The folder must exist and be a directory (not a symlink):
  // the operator mounted it. An absent marker is created (O_EXCL, so two agents opening a
  // new datastore at once end up with one UUID); a malformed one is an error.
  static Result<std::shared_ptr<Datastores>> open(
      const std::vector<std::pair<std::string, std::string>>& mounts,
      std::string qemu_img = "qemu-img");

  // Every datastore with its free space now.
  std::vector<DatastoreInfo> list() const;
  // The datastore `name` of this host; with `id` non-empty its UUID must equal it
  // (failed_precondition otherwise: the folder of that name here is other storage).
  Result<DatastoreInfo> find(const std::string& name, const std::string& id) const;

  // A VM's disk file on a datastore (not_found if absent). Inspected with qemu-img -U: a
  // QEMU on another host may hold it.
  Result<ImageInfo> disk_info(const std::string& name, const std::string& id,
                              const std::string& vm_uuid, const std::string& disk) const;
  // The disk as the VM needs it: the existing file when there is one (the VM ran on some
  // host before: `created` false), else a new one, a full qcow2 copy of `base` (when given;
  // grown to `size_bytes` if larger) or a blank qcow2 of `size_bytes`. An existing file must
  // be a qcow2 with no backing or data file.
  struct Ensured {
    ImageInfo info;
    bool created = false;
  };
  Result<Ensured> ensure_disk(const std::string& name, const std::string& id,
                              const std::string& vm_uuid, const std::string& disk,
                              const ImageInfo* base, uint64_t size_bytes) const;
  // Deletes one disk file (undo of a define that created it).
  Status delete_disk(const std::string& name, const std::string& id, const std::string& vm_uuid,
                     const std::string& disk) const;
  // Deletes the VM's folder on the datastore (the VM is deleted). Absent: ok.
  Status delete_vm(const std::string& name, const std::string& id,
                   const std::string& vm_uuid) const;

 private:
  Datastores() = default;
  Result<std::string> vm_dir(const DatastoreInfo& ds, const std::string& vm_uuid) const;
  std::vector<DatastoreInfo> stores_;  // fixed after open(): read without a lock
  std::string qemu_img_;
};
using DatastoresPtr = std::shared_ptr<Datastores>;

}  // namespace strata::agent
