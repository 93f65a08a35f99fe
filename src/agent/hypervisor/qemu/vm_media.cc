// QemuHypervisor: the CD-ROM's medium (change_cdrom) and UEFI's per-VM variables file.
// See docs/internals/firmware.md.
#include <filesystem>

#include "qemu_hypervisor.h"
#include "strata/common/atomic_file.h"
#include "strata/common/iso_image.h"
#include "strata/common/log.h"
#include "strata/model/validation.h"
#include "strata/model/vm_spec_json.h"
#include "vm_dir.h"

namespace strata::agent::qemu {

namespace fs = std::filesystem;
using model::VmState;

namespace {
constexpr auto kMediaTimeout = std::chrono::seconds(10);
}  // namespace

Result<std::string> QemuHypervisor::iso_path(const std::string& image,
                                             const std::string& field) const {
  if (auto s = model::validate_image_name(field, image); !s) return tl::unexpected(s.error());
  if (!opts_.images) return make_error(ErrorCode::failed_precondition, "no image store");
  auto i = opts_.images->image(image);
  if (!i) return tl::unexpected(i.error().wrap(field));
  // An iso may only go into the CD-ROM, and the CD-ROM holds only an iso: a disk image
  // there would be guest-readable under a kind that was never probed as one.
  if (!i->kind.empty() && i->kind != "iso")
    return invalid_argument(
        field, "image " + image + " is a " + i->kind + " image; " + field + " needs an iso image");
  if (i->format != "raw")
    return invalid_argument(field, "image " + image + " is " + i->format + ", not an ISO");
  if (auto s = check_iso_image(i->path, field); !s) return tl::unexpected(s.error());
  return i->path;
}

Status QemuHypervisor::check_uefi_firmware() const {
  for (const auto* p : {&opts_.uefi_code, &opts_.uefi_vars_template}) {
    std::error_code ec;
    if (p->empty() || p->front() != '/' || !fs::is_regular_file(*p, ec))
      return make_error(
          ErrorCode::failed_precondition,
          "firmware: this host has no UEFI firmware at " + *p + " (install Debian's ovmf)");
  }
  return {};
}

Status QemuHypervisor::create_uefi_vars(const std::string& dir) const {
  if (auto s = check_uefi_firmware(); !s) return s;
  std::error_code ec;
  const std::string vars = uefi_vars_path(dir);
  fs::copy_file(opts_.uefi_vars_template, vars, fs::copy_options::none, ec);
  if (ec)
    return internal_error("copy " + opts_.uefi_vars_template + " to " + vars + ": " + ec.message());
  fs::permissions(vars, fs::perms::owner_read | fs::perms::owner_write, ec);
  return {};
}

Status QemuHypervisor::change_cdrom(const std::string& name, const std::string& image) {
  std::string path;
  if (!image.empty()) {
    auto p = iso_path(image, "cdrom");
    if (!p) return tl::unexpected(p.error());
    path = std::move(*p);
  }
  auto job = begin_device_job(name, VmJob::media);
  if (!job) return tl::unexpected(job.error());
  JobEnd end{this, name, VmJob::media};
  std::shared_ptr<QemuMonitor> qmp = job->qmp;
  if (!job->profile.cdrom)
    return make_error(
        ErrorCode::failed_precondition,
        "VM " + name + " has no CD-ROM slot (hardware profile v" +
            std::to_string(job->profile.version) + ", machine " +
            (job->profile.machine.empty() ? job->spec.machine : job->profile.machine) + ")");
  auto record = [&](const std::string& medium) -> Status {
    job->spec.cdrom = medium;
    return record_spec(name, job->dir, job->spec);
  };
  // QEMU first, then the record. The forced eject opens the tray even when the guest
  // locked it (blockdev-change-medium alone would then fail: "locked and force was not
  // specified"); the change then finds it open, inserts and closes it.
  if (qmp) {
    if (auto r = qmp->eject("cdrom0", kMediaTimeout); !r)
      return tl::unexpected(r.error().wrap("eject"));
    // The medium QEMU started with is a pair of named -blockdev nodes: the eject detaches
    // them from the drive, but the monitor still holds them (and the file open) until they
    // are deleted. Media inserted later are anonymous and go with the eject.
    auto nodes = qmp->query_named_block_nodes(kMediaTimeout);
    if (!nodes) return tl::unexpected(nodes.error().wrap("query-named-block-nodes"));
    for (const char* node : {"media-cdrom0", "file-cdrom0"}) {
      bool present = false;
      for (const auto& n : *nodes) present = present || n.node_name == node;
      if (!present) continue;
      if (auto r = qmp->blockdev_del(node, kMediaTimeout); !r)
        return tl::unexpected(r.error().wrap(std::string("blockdev-del ") + node));
    }
    if (!image.empty())
      if (auto r = qmp->blockdev_change_medium("cdrom0", path, kMediaTimeout); !r) {
        // The old medium is out already: record the empty drive the guest now has.
        (void)record("");
        return tl::unexpected(r.error().wrap("change medium (the drive is now empty)"));
      }
  }
  if (auto s = record(image); !s) return s;
  logger("agent.qemu")
      ->info("cdrom vm={} medium={} live={}", name, image.empty() ? "(ejected)" : image,
             qmp != nullptr);
  return {};
}

Result<std::string> QemuHypervisor::read_uefi_vars(const std::string& name) {
  std::string dir;
  {
    std::lock_guard lk(mu_);
    auto v = find_locked(name);
    if (!v) return tl::unexpected(v.error());
    if ((*v)->rec.profile.firmware != "uefi")
      return make_error(ErrorCode::failed_precondition, "VM " + name + " boots with BIOS");
    dir = (*v)->dir;
  }
  return read_small_file(uefi_vars_path(dir), kMaxUefiVarsBytes);
}

Status QemuHypervisor::write_uefi_vars(const std::string& name, const std::string& vars) {
  std::error_code ec;
  auto want = fs::file_size(opts_.uefi_vars_template, ec);
  if (ec)
    return make_error(ErrorCode::failed_precondition,
                      "no UEFI variables template at " + opts_.uefi_vars_template);
  if (vars.size() != want)
    return invalid_argument("vars", std::to_string(vars.size()) +
                                        " bytes; this host's OVMF "
                                        "variables are " +
                                        std::to_string(want) + " bytes");
  std::string dir;
  {
    std::lock_guard lk(mu_);
    auto v = find_locked(name);
    if (!v) return tl::unexpected(v.error());
    Vm& vm = **v;
    if (vm.rec.profile.firmware != "uefi")
      return make_error(ErrorCode::failed_precondition, "VM " + name + " boots with BIOS");
    VmState s = vm.rec.state;
    if (s != VmState::defined && s != VmState::stopped && s != VmState::crashed)
      return make_error(ErrorCode::failed_precondition,
                        "VM " + name + " is " + model::to_string(s) +
                            "; its UEFI variables are replaced only while it is off");
    // Held by the media job: no start can open the file while it is replaced.
    if (auto st = begin_job_locked(name, vm, VmJob::media); !st) return st;
    dir = vm.dir;
  }
  JobEnd end{this, name, VmJob::media};
  return write_file_atomic(uefi_vars_path(dir), vars, 0600);
}

}  // namespace strata::agent::qemu
