// QEMU command-line builder (see argv.h). Layout follows libvirt's qemu_command.c: one
// helper per device class, every option value escaped through escape_opt_value().
#include "argv.h"

#include <fmt/format.h>

#include <tuple>

namespace strata::agent::qemu {
namespace {

bool is_ctl(char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; }

// Values QEMU reads verbatim (not comma-parsed): no escaping exists, so commas are refused.
Status check_raw(std::string_view field, std::string_view v) {
  if (v.empty()) return invalid_argument(std::string(field), "must not be empty");
  for (char c : v) {
    if (is_ctl(c)) return invalid_argument(std::string(field), "contains a control character");
    if (c == ',') return invalid_argument(std::string(field), "contains ','");
  }
  return {};
}

Status check_abs_path(std::string_view field, std::string_view p) {
  if (p.empty() || p.front() != '/')
    return invalid_argument(std::string(field), "must be an absolute path");
  for (char c : p)
    if (is_ctl(c)) return invalid_argument(std::string(field), "contains a control character");
  return {};
}

bool only_chars(std::string_view v, std::string_view allowed_extra) {
  for (char c : v) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              allowed_extra.find(c) != std::string_view::npos;
    if (!ok) return false;
  }
  return !v.empty();
}

// Builds "head,key=value,..." with escaped values.
class Opt {
 public:
  explicit Opt(std::string head) : s_(std::move(head)) {}
  Opt& add(std::string_view key, std::string_view value) {
    if (!err_) {
      auto e = escape_opt_value(key, value);
      if (!e) {
        err_ = e.error();
      } else {
        if (!s_.empty()) s_ += ',';
        s_ += key;
        s_ += '=';
        s_ += *e;
      }
    }
    return *this;
  }
  Result<std::string> str() const {
    if (err_) return tl::unexpected(*err_);
    return s_;
  }

 private:
  std::string s_;
  std::optional<Error> err_;
};

class Builder {
 public:
  void raw(std::initializer_list<std::string> args) {
    for (auto& a : args) argv_.push_back(a);
  }
  // Adds "flag <opt>" or records the first error.
  void opt(const std::string& flag, const Opt& o) {
    auto s = o.str();
    if (!s) {
      if (!err_) err_ = s.error();
      return;
    }
    argv_.push_back(flag);
    argv_.push_back(*s);
  }
  void fail(Error e) {
    if (!err_) err_ = std::move(e);
  }
  Result<std::vector<std::string>> finish() {
    if (err_) return tl::unexpected(*err_);
    return std::move(argv_);
  }

