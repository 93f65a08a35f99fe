// The VM as the agent runs it: a validated, I/O-free description. The manager's VM
// resource (desired state) embeds one of these plus placement fields.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace strata::model {

// Direct kernel boot. Paths are *image names* inside the agent's image store, never host
// paths (the store resolves and confines them).
struct KernelBoot {
  std::string kernel;   // image name, required
  std::string initrd;   // image name, optional
  std::string cmdline;  // kernel command line, printable ASCII only
};

struct DiskSpec {
  std::string name;             // "root", "data0": DNS-label, unique within the VM
  std::string base_image;       // image name: the disk is a qcow2 overlay on it; or empty
  uint64_t size_bytes = 0;      // blank qcow2 of this size (base_image empty), or grow overlay to it
  bool boot = false;            // boot from this disk (when no kernel boot)
  bool readonly = false;
  // Shared storage (docs/internals/datastores.md): empty, the disk is a file of its host's
  // image store; else the name of a datastore (a folder every host of the pool mounts,
  // NFS or a cluster file system) holding the disk, so any host that mounts it can run
  // the VM (HA restart, migration without copying the disk). `datastore_id` is that
  // datastore's UUID, filled in by the manager when the VM is created: a host whose
  // folder of that name is other storage never opens the disk.
  std::string datastore;
  std::string datastore_id;
  // Hot-plug (docs/internals/qemu-driver.md, "Hot-plug"): 0, the disk is placed on the
  // root bus at boot (a disk the VM was created with); k > 0, it sits on the VM's k-th
  // spare pcie-root-port ("rp<k>"), where an attach put it, running or not. A running VM
  // can lose only such a disk, and a migration target rebuilds it on the same port.
  uint32_t hotplug_slot = 0;
};

enum class NicMode { user, bridge };

struct NicSpec {
  NicMode mode = NicMode::user;
  std::string bridge;  // for mode=bridge: Linux bridge name (IFNAMSIZ rules)
  std::string mac;     // "52:54:00:xx:xx:xx"; generated when empty
  // for mode=bridge: 802.1Q VLAN id 1..4094; the tap joins the bridge as an untagged member
  // with this PVID and the bridge gets vlan_filtering. 0: no VLAN (the bridge untouched).
  uint16_t vlan = 0;
  uint32_t hotplug_slot = 0;  // as DiskSpec::hotplug_slot (0: placed at boot)
};

// Highest usable 802.1Q VLAN id (4095 is reserved).
inline constexpr uint16_t kMaxVlanId = 4094;

// cloud-init (docs/internals/cloud-init.md): what the agent writes into the VM's NoCloud
// seed. Everything here is validated (validation.h) before it reaches a file or argv.
struct CloudInitUser {
  std::string name;                              // POSIX user name: [a-z_][a-z0-9_-]*, <= 32
  std::vector<std::string> ssh_authorized_keys;  // "ssh-ed25519 AAAA... comment"
  std::string password_hash;  // crypt(3) form ("$6$salt$hash", "$y$..."); empty: password locked
  bool sudo = false;          // passwordless sudo for this user
  std::vector<std::string> groups;  // supplementary groups (POSIX names)
};

// Network config of one NIC of the VM (network-config v2, matched by the NIC's MAC).
struct CloudInitNic {
  uint32_t nic = 0;       // index into VmSpec::nics
  bool dhcp4 = false;     // DHCP; or a static address:
  std::string address;    // "192.0.2.10/24" or "2001:db8::10/64"
  std::string gateway;    // "192.0.2.1" (same family as address), optional
  std::vector<std::string> nameservers;  // IP addresses, optional
};

struct CloudInit {
  std::string hostname;  // RFC 1123 host name (labels, dots); empty: the VM's name
  std::vector<CloudInitUser> users;
  // Empty: the guest image's own network setup (usually DHCP on the first NIC).
  std::vector<CloudInitNic> network;
  // Extra user-data appended as a second MIME part: starts with "#cloud-config" or "#!".
  std::string user_data;
};

// Firmware (docs/internals/firmware.md): SeaBIOS, or UEFI (Debian's OVMF, read-only code
// plus a per-VM variables file the agent keeps in the VM's folder).
enum class Firmware { bios, uefi };

// What the firmware tries, in order (QEMU bootindex): the CD-ROM, the disk marked boot.
enum class BootDevice { cdrom, disk };

