// QemuHypervisor hot-plug: disks and NICs join or leave a VM, live on one of its spare
// pcie-root-ports while QEMU runs, in the spec only while it does not (docs/internals/
// qemu-driver.md, "Hot-plug"). Each change is a hotplug job (vm_job.h).
//
// Layout rule: a device placed at boot keeps QEMU's automatic address on the root bus
// (its index names it); a device attached later sits on hot-plug slot k, the root port
// "rp<k>" every v1+ q35 VM has from boot, and the slot names it (argv.h: disk_names,
// nic_names). The spec records the slot (hotplug_slot), so a restart and a migration
// target build the same layout, and removing one device never renames another.
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <thread>

#include "qemu_access.h"
#include "qemu_hypervisor.h"
#include "strata/agent/datastore.h"
#include "strata/agent/image_store.h"
#include "strata/agent/network.h"
#include "strata/common/log.h"
#include "strata/common/random.h"
#include "strata/model/validation.h"

namespace strata::agent::qemu {

namespace {

constexpr auto kHotplugCmd = std::chrono::seconds(30);
// How long the guest has to release a device after device_del (PCIe native hot-plug
// waits 5 s for its attention button; ACPI hot-plug is quicker). Past it the detach fails
// and the spec keeps the device; QEMU still removes it if the guest lets go later, and a
// retried detach then finds it gone.
constexpr auto kUnplugWait = std::chrono::seconds(30);
constexpr auto kUnplugPoll = std::chrono::milliseconds(100);

// The lowest hot-plug slot (1..ports) no disk or NIC of `spec` sits on; 0 when none is free.
uint32_t free_slot(const model::VmSpec& spec, int ports) {
  for (uint32_t k = 1; static_cast<int>(k) <= ports; ++k) {
    bool used = false;
    for (const auto& d : spec.disks) used = used || d.hotplug_slot == k;
    for (const auto& n : spec.nics) used = used || n.hotplug_slot == k;
    if (!used) return k;
  }
  return 0;
}

Status no_slot(const std::string& name, const HardwareProfile& hw) {
  if (hw.spare_root_ports == 0)
    return make_error(ErrorCode::failed_precondition,
                      "VM " + name + " has no hot-plug slots (machine " +
                          (hw.machine.empty() ? "of a pre-profile VM" : hw.machine) +
                          "; q35 VMs have " + std::to_string(4) + ")");
  return make_error(ErrorCode::failed_precondition,
                    fmt::format("all {} hot-plug slots of VM {} are in use; detach a device "
                                "attached earlier first",
                                hw.spare_root_ports, name));
}

bool is_absent(const Error& e) {
  // QEMU's answers for a device, node or netdev that is not there (DeviceNotFound,
  // GenericError "Failed to find node", "Device 'x' not found").
  return e.message.find("not found") != std::string::npos ||
         e.message.find("Failed to find") != std::string::npos ||
         e.message.find("DeviceNotFound") != std::string::npos;
}

// device_del, then waits for the guest to release the device (it leaves
// /machine/peripheral). A device already gone is fine.
Status unplug(QemuMonitor& qmp, const std::string& id, const std::string& what) {
  if (auto s = qmp.device_del(id, kHotplugCmd); !s && !is_absent(s.error()))
    return tl::unexpected(s.error().wrap("device_del " + id));
  const auto deadline = std::chrono::steady_clock::now() + kUnplugWait;
  for (;;) {
    auto ids = qmp.peripheral_ids(kHotplugCmd);
    if (!ids) return tl::unexpected(ids.error().wrap("qom-list"));
    if (std::find(ids->begin(), ids->end(), id) == ids->end()) return {};
    if (std::chrono::steady_clock::now() >= deadline)
      return make_error(ErrorCode::deadline_exceeded,
                        fmt::format("the guest has not released {} within {} s (it may not "
                                    "support PCIe hot-plug, or is still booting); the VM keeps "
                                    "it: retry, or detach it while the VM is off",
                                    what, kUnplugWait.count()));
    std::this_thread::sleep_for(kUnplugPoll);
  }
}

}  // namespace

Result<model::DiskSpec> QemuHypervisor::attach_disk(const std::string& name,
                                                    const model::DiskSpec& input) {
  if (auto s = model::validate_name("disk.name", input.name); !s) return tl::unexpected(s.error());
  if (input.boot)
    return invalid_argument("disk.boot",
                            "an attached disk is a data disk; it cannot be the boot disk");
  if (!opts_.images) return make_error(ErrorCode::failed_precondition, "no image store configured");
  auto job = begin_device_job(name, VmJob::hotplug);
  if (!job) return tl::unexpected(job.error());
  JobEnd end{this, name, VmJob::hotplug};
  model::VmSpec spec = job->spec;
  for (const auto& d : spec.disks)
    if (d.name == input.name) {
      // A retried attach: the disk is there, as recorded.
      if (d.base_image == input.base_image && d.datastore == input.datastore &&
          d.readonly == input.readonly &&
          (input.size_bytes == 0 || d.size_bytes == input.size_bytes))
        return d;
      return make_error(ErrorCode::already_exists,
                        "VM " + name + " has another disk named " + input.name, "disk.name");
    }
  if (spec.disks.size() >= model::kMaxDisks)
    return make_error(
        ErrorCode::failed_precondition,
        fmt::format("VM {} has {} disks, the most a VM can have", name, model::kMaxDisks));
  auto tree = read_snapshot_tree(job->dir);
  if (!tree && tree.error().code != ErrorCode::not_found) return tl::unexpected(tree.error());
  if (tree && !tree->empty())
    return make_error(ErrorCode::failed_precondition,
                      "VM " + name +
                          " has snapshots; they cover the disks it has, so delete "
                          "them before attaching a disk");
  model::DiskSpec d = input;
  d.hotplug_slot = free_slot(spec, job->profile.spare_root_ports);
  if (d.hotplug_slot == 0) return tl::unexpected(no_slot(name, job->profile).error());
  spec.disks.push_back(d);
  if (auto s = model::validate(spec); !s) {
    Error e = s.error();
    const std::string prefix = fmt::format("disks[{}].", spec.disks.size() - 1);
    if (e.field.starts_with(prefix)) e.field = "disk." + e.field.substr(prefix.size());
    return tl::unexpected(e);
  }
  if (!d.base_image.empty()) {
    auto base = opts_.images->image(d.base_image);
    if (!base) return tl::unexpected(base.error().wrap("disk.base_image"));
    if (!base->kind.empty() && base->kind != "disk")
      return invalid_argument("disk.base_image", "image " + d.base_image + " is a " + base->kind +
                                                     " image; a disk needs a disk image");
  }
  if (auto st = check_datastores(spec); !st) return tl::unexpected(st.error());

  // The file: in this host's store, or on the datastore.
  bool made_shared = false;
  auto undo_file = [&] {
    if (!d.datastore.empty()) {
      if (made_shared && opts_.datastores)
        (void)opts_.datastores->delete_disk(d.datastore, d.datastore_id, spec.uuid, d.name);
    } else if (auto info = opts_.images->disk_info(name, d.name)) {
      (void)opts_.images->delete_vm_file(name, info->path);
    }
  };
  if (d.datastore.empty()) {
    if (auto r = make_local_disk(spec, d); !r)
      return tl::unexpected(r.error().wrap("disk " + d.name));
  } else {
    std::optional<ImageInfo> base;
    if (!d.base_image.empty()) {
      auto b = opts_.images->image(d.base_image);
      if (!b) return tl::unexpected(b.error().wrap("disk " + d.name));
      base = *b;
    }
    auto r = opts_.datastores->ensure_disk(d.datastore, d.datastore_id, spec.uuid, d.name,
                                           base ? &*base : nullptr, d.size_bytes);
    if (!r) return tl::unexpected(r.error().wrap("disk " + d.name));
    made_shared = r->created;
  }
  auto file = resolve_disk(name, spec, d, nullptr);
  if (!file) {
    undo_file();
    return tl::unexpected(file.error());
  }
  // A tree left by snapshots all since deleted names every disk's active file.
  if (tree) {
    tree->active[d.name] = file->path;
    if (auto s = write_snapshot_tree(job->dir, *tree); !s) {
      undo_file();
      return tl::unexpected(s.error());
    }
  }
  auto undo_tree = [&] {
    if (!tree) return;
    tree->active.erase(d.name);
    (void)write_snapshot_tree(job->dir, *tree);
  };

  if (job->qmp) {
    QemuMonitor& qmp = *job->qmp;
    const DiskNames names = disk_names(spec, spec.disks.size() - 1);
    if (auto s = prepare_qemu_access(job->dir, vm_files(job->dir), {file->path}, opts_.run_as);
        !s) {
      undo_tree();
      undo_file();
      return tl::unexpected(s.error());
    }
    if (auto s = qmp.blockdev_add_disk(names.file_node, names.format_node, file->path, file->format,
                                       d.readonly, kHotplugCmd);
        !s) {
      undo_tree();
      undo_file();
      return tl::unexpected(s.error().wrap("blockdev-add"));
    }
    if (auto s = qmp.device_add_virtio_blk(names.device, root_port_id(d.hotplug_slot),
                                           names.format_node, d.name, kHotplugCmd);
        !s) {
      (void)qmp.blockdev_del(names.format_node, kHotplugCmd);
      (void)qmp.blockdev_del(names.file_node, kHotplugCmd);
      undo_tree();
      undo_file();
      return tl::unexpected(s.error().wrap("device_add"));
    }
  }
  if (auto s = record_spec(name, job->dir, spec); !s) return tl::unexpected(s.error());
  logger("agent.qemu")
      ->info("disk attached vm={} disk={} slot={} live={}", name, d.name, d.hotplug_slot,
             job->qmp != nullptr);
  return d;
}

Status QemuHypervisor::detach_disk(const std::string& name, const std::string& disk) {
  if (auto s = model::validate_name("disk", disk); !s) return s;
  if (!opts_.images) return make_error(ErrorCode::failed_precondition, "no image store configured");
  auto job = begin_device_job(name, VmJob::hotplug);
  if (!job) return tl::unexpected(job.error());
  JobEnd end{this, name, VmJob::hotplug};
  model::VmSpec spec = job->spec;
  auto it = std::find_if(spec.disks.begin(), spec.disks.end(),
                         [&](const model::DiskSpec& d) { return d.name == disk; });
  if (it == spec.disks.end()) return {};  // gone already (a retried detach)
  const size_t index = static_cast<size_t>(it - spec.disks.begin());
  const model::DiskSpec d = *it;
  if (d.boot)
    return make_error(ErrorCode::failed_precondition,
                      "disk " + disk + " is VM " + name + "'s boot disk", "disk");
  auto tree = read_snapshot_tree(job->dir);
  if (!tree && tree.error().code != ErrorCode::not_found) return tl::unexpected(tree.error());
  if (tree && !tree->empty())
    return make_error(ErrorCode::failed_precondition, "VM " + name +
                                                          " has snapshots that hold disk " + disk +
                                                          "; delete them before detaching it");
  if (job->qmp) {
    if (d.hotplug_slot == 0)
      return make_error(ErrorCode::failed_precondition,
                        "disk " + disk + " was placed when VM " + name +
                            " started (not on a hot-plug slot): detach it while the VM is off",
                        "disk");
    // After snapshots (all deleted since) the disk's top node is a former overlay's, not
    // the nodes named here: that disk leaves while the VM is off.
    auto info = d.datastore.empty() ? opts_.images->disk_info(name, d.name)
                                    : Result<ImageInfo>(ImageInfo{});
    if (tree && info && d.datastore.empty() && tree->active[d.name] != info->path)
      return make_error(ErrorCode::failed_precondition,
                        "disk " + disk + " of VM " + name +
                            " runs on a former snapshot's overlay: detach it while the VM is off",
                        "disk");
    QemuMonitor& qmp = *job->qmp;
    const DiskNames names = disk_names(spec, index);
    if (auto s = unplug(qmp, names.device, "disk " + disk); !s) return s;
    // The guest has let go: from here the disk is gone whatever else fails, so a node that
    // cannot be deleted stays in QEMU (until it exits) rather than in the spec.
    for (const auto& node : {names.format_node, names.file_node})
      if (auto s = qmp.blockdev_del(node, kHotplugCmd); !s && !is_absent(s.error()))
        logger("agent.qemu")
            ->warn("block node left vm={} node={}: {}", name, node, s.error().to_string());
  }
  spec.disks.erase(spec.disks.begin() + static_cast<std::ptrdiff_t>(index));
  // The record first: a crash after it leaves at worst a file nothing names (gone with the
  // VM's folder), never a VM whose disk is missing.
  if (auto s = record_spec(name, job->dir, spec); !s) return s;
  if (tree) {
    tree->active.erase(d.name);
    if (auto s = write_snapshot_tree(job->dir, *tree); !s) return s;
  }
  if (d.datastore.empty()) {
    auto info = opts_.images->disk_info(name, d.name);
    Status gone = info ? opts_.images->delete_vm_file(name, info->path) : Status{};
    if (!gone)
      logger("agent.qemu")
          ->warn("detached disk file left vm={} disk={}: {}", name, d.name,
                 gone.error().to_string());
  } else if (opts_.datastores) {
    if (auto s = opts_.datastores->delete_disk(d.datastore, d.datastore_id, spec.uuid, d.name); !s)
      logger("agent.qemu")
          ->warn("detached datastore disk left vm={} disk={}: {}", name, d.name,
                 s.error().to_string());
  }
  logger("agent.qemu")
      ->info("disk detached vm={} disk={} slot={} live={}", name, d.name, d.hotplug_slot,
             job->qmp != nullptr);
  return {};
}

Result<model::NicSpec> QemuHypervisor::attach_nic(const std::string& name,
                                                  const model::NicSpec& input) {
  if (input.mode == model::NicMode::bridge && !opts_.network)
    return make_error(ErrorCode::failed_precondition, "bridge NICs need host networking");
  auto job = begin_device_job(name, VmJob::hotplug);
  if (!job) return tl::unexpected(job.error());
  JobEnd end{this, name, VmJob::hotplug};
  model::VmSpec spec = job->spec;
  if (!input.mac.empty())
    for (const auto& n : spec.nics)
      if (model::same_mac(n.mac, input.mac)) {
        if (n.mode == input.mode && n.bridge == input.bridge) return n;  // a retried attach
        return make_error(ErrorCode::already_exists,
                          "VM " + name + " has another NIC with MAC " + input.mac, "nic.mac");
      }
  if (spec.nics.size() >= model::kMaxNics)
    return make_error(
        ErrorCode::failed_precondition,
        fmt::format("VM {} has {} NICs, the most a VM can have", name, model::kMaxNics));
  model::NicSpec n = input;
  n.hotplug_slot = free_slot(spec, job->profile.spare_root_ports);
  if (n.hotplug_slot == 0) return tl::unexpected(no_slot(name, job->profile).error());
  spec.nics.push_back(n);
  auto completed = model::complete(spec, &random_u64);  // a MAC when none was given
  if (!completed) return tl::unexpected(completed.error());
  spec = std::move(*completed);
  if (auto s = model::validate(spec); !s) {
    Error e = s.error();
    const std::string prefix = fmt::format("nics[{}].", spec.nics.size() - 1);
    if (e.field.starts_with(prefix)) e.field = "nic." + e.field.substr(prefix.size());
    return tl::unexpected(e);
  }
  n = spec.nics.back();
  const std::string tap = taps_of(spec).back();
  if (!tap.empty())
    if (auto s = opts_.network->create_tap(tap, n.bridge, n.vlan); !s)
      return tl::unexpected(s.error().wrap("tap " + tap));
  auto undo_tap = [&] {
    if (!tap.empty()) (void)opts_.network->delete_tap(tap);
  };
  if (job->qmp) {
    QemuMonitor& qmp = *job->qmp;
    const NicNames names = nic_names(spec, spec.nics.size() - 1);
    if (tap.empty()) {
      if (auto s = qmp.netdev_add_user(names.netdev, kHotplugCmd); !s) {
        undo_tap();
        return tl::unexpected(s.error().wrap("netdev_add"));
      }
    } else {
      // QEMU never opens /dev/net/tun itself (argv.h, kFirstTapFd): the agent opens the
      // tap and hands the descriptor over; netdev_add takes it by name.
      auto fd = open_tap(tap);
      if (!fd) {
        undo_tap();
        return tl::unexpected(fd.error());
      }
      const std::string fdname = "fd-" + names.netdev;
      auto passed = qmp.getfd(fdname, *fd, kHotplugCmd);
      ::close(*fd);
      if (!passed) {
        undo_tap();
        return tl::unexpected(passed.error().wrap("getfd"));
      }
      if (auto s = qmp.netdev_add_tap(names.netdev, fdname, kHotplugCmd); !s) {
        (void)qmp.closefd(fdname, kHotplugCmd);
        undo_tap();
        return tl::unexpected(s.error().wrap("netdev_add"));
      }
    }
    if (auto s = qmp.device_add_virtio_net(names.device, root_port_id(n.hotplug_slot), names.netdev,
                                           n.mac, kHotplugCmd);
        !s) {
      (void)qmp.netdev_del(names.netdev, kHotplugCmd);
      undo_tap();
      return tl::unexpected(s.error().wrap("device_add"));
    }
  }
  if (auto s = record_spec(name, job->dir, spec); !s) return tl::unexpected(s.error());
  logger("agent.qemu")
      ->info("nic attached vm={} mac={} slot={} live={}", name, n.mac, n.hotplug_slot,
             job->qmp != nullptr);
  return n;
}

Status QemuHypervisor::detach_nic(const std::string& name, const std::string& mac) {
  if (auto s = model::validate_mac("mac", mac); !s) return s;
  auto job = begin_device_job(name, VmJob::hotplug);
  if (!job) return tl::unexpected(job.error());
  JobEnd end{this, name, VmJob::hotplug};
  model::VmSpec spec = job->spec;
  auto it = std::find_if(spec.nics.begin(), spec.nics.end(),
                         [&](const model::NicSpec& n) { return model::same_mac(n.mac, mac); });
  if (it == spec.nics.end()) return {};  // gone already (a retried detach)
  const size_t index = static_cast<size_t>(it - spec.nics.begin());
  const model::NicSpec n = *it;
  const std::vector<std::string> taps_before = taps_of(spec);
  {
    // cloud-init's network config names NICs by index: it must still fit without this one.
    model::VmSpec without = spec;
    without.nics.erase(without.nics.begin() + static_cast<std::ptrdiff_t>(index));
    if (auto v = model::validate(without); !v) return v;
  }
  if (job->qmp) {
    if (n.hotplug_slot == 0)
      return make_error(ErrorCode::failed_precondition,
                        "NIC " + mac + " was placed when VM " + name +
                            " started (not on a hot-plug slot): detach it while the VM is off",
                        "mac");
    QemuMonitor& qmp = *job->qmp;
    const NicNames names = nic_names(spec, index);
    if (auto s = unplug(qmp, names.device, "NIC " + mac); !s) return s;
    if (auto s = qmp.netdev_del(names.netdev, kHotplugCmd); !s && !is_absent(s.error()))
      logger("agent.qemu")
          ->warn("netdev left vm={} netdev={}: {}", name, names.netdev, s.error().to_string());
  }
  spec.nics.erase(spec.nics.begin() + static_cast<std::ptrdiff_t>(index));
  if (auto s = record_spec(name, job->dir, spec); !s) return s;
  // The NIC's tap goes; so do the taps of NICs placed at boot after it (an offline detach
  // renumbers them: the next start makes their taps under the new numbers).
  const std::vector<std::string> taps_after = taps_of(spec);
  for (const auto& tap : taps_before)
    if (!tap.empty() && std::find(taps_after.begin(), taps_after.end(), tap) == taps_after.end() &&
        opts_.network && opts_.network->link_exists(tap))
      if (auto s = opts_.network->delete_tap(tap); !s)
        logger("agent.qemu")->warn("tap delete failed vm={} tap={}", name, tap);
  logger("agent.qemu")
      ->info("nic detached vm={} mac={} slot={} live={}", name, mac, n.hotplug_slot,
             job->qmp != nullptr);
  return {};
}

}  // namespace strata::agent::qemu
