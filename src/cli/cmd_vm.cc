// `strata vm ...`: create, list, show, lifecycle actions and delete (console: cmd_console.cc).
#include "context.h"
#include "strata/cli/config.h"
#include "strata/cli/parse.h"

namespace strata::cli {

namespace {

struct ActionFlags {
  bool wait = false;
  std::string wait_timeout = "10m";
};

void add_wait_flags(CLI::App* cmd, ActionFlags& f) {
  cmd->add_flag("--wait", f.wait, "Wait until the task ends, showing progress");
  cmd->add_option("--wait-timeout", f.wait_timeout, "Give up waiting after this long (10m)");
}

}  // namespace

void add_vm_commands(CLI::App& root, Context& ctx) {
  CLI::App* vm = root.add_subcommand("vm", "Virtual machines");
  vm->require_subcommand(1);
  add_vm_snapshot_commands(*vm, ctx);
  add_vm_clone_commands(*vm, ctx);
  add_vm_import_command(*vm, ctx);

  // create
  {
    auto o = std::make_shared<VmCreateOptions>();
    auto f = std::make_shared<ActionFlags>();
    CLI::App* c = vm->add_subcommand("create", "Create a VM (and start it, unless --no-start)");
    c->add_option("name", o->name, "VM name")->required();
    c->add_option("--vcpus", o->vcpus, "Number of virtual CPUs")->required();
    c->add_option("--memory", o->memory, "Memory: 512M, 2G (plain number = MiB)")->required();
    c->add_option("--image", o->image, "Boot from a disk cloned from this image");
    c->add_option("--datastore", o->datastore,
                  "Put the --image boot disk on this datastore (shared storage: HA restart "
                  "and migration without copying the disk)");
    c->add_option("--kernel", o->kernel, "Direct kernel boot: kernel image name");
    c->add_option("--initrd", o->initrd, "Direct kernel boot: initrd image name");
    c->add_option("--cmdline", o->cmdline, "Direct kernel boot: kernel command line");
    c->add_option("--disk", o->disks,
                  "Extra disk: name=data,size=1G[,image=IMG][,boot][,readonly][,datastore=NAME] "
                  "(repeatable; datastore: shared storage, see docs/internals/datastores.md)");
    c->add_option("--nic", o->nics,
                  "Network interface: user | bridge=br0[,mac=..][,vlan=1..4094] (repeatable)");
    c->add_option("--label", o->labels, "Label k=v (repeatable)");
    c->add_option("--selector", o->selectors, "Only hosts with label k=v (repeatable)");
    c->add_option("--host", o->host, "Place on this host");
    c->add_option("--anti-affinity", o->anti_affinity_group,
                  "Anti-affinity group: never two of its VMs on one host");
    c->add_option("--affinity", o->affinity_group,
                  "Keep-together group: its VMs run on one host (where the first runs)");
    c->add_option("--avoid", o->avoids,
                  "Keep off hosts with label k=v (repeatable: hosts carrying all of them)");
    c->add_flag("--ha", o->ha,
                "High availability: restart on another host when this one fails (after fencing)");
    c->add_option("--ha-priority", o->ha_priority, "HA restart priority 0..1000 (higher first)")
        ->check(CLI::Range(0, 1000));
    c->add_flag("--no-start", o->no_start, "Define the VM but leave it stopped");
    c->add_option("--cpu-model", o->cpu_model,
                  "Guest CPU: a QEMU model (Haswell-v4), host (KVM: the host CPU as is) or max; "
                  "default: the cluster's CPU baseline, so the VM can move to any of its hosts");
    // Installing from an ISO (docs/internals/firmware.md).
    c->add_option("--cdrom", o->cdrom,
                  "Put this iso image (strata image import NAME FILE --kind iso) in the VM's "
                  "CD-ROM, read-only (q35 only)");
    c->add_option("--boot", o->boot,
                  "Firmware boot order: cdrom,disk | disk,cdrom | cdrom | disk (default: the "
                  "disk marked boot)");
    c->add_option("--firmware", o->firmware,
                  "bios (SeaBIOS, default) or uefi (OVMF, with the VM's own UEFI variables; q35)")
        ->check(CLI::IsMember({"bios", "uefi"}));
    c->add_option("--watchdog", o->watchdog,
                  "Give the guest a watchdog (an i6300esb device its watchdog daemon feeds) and "
                  "what QEMU does when it expires: reset (restart a hung guest), shutdown, "
                  "poweroff, pause, inject-nmi or none (only report: the vm.watchdog event)")
        ->check(CLI::IsMember({"reset", "shutdown", "poweroff", "pause", "inject-nmi", "none"}));
    // cloud-init (a NoCloud seed disk the guest's cloud-init reads at boot).
    auto key_files = std::make_shared<std::vector<std::string>>();
    auto user_data_file = std::make_shared<std::string>();
    c->add_option("--hostname", o->hostname,
                  "cloud-init: the guest's host name (default: the VM name)");
    c->add_option("--user", o->user,
                  "cloud-init: create this user in the guest (password locked unless "
                  "--password-hash)");
    c->add_option("--ssh-key", *key_files,
                  "cloud-init: FILE of SSH public keys for --user, e.g. ~/.ssh/id_ed25519.pub "
                  "(repeatable)");
    c->add_option("--password-hash", o->password_hash,
                  "cloud-init: --user's password as a crypt(3) hash (mkpasswd -m sha-512); "
                  "never a clear-text password");
    c->add_flag("--sudo", o->sudo, "cloud-init: passwordless sudo for --user");
    c->add_option("--ip", o->ips,
                  "cloud-init: network of the next --nic, in order: dhcp | "
                  "ADDRESS/PREFIX[,gw=IP][,dns=IP]... (repeatable)");
    c->add_option("--cloud-init-user-data", *user_data_file,
                  "cloud-init: FILE of extra user-data (#cloud-config or #! script, <= 64 KiB)");
    add_wait_flags(c, *f);
    c->callback([&ctx, o, f, key_files, user_data_file] {
      ctx.action = [&ctx, o, f, key_files, user_data_file] {
        auto read = [&ctx](const std::string& path) {
          return ctx.io.read_file ? ctx.io.read_file(path) : real_read_file(path);
        };
        for (const auto& file : *key_files) {
          auto text = read(file);
          if (!text)
            return ctx.usage_error(
                Error{ErrorCode::invalid_argument, "--ssh-key: cannot read " + file, "--ssh-key"});
          auto keys = ssh_keys_from_file(*text, file);
          if (!keys) return ctx.usage_error(keys.error());
          o->ssh_keys.insert(o->ssh_keys.end(), keys->begin(), keys->end());
        }
        if (!user_data_file->empty()) {
          auto text = read(*user_data_file);
          if (!text)
            return ctx.usage_error(Error{ErrorCode::invalid_argument,
                                         "--cloud-init-user-data: cannot read " + *user_data_file,
                                         "--cloud-init-user-data"});
          if (text->empty())
            return ctx.usage_error(Error{ErrorCode::invalid_argument,
                                         "--cloud-init-user-data: " + *user_data_file +
                                             " is empty",
                                         "--cloud-init-user-data"});
          o->user_data = std::move(*text);
        }
        auto req = build_vm_create(*o);
        if (!req) return ctx.usage_error(req.error());
        auto timeout = parse_wait_timeout(f->wait_timeout, "--wait-timeout");
        if (!timeout) return ctx.usage_error(timeout.error());
        return ctx.act(*req, "vm " + o->name + ": create accepted", f->wait, *timeout);
      };
    });
  }

  // cdrom: insert (or change) and eject the CD-ROM's medium, live when the VM runs
  {
    auto name = std::make_shared<std::string>();
    auto op = std::make_shared<std::string>();
    auto image = std::make_shared<std::string>();
    auto f = std::make_shared<ActionFlags>();
    CLI::App* c = vm->add_subcommand(
        "cdrom", "Insert an iso into the VM's CD-ROM (or change it), or eject it; live if it runs");
    c->add_option("name", *name, "VM name")->required();
    c->add_option("op", *op, "insert | eject")
        ->required()
        ->check(CLI::IsMember({"insert", "eject"}));
    c->add_option("image", *image, "insert: the iso image's name");
    add_wait_flags(c, *f);
    c->callback([&ctx, name, op, image, f] {
      ctx.action = [&ctx, name, op, image, f] {
        if (*op == "insert" && image->empty())
          return ctx.usage_error(
              Error{ErrorCode::invalid_argument, "insert needs the iso image's name", "image"});
        if (*op == "eject" && !image->empty())
          return ctx.usage_error(
              Error{ErrorCode::invalid_argument, "eject takes no image", "image"});
        auto timeout = parse_wait_timeout(f->wait_timeout, "--wait-timeout");
        if (!timeout) return ctx.usage_error(timeout.error());
        std::optional<std::string> medium;
        if (*op == "insert") medium = *image;
        return ctx.act(build_vm_cdrom(*name, medium),
                       "vm " + *name + ": cdrom " + *op + " requested", f->wait, *timeout);
      };
    });
  }

  // resize-disk
  {
    auto name = std::make_shared<std::string>();
    auto disk = std::make_shared<std::string>();
    auto size = std::make_shared<std::string>();
    auto f = std::make_shared<ActionFlags>();
    CLI::App* c = vm->add_subcommand(
        "resize-disk", "Grow a VM's disk (live if it runs; the guest sees the new size)");
    c->add_option("name", *name, "VM name")->required();
    c->add_option("disk", *disk, "The disk's name (as in vm show)")->required();
    c->add_option("size", *size, "The new size: 20G, 512M (MiB without a unit); grow only")
        ->required();
    add_wait_flags(c, *f);
    c->callback([&ctx, name, disk, size, f] {
      ctx.action = [&ctx, name, disk, size, f] {
        auto timeout = parse_wait_timeout(f->wait_timeout, "--wait-timeout");
        if (!timeout) return ctx.usage_error(timeout.error());
        auto req = build_vm_resize_disk(*name, *disk, *size);
        if (!req) return ctx.usage_error(req.error());
        return ctx.act(*req, "vm " + *name + ": disk " + *disk + " resize to " + *size + " requested",
                       f->wait, *timeout);
      };
    });
  }

  // attach-disk / detach-disk / attach-nic / detach-nic (hot-plug)
  {
    auto name = std::make_shared<std::string>();
    auto a = std::make_shared<DiskAttachArgs>();
    auto f = std::make_shared<ActionFlags>();
    CLI::App* c = vm->add_subcommand(
        "attach-disk", "Attach a new disk (hot-plugged if the VM runs; on a free hot-plug slot)");
    c->add_option("name", *name, "VM name")->required();
    c->add_option("disk", a->disk, "The new disk's name (a DNS label: data1)")->required();
    c->add_option("--size", a->size, "Size of a blank disk: 20G, 512M (MiB without a unit)");
    c->add_option("--base", a->base_image, "Make it an overlay of this catalog disk image");
    c->add_option("--datastore", a->datastore, "Put it on this shared datastore");
    c->add_flag("--readonly", a->readonly, "Attach it read-only");
    add_wait_flags(c, *f);
    c->callback([&ctx, name, a, f] {
      ctx.action = [&ctx, name, a, f] {
        auto timeout = parse_wait_timeout(f->wait_timeout, "--wait-timeout");
        if (!timeout) return ctx.usage_error(timeout.error());
        auto req = build_vm_attach_disk(*name, *a);
        if (!req) return ctx.usage_error(req.error());
        return ctx.act(*req, "vm " + *name + ": attach disk " + a->disk + " requested", f->wait,
                       *timeout);
      };
    });
  }
  {
    auto name = std::make_shared<std::string>();
    auto disk = std::make_shared<std::string>();
    auto f = std::make_shared<ActionFlags>();
    CLI::App* c = vm->add_subcommand(
        "detach-disk",
        "Detach a disk and delete its data (a running VM loses only a disk attached after it "
        "was created: one on a hot-plug slot)");
    c->add_option("name", *name, "VM name")->required();
    c->add_option("disk", *disk, "The disk's name (as in vm show)")->required();
    add_wait_flags(c, *f);
    c->callback([&ctx, name, disk, f] {
      ctx.action = [&ctx, name, disk, f] {
        auto timeout = parse_wait_timeout(f->wait_timeout, "--wait-timeout");
        if (!timeout) return ctx.usage_error(timeout.error());
        return ctx.act(build_vm_detach_disk(*name, *disk),
                       "vm " + *name + ": detach disk " + *disk + " requested", f->wait, *timeout);
      };
    });
  }
  {
    auto name = std::make_shared<std::string>();
    auto bridge = std::make_shared<std::string>();
    auto mac = std::make_shared<std::string>();
    auto vlan = std::make_shared<uint32_t>(0);
    auto f = std::make_shared<ActionFlags>();
    CLI::App* c = vm->add_subcommand(
        "attach-nic", "Attach a NIC (hot-plugged if the VM runs; on a free hot-plug slot)");
    c->add_option("name", *name, "VM name")->required();
    c->add_option("--bridge", *bridge, "Bridge it to this Linux bridge (default: user networking)");
    c->add_option("--vlan", *vlan, "With --bridge: the 802.1Q VLAN id (1..4094) it joins untagged")
        ->check(CLI::Range(1u, 4094u));
    c->add_option("--mac", *mac, "Its MAC address (default: a new one)");
    add_wait_flags(c, *f);
    c->callback([&ctx, name, bridge, mac, vlan, f] {
      ctx.action = [&ctx, name, bridge, mac, vlan, f] {
        auto timeout = parse_wait_timeout(f->wait_timeout, "--wait-timeout");
        if (!timeout) return ctx.usage_error(timeout.error());
        if (*vlan != 0 && bridge->empty())
          return ctx.usage_error(Error{ErrorCode::invalid_argument, "needs --bridge", "--vlan"});
        return ctx.act(build_vm_attach_nic(*name, *bridge, *mac, *vlan),
                       "vm " + *name + ": attach NIC requested", f->wait, *timeout);
      };
    });
  }
  {
    auto name = std::make_shared<std::string>();
    auto mac = std::make_shared<std::string>();
    auto f = std::make_shared<ActionFlags>();
    CLI::App* c = vm->add_subcommand("detach-nic",
                                     "Detach a NIC (a running VM: only a NIC on a hot-plug slot)");
    c->add_option("name", *name, "VM name")->required();
    c->add_option("mac", *mac, "The NIC's MAC address (as in vm show)")->required();
    add_wait_flags(c, *f);
    c->callback([&ctx, name, mac, f] {
      ctx.action = [&ctx, name, mac, f] {
        auto timeout = parse_wait_timeout(f->wait_timeout, "--wait-timeout");
        if (!timeout) return ctx.usage_error(timeout.error());
        return ctx.act(build_vm_detach_nic(*name, *mac),
                       "vm " + *name + ": detach NIC " + *mac + " requested", f->wait, *timeout);
      };
    });
  }

  // list
  {
    auto labels = std::make_shared<std::vector<std::string>>();
    auto host = std::make_shared<std::string>();
    CLI::App* c = vm->add_subcommand("list", "List VMs");
    c->alias("ls");
    c->add_option("--label,-l", *labels, "Only VMs with label k=v");
    c->add_option("--host", *host, "Only VMs on this host");
    c->callback([&ctx, labels, host] {
      ctx.action = [&ctx, labels, host] {
        for (const auto& l : *labels)
          if (l.find('=') == std::string::npos || l[0] == '=')
            return ctx.usage_error(Error{ErrorCode::invalid_argument,
                                         "--label: expected key=value, got '" + l + "'", ""});
        return ctx.show(build_vm_list(*labels, *host), vm_columns(), "vms");
      };
    });
  }

  // show
  {
    auto name = std::make_shared<std::string>();
    CLI::App* c = vm->add_subcommand("show", "Show one VM");
    c->alias("get");
    c->add_option("name", *name, "VM name")->required();
    c->callback(
        [&ctx, name] { ctx.action = [&ctx, name] { return ctx.show(build_vm_get(*name)); }; });
  }

  // start / reboot / pause / resume
  for (const char* verb : {"start", "reboot", "pause", "resume"}) {
    auto name = std::make_shared<std::string>();
    auto f = std::make_shared<ActionFlags>();
    std::string v = verb;
    CLI::App* c = vm->add_subcommand(v, v == "start"    ? "Start a VM"
                                        : v == "reboot" ? "Reboot a VM (ACPI)"
                                        : v == "pause"  ? "Pause a VM's vCPUs"
                                                        : "Resume a paused VM");
    c->add_option("name", *name, "VM name")->required();
    add_wait_flags(c, *f);
    c->callback([&ctx, name, f, v] {
      ctx.action = [&ctx, name, f, v] {
        auto timeout = parse_wait_timeout(f->wait_timeout, "--wait-timeout");
        if (!timeout) return ctx.usage_error(timeout.error());
        return ctx.act(build_vm_action(*name, v), "vm " + *name + ": " + v + " requested", f->wait,
                       *timeout);
      };
    });
  }

  // stop
  {
    auto name = std::make_shared<std::string>();
    auto f = std::make_shared<ActionFlags>();
    auto force = std::make_shared<bool>(false);
    auto guest_timeout = std::make_shared<std::string>();
    CLI::App* c =
        vm->add_subcommand("stop", "Stop a VM: ACPI power-off, then force after --timeout");
    c->add_option("name", *name, "VM name")->required();
    c->add_flag("--force", *force, "Power off at once (no guest shutdown)");
    c->add_option("--timeout", *guest_timeout,
                  "How long the guest may take to shut down before it is forced (e.g. 60s)");
    add_wait_flags(c, *f);
    c->callback([&ctx, name, f, force, guest_timeout] {
      ctx.action = [&ctx, name, f, force, guest_timeout] {
        std::optional<uint64_t> t;
        if (!guest_timeout->empty()) {
          auto s = parse_duration_s(*guest_timeout, "--timeout");
          if (!s) return ctx.usage_error(s.error());
          t = *s;
        }
        auto timeout = parse_wait_timeout(f->wait_timeout, "--wait-timeout");
        if (!timeout) return ctx.usage_error(timeout.error());
        return ctx.act(build_vm_stop(*name, *force, t), "vm " + *name + ": stop requested", f->wait,
                       *timeout);
      };
    });
  }

  // migrate
  {
    auto name = std::make_shared<std::string>();
    auto host = std::make_shared<std::string>();
    auto bandwidth = std::make_shared<std::string>();
    auto downtime = std::make_shared<uint64_t>(0);
    auto cancel = std::make_shared<bool>(false);
    auto no_tls = std::make_shared<bool>(false);
    auto auto_converge = std::make_shared<bool>(false);
    auto postcopy = std::make_shared<bool>(false);
    auto f = std::make_shared<ActionFlags>();
    CLI::App* c = vm->add_subcommand(
        "migrate",
        "Move a VM to another host: live when it runs (disks and memory, no restart), cold when "
        "it is stopped (its local disks copied)");
    c->add_option("name", *name, "VM name")->required();
    c->add_option("--to", *host, "Target host (default: the scheduler chooses)");
    c->add_option("--max-bandwidth", *bandwidth, "Bytes per second, e.g. 100M (default: QEMU's)");
    c->add_option("--max-downtime", *downtime,
                  "Highest downtime limit in ms to step up to (default 1000)")
        ->check(CLI::Range(uint64_t{1}, uint64_t{60000}));
    c->add_flag("--no-tls", *no_tls,
                "Send memory and disks unencrypted (trusted networks only; default: TLS "
                "unless stratad runs with --migration-tls off)");
    c->add_flag("--auto-converge", *auto_converge,
                "Let QEMU slow the guest's vCPUs down while its memory changes faster than it "
                "is sent (a busy guest then converges instead of hitting the deadline)");
    c->add_flag("--postcopy", *postcopy,
                "Switch over early and let the target fetch the rest of the memory (least "
                "downtime, always ends; but a host or link lost before the copy ends loses "
                "the guest: needs vm.unprivileged_userfaultfd=1 on the target)");
    c->add_flag("--cancel", *cancel,
                "Cancel the VM's migration in progress (it stays on its host, running); "
                "refused once it switches over");
    add_wait_flags(c, *f);
    c->callback([&ctx, name, host, bandwidth, downtime, cancel, no_tls, auto_converge, postcopy,
                 f] {
      ctx.action = [&ctx, name, host, bandwidth, downtime, cancel, no_tls, auto_converge, postcopy,
                    f] {
        if (*cancel) {
          if (!host->empty() || !bandwidth->empty() || *downtime || *no_tls || *auto_converge ||
              *postcopy)
            return ctx.usage_error(Error{ErrorCode::invalid_argument,
                                         "--cancel takes no --to, --max-bandwidth, "
                                         "--max-downtime, --no-tls, --auto-converge or "
                                         "--postcopy",
                                         "--cancel"});
          // The migrate task then ends "cancelled by ..." (failed): with --wait, the exit
          // code says the migration did not happen, which is what was asked for.
          auto timeout = parse_wait_timeout(f->wait_timeout, "--wait-timeout");
          if (!timeout) return ctx.usage_error(timeout.error());
          return ctx.act(build_vm_migrate_cancel(*name), "vm " + *name + ": cancel requested",
                         f->wait, *timeout);
        }
        uint64_t bw = 0;
        if (!bandwidth->empty()) {
          auto b = parse_size(*bandwidth, "--max-bandwidth");
          if (!b) return ctx.usage_error(b.error());
          bw = *b;
        }
        auto timeout = parse_wait_timeout(f->wait_timeout, "--wait-timeout");
        if (!timeout) return ctx.usage_error(timeout.error());
        return ctx.act(
            build_vm_migrate(*name, *host, bw, *downtime, !*no_tls, *auto_converge, *postcopy),
            "vm " + *name + ": migration requested", f->wait, *timeout);
      };
    });
  }

  // delete
  {
    auto name = std::make_shared<std::string>();
    auto f = std::make_shared<ActionFlags>();
    CLI::App* c = vm->add_subcommand("delete", "Delete a VM (stops it first) and its disks");
    c->alias("rm");
    c->add_option("name", *name, "VM name")->required();
    add_wait_flags(c, *f);
    c->callback([&ctx, name, f] {
      ctx.action = [&ctx, name, f] {
        auto timeout = parse_wait_timeout(f->wait_timeout, "--wait-timeout");
        if (!timeout) return ctx.usage_error(timeout.error());
        return ctx.act(build_vm_delete(*name), "vm " + *name + ": delete requested", f->wait,
                       *timeout);
      };
    });
  }

  add_console_command(*vm, ctx);
}

}  // namespace strata::cli
