// Pure builder of the QEMU command line for one VM: VmSpec + resolved host paths -> argv.
// Every value placed inside a comma-separated QEMU option is escaped (',' -> ',,') and
// control characters are rejected, so no input can add an option or an argument.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "hardware_profile.h"
#include "strata/common/error.h"
#include "strata/model/vm_spec.h"

namespace strata::agent::qemu {

// Host-side resolution of the spec's names, done by the driver before building argv.
struct ResolvedDisk {
  std::string path;    // absolute path of the disk file
  std::string format;  // "qcow2" | "raw"
};

struct ResolvedVm {
  std::string vm_dir;               // absolute; sockets, logs and pid file live here
  std::vector<ResolvedDisk> disks;  // one per spec.disks, same order
  std::string kernel_path;          // when spec.kernel_boot
  std::string initrd_path;          // optional
  std::vector<std::string> taps;    // one per spec.nics; empty string for user-mode NICs
  std::string cloud_init_seed;      // raw "cidata" image when spec.cloud_init, else empty
  // The CD-ROM's medium when spec.cdrom: the image store's file of that iso image (never a
  // path from the user: the driver resolves the catalog name). Opened read-only.
  std::string cdrom_path;
  // UEFI (profile.firmware "uefi"): the host's OVMF code (read-only) and the VM's own
  // variables file (in its folder, written by the guest's firmware).
  std::string uefi_code;
  std::string uefi_vars;
};

// Bridged NICs get their tap as an open file descriptor (`-netdev tap,fd=N`), opened by
// the shim as root before it drops privileges: QEMU itself never opens /dev/net/tun (which
// may be root-only) and cannot attach to another VM's tap. The k-th bridged NIC's tap is
// fd kFirstTapFd + k in QEMU.
inline constexpr int kFirstTapFd = 3;

struct ArgvOptions {
  std::string qemu_binary = "qemu-system-x86_64";
  std::string accelerator = "tcg";  // "kvm" | "tcg"
  // QEMU's seccomp filter: -sandbox on,obsolete=deny,elevateprivileges=deny,spawn=deny,
  // resourcecontrol=deny. Off only when the probed binary lacks the option.
  bool sandbox = true;
  // The VM's recorded hardware profile (hardware_profile.h); version 0: the legacy layout.
  HardwareProfile profile = {};
  // Live migration target: `-S -incoming defer` (docs/internals/qemu-driver.md).
  bool incoming = false;
};

// Files inside the VM folder that QEMU creates or uses. The VM folder itself belongs to
// root (the agent's records live there); QEMU can write only the sockets folder run/ and
// the files the agent pre-creates for it (console.log, qemu.pid).
struct VmFiles {
  std::string run_dir;  // <vm_dir>/run: QEMU's UNIX sockets
  std::string qmp_socket, serial_socket, qga_socket, vnc_socket, console_log, pid_file;
};
VmFiles vm_files(const std::string& vm_dir);

// Longest UNIX socket path the kernel accepts (sun_path minus the terminating NUL).
inline constexpr size_t kMaxSocketPath = 107;

// Escapes a value for a QEMU comma-separated option: doubles commas. Rejects control
// characters (they have no business in paths or ids and could confuse logs).
Result<std::string> escape_opt_value(std::string_view field, std::string_view value);

// QEMU names of disk `i` of `spec` (one home, used by argv, hot-plug, resize and migration).
// A disk placed at boot is named by its index ("file0", "disk0", "virtio-disk0"); a disk on
// a hot-plug slot by its slot ("file-rp2", "disk-rp2", "virtio-disk-rp2"), so removing one
// never renames another while QEMU runs.
struct DiskNames {
  std::string file_node, format_node, device;
};
DiskNames disk_names(const model::VmSpec& spec, size_t i);
// NIC `i`: netdev and device ids ("net0"/"nic0", or "net-rp3"/"nic-rp3" on slot 3).
struct NicNames {
  std::string netdev, device;
};
NicNames nic_names(const model::VmSpec& spec, size_t i);
// The spare root port of hot-plug slot k ("rp<k>", as build_qemu_argv makes them).
std::string root_port_id(uint32_t slot);

Result<std::vector<std::string>> build_qemu_argv(const model::VmSpec& spec, const ResolvedVm& vm,
                                                 const ArgvOptions& options);

}  // namespace strata::agent::qemu
