// The VM's versioned hardware profile: the virtual hardware a VM gets, fixed when it is
// defined and recorded in its state.json, so a QEMU upgrade or a newer agent never changes
// the hardware of an existing VM under its guest (and a migration target can be asked for
// the same profile). Other changes to the device layout bump kHardwareProfileVersion; a VM
// keeps the version it was defined with.
//   v0  VMs defined before profiles: the legacy layout (the spec's machine alias as given,
//       -cpu host|max by accelerator, no spare ports, no USB, no CD-ROM).
//   v1  machine type pinned to the concrete version the alias named on this host
//       ("q35" -> "pc-q35-7.2"); CPU model recorded; 4 spare pcie-root-ports for hot-plug;
//       qemu-xhci + usb-tablet (an absolute pointer for the graphical console); an empty
//       CD-ROM slot (ide-cd on the q35 AHCI bus ide.2). Root ports and CD-ROM on q35 only
//       (an i440fx "pc" VM records 0 ports and no CD-ROM).
//   v2  v1 + `firmware`: "bios" (SeaBIOS, as v1) or "uefi" (OVMF code as read-only pflash0,
//       the VM's own variables file as pflash1; q35 only). A v1 profile reads as "bios".
//       The CD-ROM slot of v1 can now hold a medium (an iso image) and a bootindex: no
//       device changes for that, so v1 VMs get media too.
//   v3  v2 + `watchdog`: "" or "i6300esb" (the spec's watchdog; the device comes after
//       every other one, so the PCI layout of the rest is v2's). A VM without a watchdog
//       records v2 (settle_version), so hosts one version behind still take it.
//   v4  v3 + disks and NICs on the spare root ports (the spec's hotplug_slot k: on "rp<k>",
//       named by the slot; docs/internals/qemu-driver.md "Hot-plug"). Nothing new in the
//       profile itself: a VM records v3 or lower, and the manager sends a VM with devices
//       on slots only to agents reporting v4 (wire::required_hardware).
#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "strata/agent/qemu_hypervisor.h"
#include "strata/common/error.h"

namespace strata::agent::qemu {

inline constexpr int kHardwareProfileVersion = kQemuHardwareProfileVersion;

struct HardwareProfile {
  int version = 0;
  std::string machine;    // pinned machine type, "pc-q35-7.2" (v0: the spec's, as given)
  std::string cpu_model;  // the spec's or its cluster's baseline ("Westmere-v1"), else "host" (kvm) / "max" (tcg)
  int spare_root_ports = 0;
  bool usb_tablet = false;
  bool cdrom = false;
  std::string firmware = "bios";  // v2: "bios" | "uefi" (v0/v1: always "bios")
  std::string watchdog;           // v3: "" (none) | "i6300esb"
  bool operator==(const HardwareProfile&) const = default;
};

// Parses `qemu-system-x86_64 -machine help`: alias -> concrete machine type, and every
// concrete name mapped to itself ("q35" -> "pc-q35-7.2", "pc-q35-7.2" -> "pc-q35-7.2").
std::map<std::string, std::string> parse_machine_help(std::string_view text);

// The current profile version for a new VM: `machine` (an alias or a concrete type) must be
// one the binary knows (machines from parse_machine_help); failed_precondition otherwise.
Result<HardwareProfile> new_hardware_profile(const std::string& machine,
                                             const std::string& accelerator,
                                             const std::map<std::string, std::string>& machines);

// Lowers a new profile's version to the oldest that describes its devices: a v3 profile
// without a watchdog is a v2 one (hosts whose agents know only v2 can run it).
void settle_version(HardwareProfile& p);

nlohmann::json to_json(const HardwareProfile& p);
// Absent or malformed fields: an error (a state file we cannot read must not silently
// change a VM's hardware).
Result<HardwareProfile> hardware_profile_from_json(const nlohmann::json& j);

}  // namespace strata::agent::qemu