 private:
  std::vector<std::string> argv_;
  std::optional<Error> err_;
};

void add_chardev_socket(Builder& b, const std::string& id, const std::string& path,
                        const std::string& logfile = {}) {
  Opt o("socket");
  o.add("id", id).add("path", path).add("server", "on").add("wait", "off");
  if (!logfile.empty()) o.add("logfile", logfile).add("logappend", "on");
  b.opt("-chardev", o);
}

// The position (1-based) of `dev` in the spec's boot order, 0 when it is not in it. An
// empty order is the disk only (the layout before boot orders); kernel boot: none.
int boot_index(const model::VmSpec& spec, model::BootDevice dev) {
  if (spec.kernel_boot) return 0;
  if (spec.boot.empty()) return dev == model::BootDevice::disk ? 1 : 0;
  for (size_t i = 0; i < spec.boot.size(); ++i)
    if (spec.boot[i] == dev) return static_cast<int>(i) + 1;
  return 0;
}

// The CD-ROM slot of the hardware profile (ide-cd on q35's AHCI bus ide.2, id cdrom0):
// empty, or holding the catalog's iso read-only. Media change later through QMP by the
// device id (blockdev-change-medium, eject), so the slot is the same either way.
void add_cdrom(Builder& b, const model::VmSpec& spec, const ResolvedVm& vm,
               const HardwareProfile& hw) {
  if (!hw.cdrom) {
    if (!spec.cdrom.empty())
      b.fail(Error{ErrorCode::failed_precondition, "this VM's hardware profile has no CD-ROM slot",
                   "cdrom"});
    if (boot_index(spec, model::BootDevice::cdrom) > 0)
      b.fail(Error{ErrorCode::failed_precondition, "this VM's hardware profile has no CD-ROM slot",
                   "boot"});
    return;
  }
  Opt dev("ide-cd");
  dev.add("bus", "ide.2").add("id", "cdrom0");
  if (!spec.cdrom.empty()) {
    if (auto s = check_abs_path("cdrom", vm.cdrom_path); !s) return b.fail(s.error());
    b.opt("-blockdev", Opt("")
                           .add("driver", "file")
                           .add("node-name", "file-cdrom0")
                           .add("filename", vm.cdrom_path)
                           .add("read-only", "on"));
    b.opt("-blockdev", Opt("")
                           .add("driver", "raw")
                           .add("node-name", "media-cdrom0")
                           .add("file", "file-cdrom0")
                           .add("read-only", "on"));
    dev.add("drive", "media-cdrom0");
  }
  if (int i = boot_index(spec, model::BootDevice::cdrom); i > 0)
    dev.add("bootindex", std::to_string(i));
  b.opt("-device", dev);
}

// UEFI: OVMF's code read-only (pflash0) and the VM's variables (pflash1), as -blockdev
// nodes named on -machine (QEMU >= 4.0's way; -drive if=pflash is the legacy one).
void add_uefi_flash(Builder& b, const ResolvedVm& vm) {
  if (auto s = check_abs_path("uefi_code", vm.uefi_code); !s) return b.fail(s.error());
  if (auto s = check_abs_path("uefi_vars", vm.uefi_vars); !s) return b.fail(s.error());
  for (auto [n, path, ro] :
       {std::tuple{"pflash0", &vm.uefi_code, "on"}, std::tuple{"pflash1", &vm.uefi_vars, "off"}}) {
    b.opt("-blockdev", Opt("")
                           .add("driver", "file")
                           .add("node-name", std::string("file-") + n)
                           .add("filename", *path)
                           .add("read-only", ro));
    b.opt("-blockdev", Opt("")
                           .add("driver", "raw")
                           .add("node-name", n)
                           .add("file", std::string("file-") + n)
                           .add("read-only", ro));
  }
}

void add_disks(Builder& b, const model::VmSpec& spec, const ResolvedVm& vm,
               const HardwareProfile& hw) {
  const int bootindex = boot_index(spec, model::BootDevice::disk);
  if (vm.disks.size() != spec.disks.size()) {
    b.fail(Error{ErrorCode::internal, "resolved disks do not match the spec", "disks"});
    return;
  }
  for (size_t i = 0; i < spec.disks.size(); ++i) {
    const auto& d = spec.disks[i];
    const auto& r = vm.disks[i];
    std::string field = fmt::format("disks[{}]", i);
    if (auto s = check_abs_path(field + ".path", r.path); !s) return b.fail(s.error());
    if (r.format != "qcow2" && r.format != "raw")
      return b.fail(Error{ErrorCode::invalid_argument, "unsupported disk format", field});
    const char* ro = d.readonly ? "on" : "off";
    const DiskNames names = disk_names(spec, i);
    b.opt("-blockdev", Opt("")
                           .add("driver", "file")
                           .add("node-name", names.file_node)
                           .add("filename", r.path)
                           .add("read-only", ro));
    b.opt("-blockdev", Opt("")
                           .add("driver", r.format)
                           .add("node-name", names.format_node)
                           .add("file", names.file_node)
                           .add("read-only", ro));
    Opt dev("virtio-blk-pci");
    dev.add("drive", names.format_node).add("id", names.device).add("serial", d.name);
    // On its hot-plug slot's root port, where an attach put it (a migration target and a
    // restart build the same layout); disks placed at boot take the root bus's next slot.
    if (d.hotplug_slot != 0) {
      if (static_cast<int>(d.hotplug_slot) > hw.spare_root_ports)
        return b.fail(
            Error{ErrorCode::failed_precondition,
                  "this VM's hardware has no hot-plug slot " + std::to_string(d.hotplug_slot),
                  field + ".hotplug_slot"});
      dev.add("bus", root_port_id(d.hotplug_slot));
    }
    if (d.boot && bootindex > 0) dev.add("bootindex", std::to_string(bootindex));
    b.opt("-device", dev);
  }
}

void add_nics(Builder& b, const model::VmSpec& spec, const ResolvedVm& vm,
              const HardwareProfile& hw) {
  if (vm.taps.size() != spec.nics.size()) {
    b.fail(Error{ErrorCode::internal, "resolved taps do not match the spec", "nics"});
    return;
  }
  int tap_fd = kFirstTapFd;
  for (size_t i = 0; i < spec.nics.size(); ++i) {
    const auto& n = spec.nics[i];
    std::string field = fmt::format("nics[{}]", i);
    const NicNames names = nic_names(spec, i);
    const std::string& id = names.netdev;
    if (!only_chars(n.mac, ":") || n.mac.size() != 17)
      return b.fail(Error{ErrorCode::invalid_argument, "bad MAC address", field + ".mac"});
    if (n.mode == model::NicMode::bridge) {
      const auto& tap = vm.taps[i];
      if (tap.empty() || tap.size() > 15 || !only_chars(tap, "_.-"))
        return b.fail(Error{ErrorCode::invalid_argument, "bad tap name", field});
      // The shim opens `tap` and hands it over as this fd (see kFirstTapFd).
      b.opt("-netdev", Opt("tap").add("id", id).add("fd", std::to_string(tap_fd++)));
    } else {
      b.opt("-netdev", Opt("user").add("id", id));
    }
    Opt dev("virtio-net-pci");
    dev.add("netdev", id).add("id", names.device).add("mac", n.mac);
    if (n.hotplug_slot != 0) {
      if (static_cast<int>(n.hotplug_slot) > hw.spare_root_ports)
        return b.fail(
            Error{ErrorCode::failed_precondition,
                  "this VM's hardware has no hot-plug slot " + std::to_string(n.hotplug_slot),
                  field + ".hotplug_slot"});
      dev.add("bus", root_port_id(n.hotplug_slot));
    }
    b.opt("-device", dev);
  }
}

}  // namespace