// A guest watchdog (docs/internals/qemu-driver.md, "Guest watchdog"): an emulated Intel
// 6300ESB timer the guest's watchdog daemon must keep feeding; when it stops (the guest
// hung), QEMU takes the action and reports it (QMP WATCHDOG; the manager's `vm.watchdog`
// event). QEMU's actions, as `-action watchdog=`: reset the guest (the default; restarts a
// hung guest in place), request an ACPI shutdown, power off, pause, inject an NMI, or none
// (only report).
enum class WatchdogAction { reset, shutdown, poweroff, pause, inject_nmi, none };
inline constexpr const char* kWatchdogModel = "i6300esb";  // the one model offered
struct Watchdog {
  WatchdogAction action = WatchdogAction::reset;
  bool operator==(const Watchdog&) const = default;
};

struct VmSpec {
  std::string name;          // DNS label: [a-z0-9]([-a-z0-9]*[a-z0-9])?, <= 63
  std::string uuid;          // RFC 4122 text form; generated when empty
  uint32_t vcpus = 1;        // 1..kMaxVcpus
  uint64_t memory_mib = 256; // kMinMemoryMib..kMaxMemoryMib
  std::string machine = "q35";
  std::optional<KernelBoot> kernel_boot;
  std::vector<DiskSpec> disks;
  std::vector<NicSpec> nics;
  bool vnc = true;           // VNC display on a UNIX socket in the VM's state folder
  std::map<std::string, std::string> labels;
  std::optional<CloudInit> cloud_init;  // absent: no cloud-init seed
  // The guest's CPU model: "" = the cluster's CPU baseline (so the VM can move to any host
  // of its cluster; the manager resolves it), "host" (KVM: the host CPU as is; the VM
  // moves only between identical hosts), "max" (everything the accelerator offers; the
  // same rule), or a QEMU model name ("Westmere-v1", "Haswell-v4").
  std::string cpu_model;
  // The medium in the CD-ROM (q35 only): an image name of kind "iso", inserted read-only;
  // empty: the tray is empty. Changed while running through the agent's change_cdrom.
  std::string cdrom;
  // Firmware boot order; empty: the disk marked boot (as before). Ignored by kernel_boot.
  std::vector<BootDevice> boot;
  Firmware firmware = Firmware::bios;
  // Absent: no watchdog device. Fixed when the VM is defined (it is hardware: the
  // hardware profile records it); the action applies from the next start.
  std::optional<Watchdog> watchdog;
};

inline constexpr uint32_t kMaxVcpus = 288;
inline constexpr uint64_t kMinMemoryMib = 16;
inline constexpr uint64_t kMaxMemoryMib = 16ull * 1024 * 1024;  // 16 TiB
inline constexpr uint64_t kMaxDiskBytes = 64ull << 40;         // 64 TiB
inline constexpr size_t kMaxDisks = 16;
inline constexpr size_t kMaxNics = 8;
// Spare pcie-root-ports a VM's hardware can have (hardware profile: 4 today), so the most
// a hotplug_slot can be.
inline constexpr uint32_t kMaxHotplugSlots = 16;
inline constexpr size_t kMaxCloudInitUsers = 16;
inline constexpr size_t kMaxSshKeysPerUser = 32;
inline constexpr size_t kMaxSshKeyBytes = 16 * 1024;
inline constexpr size_t kMaxUserDataBytes = 64 * 1024;
inline constexpr size_t kMaxNameservers = 4;

// Lifecycle states as the agent observes them.
enum class VmState {
  defined,        // spec stored, no QEMU process
  starting,       // QEMU spawned, QMP not ready yet
  running,
  paused,
  shutting_down,  // ACPI powerdown sent, waiting for the guest
  stopped,        // QEMU exited cleanly (guest poweroff or requested stop)
  crashed,        // QEMU died unexpectedly (signal, non-zero exit, guest panic)
};

const char* to_string(VmState s);
std::optional<VmState> vm_state_from_string(const std::string& s);
const char* to_string(NicMode m);
std::optional<NicMode> nic_mode_from_string(const std::string& s);
const char* to_string(Firmware f);
std::optional<Firmware> firmware_from_string(const std::string& s);
const char* to_string(BootDevice b);
std::optional<BootDevice> boot_device_from_string(const std::string& s);
const char* to_string(WatchdogAction a);  // QEMU's spelling: "reset", "inject-nmi", ...
std::optional<WatchdogAction> watchdog_action_from_string(const std::string& s);

}  // namespace strata::model
