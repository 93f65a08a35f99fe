// VM import in the manager (docs/internals/import.md): an archive uploaded through the API
// (an OVA as it is; a libvirt import as the CLI writes it: domain.xml + disk-<i>) becomes
// catalog images (each disk checked with qemu-img info and converted to qcow2) and an
// ordinary VM created through VmService, based on them. Nothing of the archive reaches a
// command line but files the manager wrote itself, with their formats forced.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "strata/common/error.h"
#include "strata/manager/controllers/image_distribution.h"
#include "strata/manager/controllers/image_probe.h"
#include "strata/manager/tasks/running_tasks.h"
#include "strata/manager/tasks/task_tracker.h"
#include "strata/manager/vms/vm_service.h"
#include "strata/model/vm_import.h"
#include "strata/store/store.h"

namespace strata::manager {

struct ImportRequest {
  model::ImportFormat format = model::ImportFormat::ova;
  std::string archive_path;  // the uploaded body (a tar), a file of the manager's
  std::string name;          // the VM's name; empty: the descriptor's (must be a DNS label)
  std::string host;          // pinned host name; empty: the scheduler places it
  bool start = false;
  std::string actor;
  model::NetworkMap networks;  // source network -> bridge (validated by the parsers)
};

struct ImportedDisk {
  std::string disk;   // the VM's disk name
  std::string image;  // the catalog image it is based on ("" for a blank disk)
  std::string source_format;
  int64_t virtual_size = 0;
};

struct ImportResult {
  VmChange change;
  // The import's own task (kind vm.import, target_kind import, target_id the VM's name),
  // as it ended; absent when the importer has no task tracker.
  std::optional<store::TaskRecord> import_task;
  std::vector<ImportedDisk> disks;
  std::vector<std::string> unmapped;
};

// One member of an import archive: where its bytes are.
struct ArchiveMember {
  std::string name;
  uint64_t offset = 0;
  uint64_t size = 0;
};

// Reads the headers of the tar at `path` (bounded: kMaxArchiveMembers, sizes within the
// file). invalid_argument naming "body" or "archive.members[i]...".
Result<std::vector<ArchiveMember>> index_archive(const std::string& path);

class VmImporter {
 public:
  // `work_dir`: where intermediate files go (the catalog's uploads/ folder, emptied at
  // start, on the catalog's file system so commit_upload renames).
  VmImporter(store::Store& store, ImageDistributor& images, VmService& vms, std::string work_dir);

  // The descriptor alone, mapped (POST /api/v1/vms/import/plan; the CLI learns which
  // files a libvirt domain needs).
  static Result<model::ImportPlan> plan(model::ImportFormat format, std::string_view descriptor,
                                        const model::NetworkMap& networks = {});

  // With a task tracker, once the descriptor and the names are judged, the import records
  // a task (vm.import; target_kind "import", target_id the VM's name) whose progress
  // follows the disks' unpacking and `qemu-img convert -p`, and which ends succeeded
  // (result {vm, vm_id, task}) or failed with the refusal.
  Result<ImportResult> import(const ImportRequest& request);

  void set_convert_limits(const ConvertLimits& limits) { convert_limits_ = limits; }
  void set_tasks(TaskTracker* tasks) { tasks_ = tasks; }
  // The manager's registry of in-process tasks: the import's task is registered while the
  // import runs, so its lease is renewed (tasks/task_leases.h).
  void set_running_tasks(RunningTasks* running) { running_ = running; }

 private:
  store::Store& store_;
  ImageDistributor& images_;
  VmService& vms_;
  std::string work_dir_;
  ConvertLimits convert_limits_;
  TaskTracker* tasks_ = nullptr;
  RunningTasks* running_ = nullptr;
};

// Copies the gzip stream at [offset, offset+size) of `in` inflated into the file `out`
// (concatenated gzip members are read in turn). More than `max_out` inflated bytes, or a
// stream that is not gzip or ends early, is invalid_argument on `field`. `on_read` (if
// set) is told the compressed bytes read so far after each chunk (1 MiB).
Status inflate_gzip_range(int in, uint64_t offset, uint64_t size, const std::string& out,
                          uint64_t max_out, const std::string& field,
                          const std::function<void(uint64_t)>& on_read = {});

// The most bytes a gzip-compressed disk file of a disk of `capacity_bytes` may inflate to:
// the capacity plus room for the format's metadata (a vmdk's grain tables, a qcow2's
// L1/L2 tables), never above model::kMaxDiskBytes plus that room.
uint64_t max_inflated_disk_bytes(uint64_t capacity_bytes);

}  // namespace strata::manager