DiskNames disk_names(const model::VmSpec& spec, size_t i) {
  const uint32_t slot = i < spec.disks.size() ? spec.disks[i].hotplug_slot : 0;
  if (slot == 0)
    return {fmt::format("file{}", i), fmt::format("disk{}", i), fmt::format("virtio-disk{}", i)};
  return {fmt::format("file-rp{}", slot), fmt::format("disk-rp{}", slot),
          fmt::format("virtio-disk-rp{}", slot)};
}

NicNames nic_names(const model::VmSpec& spec, size_t i) {
  const uint32_t slot = i < spec.nics.size() ? spec.nics[i].hotplug_slot : 0;
  if (slot == 0) return {fmt::format("net{}", i), fmt::format("nic{}", i)};
  return {fmt::format("net-rp{}", slot), fmt::format("nic-rp{}", slot)};
}

std::string root_port_id(uint32_t slot) { return "rp" + std::to_string(slot); }

VmFiles vm_files(const std::string& vm_dir) {
  const std::string run = vm_dir + "/run";
  return VmFiles{run,
                 run + "/qmp.sock",
                 run + "/serial.sock",
                 run + "/qga.sock",
                 run + "/vnc.sock",
                 vm_dir + "/console.log",
                 vm_dir + "/qemu.pid"};
}

Result<std::string> escape_opt_value(std::string_view field, std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (is_ctl(c)) return invalid_argument(std::string(field), "contains a control character");
    out += c;
    if (c == ',') out += ',';
  }
  return out;
}

