// VmService::change_cdrom: the CD-ROM's medium of a VM (see vm_service.h and
// docs/internals/firmware.md), a change its host carries out (vm_host_change.cc): the iso
// is copied to the VM's host if it lacks it, the host changes the medium, then the spec
// records it.
#include <fmt/format.h>

#include "strata/manager/controllers/image_distribution.h"
#include "strata/manager/tasks/task_tracker.h"
#include "strata/manager/vms/vm_service.h"
#include "strata/model/validation.h"

namespace strata::manager {

Result<VmChange> VmService::change_cdrom(const std::string& name, const std::string& image,
                                         const std::string& actor) {
  if (!image.empty())
    if (auto st = model::validate_image_name("image", image); !st)
      return tl::unexpected(st.error());
  const std::string what = image.empty() ? "eject" : "insert " + image;
  HostChange c(TaskKind::vm_cdrom);
  c.what = "cdrom: " + what;
  c.moving = "change the medium";
  c.running = image.empty() ? "ejecting" : "inserting " + image;
  c.plan = [image](store::Store& tx, const store::VmRecord&, VmDocument& doc) -> Status {
    model::VmSpec spec = doc.spec;
    spec.cdrom = image;
    // The machine must have the slot (q35), and the image must be an iso (catalog kind).
    if (auto v = model::validate(spec); !v) {
      Error e = v.error();
      if (e.field == "cdrom") e.field = "image";
      return tl::unexpected(e);
    }
    if (auto k = check_image_kinds(tx, spec); !k) {
      Error e = k.error();
      if (e.field == "cdrom") e.field = "image";
      return tl::unexpected(e);
    }
    doc.spec = std::move(spec);
    return {};
  };
  c.on_host = [this, image](AgentClient& agent, const store::VmRecord& vm, TaskTracker& tasks,
                            const std::string& task_id) -> Result<HostOutcome> {
    // The host gets the iso through the catalog, like a disk base (a host-local iso the
    // catalog does not know stays the host's business).
    if (!image.empty() && images_ && vm.host_id) {
      model::VmSpec only;
      only.cdrom = image;
      auto ensured = images_->ensure(*vm.host_id, agent, only, [&](const std::string& msg) {
        (void)tasks.update(task_id, "running", 10, msg);
      });
      if (!ensured) return tl::unexpected(ensured.error());
    }
    if (auto r = agent.change_cdrom(task_id, vm.name, image); !r) return tl::unexpected(r.error());
    return HostOutcome{[image](model::VmSpec& spec) { spec.cdrom = image; },
                       image.empty() ? "ejected" : "inserted " + image};
  };
  return change_on_host(name, std::move(c), actor);
}

}  // namespace strata::manager
