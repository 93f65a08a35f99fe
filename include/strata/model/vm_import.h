// VM import (docs/internals/import.md): a libvirt domain XML or an OVF descriptor turned
// into a Strata VmSpec plus the list of disks to convert, and the tar framing of an import
// upload (an OVA is a tar; the CLI sends a libvirt import as one too). Pure and I/O-free:
// the callers read the bytes, these functions only judge and map them. Everything that
// cannot be mapped is listed in `unmapped`, never silently dropped; every refusal is
// invalid_argument naming the descriptor field ("descriptor.memory",
// "descriptor.disks[1].source", "archive.members[2].name").
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "strata/common/error.h"
#include "strata/model/vm_spec.h"

namespace strata::model {

enum class ImportFormat { libvirt, ova };
const char* to_string(ImportFormat f);
std::optional<ImportFormat> import_format_from_string(std::string_view s);

// Largest descriptor accepted (a real OVF is a few KiB; a domain XML too).
inline constexpr size_t kMaxDescriptorBytes = 1 << 20;
// Members of an import archive: descriptor, manifest, certificate, disks.
inline constexpr size_t kMaxArchiveMembers = 64;

struct ImportDisk {
  std::string name;  // Strata disk name (DNS label, unique in the VM)
  // libvirt: the host path of the file (the CLI reads it); OVA: the archive member; "" for
  // an OVF disk with no file (a blank disk of capacity_bytes).
  std::string source;
  std::string format;           // what the descriptor says: "qcow2", "raw", "vmdk" ("" unknown)
  uint64_t capacity_bytes = 0;  // the guest's size as the descriptor states it (0: unknown)
  bool boot = false;
  bool readonly = false;
  // OVA: the File's ovf:compression ("" none, "gzip": the member is inflated while it is
  // copied out) and ovf:size (the stored file's bytes; 0 when not stated).
  std::string compression;
  uint64_t file_size = 0;
};

struct ImportPlan {
  std::string descriptor_name;  // the VM's name in the descriptor, as written
  // name: descriptor_name when it is a DNS label, else "". disks[i] matches disks[i]
  // below (base_image empty; an OVF disk without a file is a blank disk of its size).
  VmSpec spec;
  std::vector<ImportDisk> disks;
  std::vector<std::string> unmapped;  // what the descriptor holds that Strata did not take
};

// Source network name (a libvirt <network>, an OVF network's Connection) -> the Strata
// bridge its NICs join. A network not in the map becomes a user-mode NIC (reported).
using NetworkMap = std::map<std::string, std::string, std::less<>>;
inline constexpr size_t kMaxNetworkMapEntries = 16;

// At most kMaxNetworkMapEntries; source names 1..256 printable ASCII bytes; bridges valid
// interface names (validate_ifname, as a NIC's bridge). invalid_argument naming
// "<field>.<source>" (or `field` itself for a bad source name or too many entries).
Status validate_network_map(std::string_view field, const NetworkMap& networks);

// A libvirt <domain>: name, memory, vcpu, os (machine, firmware, boot order), file disks,
// interfaces (bridge; network: a bridge when `networks` maps it, else user; user).
Result<ImportPlan> parse_libvirt_domain(std::string_view xml, const NetworkMap& networks = {});

// An OVF 1.x/2.x Envelope: References, DiskSection, the first VirtualSystem's name and
// VirtualHardwareSection (CPU, memory, disks, NICs, firmware). Disk file names (hrefs)
// must be plain names inside the archive: no '/', '\\', "..", URLs or control characters.
// A File may be gzip-compressed (ImportDisk.compression); chunked files and several VMs
// (VirtualSystemCollection) are refused. An ethernet Item whose Connection `networks` maps
// becomes a bridge NIC.
Result<ImportPlan> parse_ovf(std::string_view xml, const NetworkMap& networks = {});

// "byte * 2^20", "byte", "MegaBytes", ... -> multiplier; nullopt when not understood.
std::optional<uint64_t> parse_allocation_units(std::string_view units);

// ---- tar (POSIX ustar; GNU base-256 sizes and pax "path"/"size" records read) ----

struct TarHeader {
  enum class Kind { file, directory, pax_local, pax_global, end };
  Kind kind = Kind::end;
  std::string name;   // "" for pax headers and the end block
  uint64_t size = 0;  // bytes of data following the header (padded to 512)
};

// One 512-byte header block. `index` names the member in errors.
Result<TarHeader> parse_tar_header(const std::array<unsigned char, 512>& block, size_t index);

// Applies the records of a pax extended header ("NN key=value\n"...) to the member that
// follows: "path" and "size" are taken, others ignored.
Status apply_pax_records(std::string_view records, TarHeader& next, size_t index);

// Member names in an import archive: one plain file name, at most 100 bytes, printable
// ASCII, not "." / "..", no '/', no '\\' (an OVA keeps its files at the top level).
Status validate_member_name(std::string_view field, std::string_view name);

// A ustar header for a regular file `name` of `size` bytes (the CLI writes libvirt
// imports with it). `name` must pass validate_member_name and size < 8 GiB * 1024
// (base-256 above 8 GiB).
std::array<unsigned char, 512> make_tar_header(std::string_view name, uint64_t size);

// The archive member a libvirt import's disk i travels in ("disk-0", "disk-1", ...).
std::string libvirt_disk_member(size_t index);
inline constexpr std::string_view kLibvirtDescriptorMember = "domain.xml";

}  // namespace strata::model