Result<std::vector<std::string>> build_qemu_argv(const model::VmSpec& spec, const ResolvedVm& vm,
                                                 const ArgvOptions& options) {
  Builder b;
  if (auto s = check_abs_path("vm_dir", vm.vm_dir); !s) return tl::unexpected(s.error());
  VmFiles f = vm_files(vm.vm_dir);
  for (const auto* p : {&f.qmp_socket, &f.serial_socket, &f.qga_socket, &f.vnc_socket})
    if (p->size() > kMaxSocketPath)
      return invalid_argument("vm_dir", "too long for a UNIX socket path: " + *p);
  if (!only_chars(spec.uuid, "-") || spec.uuid.size() != 36)
    return invalid_argument("uuid", "not a UUID");
  if (!only_chars(spec.machine, "._-")) return invalid_argument("machine", "bad machine type");
  if (spec.vcpus == 0) return invalid_argument("vcpus", "must be positive");
  if (spec.memory_mib == 0) return invalid_argument("memory_mib", "must be positive");

  const HardwareProfile& hw = options.profile;
  if (hw.version > 0) {
    if (hw.machine.empty() || !only_chars(hw.machine, "._-"))
      return invalid_argument("profile.machine", "bad machine type");
    if (hw.cpu_model.empty() || !only_chars(hw.cpu_model, "._-"))
      return invalid_argument("profile.cpu_model", "bad CPU model");
  }
  b.raw({options.qemu_binary});
  if (options.accelerator != "kvm" && options.accelerator != "tcg")
    return invalid_argument("accelerator", "must be kvm or tcg");
  std::string cpu = hw.version > 0 ? hw.cpu_model : options.accelerator == "kvm" ? "host" : "max";
  b.raw({"-accel", options.accelerator, "-cpu", cpu});
  Opt machine("");
  machine.add("type", hw.version > 0 ? hw.machine : spec.machine);
  const bool uefi = hw.firmware == "uefi";
  if (uefi != (spec.firmware == model::Firmware::uefi))
    return invalid_argument("firmware", std::string("the spec asks for ") +
                                            model::to_string(spec.firmware) +
                                            ", the hardware profile has " + hw.firmware);
  if (uefi) machine.add("pflash0", "pflash0").add("pflash1", "pflash1");
  b.opt("-machine", machine);
  b.raw({"-nodefaults", "-no-user-config", "-display", "none"});
  // seccomp: no obsolete syscalls, no setuid (privileges are dropped before exec, by the
  // shim), no fork/exec (so no exec: migration URIs, no helper scripts), no scheduler or
  // priority changes. A forbidden syscall kills QEMU.
  if (options.sandbox)
    b.raw({"-sandbox",
           "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny"});
  b.opt("-name", Opt("").add("guest", spec.name));
  b.raw({"-uuid", spec.uuid});
  b.raw({"-smp", std::to_string(spec.vcpus), "-m", std::to_string(spec.memory_mib)});
  b.raw({"-pidfile", f.pid_file});

  // QMP monitor: the agent's control channel.
  add_chardev_socket(b, "qmp", f.qmp_socket);
  b.opt("-mon", Opt("").add("chardev", "qmp").add("mode", "control"));
  // Serial console: logged to console.log by QEMU itself, so output is kept even when no
  // agent is connected; the agent holds the one socket connection and fans it out.
  add_chardev_socket(b, "serial0", f.serial_socket, f.console_log);
  b.raw({"-serial", "chardev:serial0"});
  // pvpanic (ISA, on q35's LPC bus): a panicking guest kernel tells QEMU, which emits
  // GUEST_PANICKED, so a kernel panic is reported as "crashed", not as a plain poweroff.
  b.raw({"-device", "pvpanic"});
  // Hardware profile v1 devices (hardware_profile.h), at fixed ids so a later hot-plug or a
  // migration target finds the same layout.
  for (int i = 1; i <= hw.spare_root_ports; ++i)
    b.opt("-device", Opt("pcie-root-port")
                         .add("id", root_port_id(static_cast<uint32_t>(i)))
                         .add("chassis", std::to_string(i))
                         .add("bus", "pcie.0"));
  if (hw.usb_tablet) {
    b.opt("-device", Opt("qemu-xhci").add("id", "usb0"));
    b.opt("-device", Opt("usb-tablet").add("bus", "usb0.0").add("id", "tablet0"));
  }
  if (uefi) add_uefi_flash(b, vm);
  add_cdrom(b, spec, vm, hw);

  if (spec.kernel_boot) {
    const auto& kb = *spec.kernel_boot;
    if (auto s = check_abs_path("kernel_boot.kernel", vm.kernel_path); !s) b.fail(s.error());
    if (auto s = check_raw("kernel_boot.kernel", vm.kernel_path); !s) b.fail(s.error());
    b.raw({"-kernel", vm.kernel_path});
    if (!kb.initrd.empty()) {
      if (auto s = check_abs_path("kernel_boot.initrd", vm.initrd_path); !s) b.fail(s.error());
      if (auto s = check_raw("kernel_boot.initrd", vm.initrd_path); !s) b.fail(s.error());
      b.raw({"-initrd", vm.initrd_path});
    }
    if (!kb.cmdline.empty()) {
      for (char c : kb.cmdline)
        if (is_ctl(c))
          b.fail(Error{ErrorCode::invalid_argument, "contains a control character",
                       "kernel_boot.cmdline"});
      b.raw({"-append", kb.cmdline});
    }
  }
  add_disks(b, spec, vm, hw);
  add_nics(b, spec, vm, hw);

  // qemu-guest-agent channel.
  add_chardev_socket(b, "qga0", f.qga_socket);
  b.opt("-device", Opt("virtio-serial-pci").add("id", "virtio-serial0"));
  b.opt("-device", Opt("virtserialport")
                       .add("bus", "virtio-serial0.0")
                       .add("chardev", "qga0")
                       .add("name", "org.qemu.guest_agent.0"));
  if (spec.vnc) {
    b.opt("-device", Opt("VGA").add("id", "video0"));
    b.opt("-vnc", Opt("").add("vnc", "unix:" + f.vnc_socket));
  }
  if (spec.cloud_init) {
    // The NoCloud seed (volume label "cidata"), read-only, after every other device so
    // the PCI layout of the rest does not depend on it.
    if (auto s = check_abs_path("cloud_init_seed", vm.cloud_init_seed); !s)
      return tl::unexpected(s.error());
    b.opt("-blockdev", Opt("")
                           .add("driver", "file")
                           .add("node-name", "file-cidata")
                           .add("filename", vm.cloud_init_seed)
                           .add("read-only", "on"));
    b.opt("-blockdev", Opt("")
                           .add("driver", "raw")
                           .add("node-name", "cidata")
                           .add("file", "file-cidata")
                           .add("read-only", "on"));
    b.opt("-device",
          Opt("virtio-blk-pci").add("drive", "cidata").add("id", "cidata").add("serial", "cidata"));
  }
  // The guest watchdog (hardware profile v3), after every other device: the PCI layout of
  // the rest is the same with or without it. The action is QEMU's `-action watchdog=`.
  if (spec.watchdog.has_value() != !hw.watchdog.empty())
    return invalid_argument("watchdog", std::string("the spec ") +
                                            (spec.watchdog ? "asks for" : "has no") +
                                            " a watchdog, the hardware profile has " +
                                            (hw.watchdog.empty() ? "none" : hw.watchdog));
  if (spec.watchdog) {
    b.opt("-device", Opt(hw.watchdog).add("id", "watchdog0"));
    b.raw({"-action", std::string("watchdog=") + model::to_string(spec.watchdog->action)});
  }
  if (options.incoming) {
    // A live migration's target: vCPUs stay stopped until the driver's `cont`, and QEMU
    // waits for migrate-incoming (the driver picks the address over QMP).
    b.raw({"-S", "-incoming", "defer"});
  }
  return b.finish();
}

}  // namespace strata::agent::qemu
