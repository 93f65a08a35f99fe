// Validation of every externally supplied model field. Pure functions, no I/O.
// Each error names the offending field (e.g. "disks[1].name").
#pragma once

#include <map>
#include <string>
#include <string_view>

#include "strata/common/error.h"
#include "strata/model/vm_spec.h"

namespace strata::model {

// DNS label (RFC 1123): lowercase alnum and '-', 1..63, not starting/ending with '-'.
Status validate_name(std::string_view field, std::string_view name);
// Image names: [A-Za-z0-9][A-Za-z0-9._-]{0,127}, no "..", no '/'.
Status validate_image_name(std::string_view field, std::string_view name);
// Linux interface name: 1..15 chars of [A-Za-z0-9_.-], not "." or "..".
Status validate_ifname(std::string_view field, std::string_view name);
Status validate_uuid(std::string_view field, std::string_view uuid);
// A random (version 4) UUID in RFC 4122 text form; `random` supplies the 128 bits.
std::string new_uuid(uint64_t (*random)());
// Unicast, locally administered or QEMU OUI, "xx:xx:xx:xx:xx:xx" lowercase or uppercase hex.
Status validate_mac(std::string_view field, std::string_view mac);
// The same MAC address, whatever the case of its hex digits.
bool same_mac(std::string_view a, std::string_view b);
// Printable ASCII (0x20..0x7e), at most kMaxCmdlineBytes.
Status validate_cmdline(std::string_view field, std::string_view cmdline);
// QEMU machine type: "q35", "pc", or versioned "pc-q35-7.2" / "pc-i440fx-7.2".
Status validate_machine(std::string_view field, std::string_view machine);
// "" or a QEMU CPU model name (letters, digits, "._-"; "host" and "max" included).
Status validate_cpu_model(std::string_view field, std::string_view model);
// Label key: 1..63 of [A-Za-z0-9._-] starting with alnum; value: <= 255 printable ASCII.
// Key errors name `field`; value errors name `field.key`.
Status validate_label(std::string_view field, std::string_view key, std::string_view value);

inline constexpr size_t kMaxCmdlineBytes = 2048;
// Per map: VM labels, host labels, a node selector. Keys and values are bounded by
// validate_label (63 / 255 characters), so a map stays under ~20 KiB.
inline constexpr size_t kMaxLabels = 64;

// A whole label map (VM or host labels, a node selector): at most kMaxLabels pairs (the
// error names `field`), each pair checked by validate_label.
Status validate_labels(std::string_view field, const std::map<std::string, std::string>& labels);

// Host name for cloud-init: RFC 1123 labels ([A-Za-z0-9-], 1..63, no '-' at the ends)
// joined by '.', at most 253 characters.
Status validate_hostname(std::string_view field, std::string_view host);
// A crypt(3) hash ("$6$salt$hash", "$y$j9T$salt$hash", ...); a clear password is refused.
Status validate_password_hash(std::string_view field, std::string_view hash);
// An IPv4/IPv6 address, "ADDR/PREFIX" when with_prefix; sets *family to 4 or 6 when given.
Status validate_ip(std::string_view field, std::string_view ip, bool with_prefix, int* family);
// The cloud_init object of a VM with nic_count NICs (errors name "cloud_init....").
Status validate_cloud_init(const CloudInit& ci, size_t nic_count);

// Validates the whole spec (names, sizes, uniqueness of disk names and MACs, boot source).
// An empty uuid or NIC mac is accepted (it means "generate"; see complete()).
Status validate(const VmSpec& spec);

// Fills generated fields (uuid, MACs) where empty; `random` supplies entropy so tests are
// deterministic. Returns the completed spec, validated.
Result<VmSpec> complete(VmSpec spec, uint64_t (*random)());

}  // namespace strata::model
