// VmService hot-plug: disks and NICs join or leave a VM (see vm_service.h and
// docs/internals/qemu-driver.md, "Hot-plug"), each a change its host carries out
// (vm_host_change.cc): the host attaches or detaches (live on a spare root port when the VM
// runs), then the spec records the device as the host placed it.
#include <fmt/format.h>

#include <algorithm>

#include "strata/common/random.h"
#include "strata/manager/controllers/datastores.h"
#include "strata/manager/controllers/image_distribution.h"
#include "strata/manager/controllers/networks.h"
#include "strata/manager/tasks/task_tracker.h"
#include "strata/manager/vms/vm_service.h"
#include "strata/model/validation.h"
#include "strata/sched/snapshot.h"

namespace strata::manager {

namespace {

// The spec's error for its last disk or NIC ("disks[3].size_bytes"), named for the request's
// one device ("disk.size_bytes").
Error for_device(Error e, const std::string& list, size_t index, const std::string& device) {
  const std::string prefix = fmt::format("{}[{}]", list, index);
  if (e.field == prefix)
    e.field = device;
  else if (e.field.starts_with(prefix + "."))
    e.field = device + e.field.substr(prefix.size());
  return e;
}

auto disk_named(const std::string& name) {
  return [name](const model::DiskSpec& d) { return d.name == name; };
}
auto nic_with(const std::string& mac) {
  return [mac](const model::NicSpec& n) { return model::same_mac(n.mac, mac); };
}

}  // namespace

Result<VmChange> VmService::attach_disk(const std::string& name, const model::DiskSpec& input,
                                        const std::string& actor) {
  if (input.boot)
    return invalid_argument("disk.boot",
                            "an attached disk is a data disk; it cannot be the boot disk");
  if (input.hotplug_slot != 0)
    return invalid_argument("disk.hotplug_slot", "the host chooses the slot");
  // The disk as the plan resolved it (its datastore's UUID); read by the worker after the
  // transaction committed.
  auto disk = std::make_shared<model::DiskSpec>(input);
  HostChange c(TaskKind::vm_disk_attach);
  c.what = "attach disk " + input.name;
  c.moving = "attach the disk";
  c.running = "attaching disk " + input.name;
  c.plan = [input, disk](store::Store& tx, const store::VmRecord& vm, VmDocument& doc) -> Status {
    if (std::any_of(doc.spec.disks.begin(), doc.spec.disks.end(), disk_named(input.name)))
      return make_error(ErrorCode::already_exists, "the VM has a disk named " + input.name,
                        "disk.name");
    model::VmSpec spec = doc.spec;
    spec.disks.push_back(input);
    const size_t i = spec.disks.size() - 1;
    if (auto v = model::validate(spec); !v)
      return tl::unexpected(for_device(v.error(), "disks", i, "disk"));
    if (auto k = check_image_kinds(tx, spec); !k)
      return tl::unexpected(for_device(k.error(), "disks", i, "disk"));
    if (!input.datastore.empty()) {
      auto hosts = tx.list_hosts({});
      if (!hosts) return tl::unexpected(hosts.error());
      if (auto st = resolve_datastores(spec, *hosts); !st)
        return tl::unexpected(for_device(st.error(), "disks", i, "disk"));
      // The VM's host must mount it, as the scheduler checks at placement.
      const model::DiskSpec& d = spec.disks.back();
      for (const auto& h : *hosts) {
        if (!vm.host_id || h.id != *vm.host_id) continue;
        const auto mounted = host_datastores(h.inventory);
        if (std::none_of(mounted.begin(), mounted.end(), [&](const HostDatastore& m) {
              return datastore_key(m.name, m.id) == datastore_key(d.datastore, d.datastore_id);
            }))
          return make_error(
              ErrorCode::failed_precondition,
              fmt::format("the VM's host {} does not mount datastore {}", h.name, d.datastore),
              "disk.datastore");
      }
    }
    *disk = spec.disks.back();
    doc.spec = std::move(spec);
    return {};
  };
  c.on_host = [this, disk](AgentClient& agent, const store::VmRecord& vm, TaskTracker& tasks,
                           const std::string& task_id) -> Result<HostOutcome> {
    // The host gets a base image through the catalog, as at a define.
    if (!disk->base_image.empty() && images_ && vm.host_id) {
      model::VmSpec only;
      only.disks.push_back(*disk);
      auto ensured = images_->ensure(*vm.host_id, agent, only, [&](const std::string& msg) {
        (void)tasks.update(task_id, "running", 10, msg);
      });
      if (!ensured) return tl::unexpected(ensured.error());
    }
    auto placed = agent.attach_disk(task_id, vm.name, *disk);
    if (!placed) return tl::unexpected(placed.error());
    return HostOutcome{
        [d = *placed](model::VmSpec& spec) {
          auto it = std::find_if(spec.disks.begin(), spec.disks.end(), disk_named(d.name));
          if (it == spec.disks.end())
            spec.disks.push_back(d);
          else
            *it = d;
        },
        fmt::format("disk {} attached (hot-plug slot {})", placed->name, placed->hotplug_slot)};
  };
  return change_on_host(name, std::move(c), actor);
}

Result<VmChange> VmService::detach_disk(const std::string& name, const std::string& disk,
                                        const std::string& actor) {
  if (auto st = model::validate_name("disk", disk); !st) return tl::unexpected(st.error());
  HostChange c(TaskKind::vm_disk_detach);
  c.what = "detach disk " + disk;
  c.moving = "detach the disk";
  c.running = "detaching disk " + disk;
  c.plan = [disk](store::Store&, const store::VmRecord&, VmDocument& doc) -> Status {
    auto it = std::find_if(doc.spec.disks.begin(), doc.spec.disks.end(), disk_named(disk));
    if (it == doc.spec.disks.end())
      return make_error(ErrorCode::not_found, "the VM has no disk " + disk, "disk");
    if (it->boot)
      return make_error(ErrorCode::failed_precondition, "disk " + disk + " is the boot disk",
                        "disk");
    doc.spec.disks.erase(it);
    return {};
  };
  c.on_host = [disk](AgentClient& agent, const store::VmRecord& vm, TaskTracker&,
                     const std::string& task_id) -> Result<HostOutcome> {
    if (auto st = agent.detach_disk(task_id, vm.name, disk); !st) return tl::unexpected(st.error());
    return HostOutcome{[disk](model::VmSpec& spec) { std::erase_if(spec.disks, disk_named(disk)); },
                       "disk " + disk + " detached and its data deleted"};
  };
  return change_on_host(name, std::move(c), actor);
}

Result<VmChange> VmService::attach_nic(const std::string& name, const model::NicSpec& input,
                                       const std::string& actor) {
  if (input.hotplug_slot != 0)
    return invalid_argument("nic.hotplug_slot", "the host chooses the slot");
  // The MAC is made here, once, so a retried task attaches the same NIC.
  auto nic = std::make_shared<model::NicSpec>(input);
  HostChange c(TaskKind::vm_nic_attach);
  c.what = "attach a " + std::string(model::to_string(input.mode)) + " NIC" +
           (input.bridge.empty() ? "" : " on " + input.bridge);
  c.moving = "attach the NIC";
  c.running = "attaching the NIC";
  c.plan = [input, nic](store::Store& tx, const store::VmRecord& vm, VmDocument& doc) -> Status {
    model::VmSpec spec = doc.spec;
    spec.nics.push_back(input);
    const size_t i = spec.nics.size() - 1;
    if (!input.mac.empty() &&
        std::any_of(doc.spec.nics.begin(), doc.spec.nics.end(), nic_with(input.mac)))
      return make_error(ErrorCode::already_exists, "the VM has a NIC with MAC " + input.mac,
                        "nic.mac");
    auto completed = model::complete(spec, &random_u64);
    if (!completed) return tl::unexpected(for_device(completed.error(), "nics", i, "nic"));
    if (auto v = model::validate(*completed); !v)
      return tl::unexpected(for_device(v.error(), "nics", i, "nic"));
    // The VM's host must have the bridge (and put NICs on VLANs for one with a VLAN), as
    // the scheduler checks at placement.
    if (auto needs = nic_networks({input}); !needs.empty() && vm.host_id) {
      auto host = tx.get_host(*vm.host_id);
      if (!host) return tl::unexpected(host.error());
      const auto offered = host_networks(host->inventory);
      auto offers = [&](const std::string& t) {
        return std::find(offered.begin(), offered.end(), t) != offered.end();
      };
      for (const auto& need : needs)
        if (!offers(need))
          return make_error(
              ErrorCode::failed_precondition,
              fmt::format("the VM's host {} {}", host->name,
                          sched::network_shortfall(need, offers)),
              offers(sched::network_token(input.bridge, false)) ? "nic.vlan" : "nic.bridge");
    }
    *nic = completed->nics.back();
    doc.spec = std::move(*completed);
    return {};
  };
  c.on_host = [nic](AgentClient& agent, const store::VmRecord& vm, TaskTracker&,
                    const std::string& task_id) -> Result<HostOutcome> {
    auto placed = agent.attach_nic(task_id, vm.name, *nic);
    if (!placed) return tl::unexpected(placed.error());
    return HostOutcome{
        [n = *placed](model::VmSpec& spec) {
          auto it = std::find_if(spec.nics.begin(), spec.nics.end(), nic_with(n.mac));
          if (it == spec.nics.end())
            spec.nics.push_back(n);
          else
            *it = n;
        },
        fmt::format("NIC {} attached (hot-plug slot {})", placed->mac, placed->hotplug_slot)};
  };
  return change_on_host(name, std::move(c), actor);
}

Result<VmChange> VmService::detach_nic(const std::string& name, const std::string& mac,
                                       const std::string& actor) {
  HostChange c(TaskKind::vm_nic_detach);
  c.what = "detach NIC " + mac;
  c.moving = "detach the NIC";
  c.running = "detaching NIC " + mac;
  c.plan = [mac](store::Store&, const store::VmRecord&, VmDocument& doc) -> Status {
    // Checked once the VM is found: an unknown VM is 404 whatever the MAC.
    if (auto st = model::validate_mac("mac", mac); !st) return st;
    auto it = std::find_if(doc.spec.nics.begin(), doc.spec.nics.end(), nic_with(mac));
    if (it == doc.spec.nics.end())
      return make_error(ErrorCode::not_found, "the VM has no NIC with MAC " + mac, "mac");
    doc.spec.nics.erase(it);
    // cloud-init's network config names NICs by index: it must still fit.
    return model::validate(doc.spec);
  };
  c.on_host = [mac](AgentClient& agent, const store::VmRecord& vm, TaskTracker&,
                    const std::string& task_id) -> Result<HostOutcome> {
    if (auto st = agent.detach_nic(task_id, vm.name, mac); !st) return tl::unexpected(st.error());
    return HostOutcome{[mac](model::VmSpec& spec) { std::erase_if(spec.nics, nic_with(mac)); },
                       "NIC " + mac + " detached"};
  };
  return change_on_host(name, std::move(c), actor);
}

}  // namespace strata::manager
