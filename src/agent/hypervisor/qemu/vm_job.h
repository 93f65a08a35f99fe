// The job model of the QEMU driver: at most one long operation ("job") per VM at a time,
// as libvirt's per-domain job. A job owns the VM's lifecycle while it runs; a second job on
// the same VM is refused with failed_precondition naming the running job (never queued:
// callers, the manager's tasks, already retry, and a queue would hide a stuck job). The one
// exception is a stop requested while a stop job runs: it joins that job (waits for the
// VM to end) instead of failing, because a retried stop must not look like an error.
// Short commands (pause, resume, reboot) are refused while a job runs; read-only queries
// (status, list, stats, console) are never blocked by a job. See
// docs/internals/qemu-driver.md.
#pragma once

#include <string_view>

namespace strata::agent::qemu {

enum class VmJob {
  none,
  start,  // spawn the shim and QEMU, connect QMP, query the status
  stop,   // ACPI powerdown, wait for the guest, force off after the timeout
  // Live migration (migration.h). migrate_in: from prepare_incoming until finish_incoming
  // or abort_incoming. migrate_out: from migrate_out until confirm_out or cancel_out (the
  // job stays while the source waits, paused, for the manager's verdict).
  migrate_in,
  migrate_out,
  snapshot,   // disk snapshot create / revert / delete (vm_snapshot.cc)
  clone,      // another VM is being cloned from this one's disks (vm_clone.cc)
  media,      // the CD-ROM's medium is being changed (vm_media.cc)
  disk_copy,  // a cold migration reads or writes a disk's file (vm_disk_copy.cc)
  backup,     // disks read into a backup repository, or restored from one (vm_backup.cc)
  resize,     // a disk is being grown (vm_disk_resize.cc)
  hotplug,    // a disk or NIC is being attached or detached (vm_hotplug.cc)
  // define is a job on a VM that does not exist yet: it holds a
  // name reservation (QemuHypervisor::defining_) instead.
};

constexpr std::string_view to_string(VmJob j) {
  switch (j) {
    case VmJob::none:
      return "none";
    case VmJob::start:
      return "start";
    case VmJob::stop:
      return "stop";
    case VmJob::migrate_in:
      return "migrate-in";
    case VmJob::migrate_out:
      return "migrate-out";
    case VmJob::snapshot:
      return "snapshot";
    case VmJob::clone:
      return "clone";
    case VmJob::media:
      return "media";
    case VmJob::disk_copy:
      return "disk-copy";
    case VmJob::backup:
      return "backup";
    case VmJob::resize:
      return "resize";
    case VmJob::hotplug:
      return "hotplug";
  }
  return "?";
}

}  // namespace strata::agent::qemu
