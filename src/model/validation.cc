// Validation of VmSpec fields: names, identifiers, sizes, uniqueness and boot source.
// Pure functions; every error is invalid_argument naming the offending field.
#include "strata/model/validation.h"

#include <regex>
#include <set>
#include <string>
#include <utility>

#include "strata/common/ascii.h"

namespace strata::model {
namespace {

std::string describe_char(char c) {
  auto u = static_cast<unsigned char>(c);
  if (u < 0x20 || u >= 0x7f) {
    static constexpr char kHex[] = "0123456789abcdef";
    return std::string("\\x") + kHex[u >> 4] + kHex[u & 0x0f];
  }
  return std::string("'") + c + "'";
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return c - 'A' + 10;
}

tl::unexpected<Error> bad(std::string_view field, std::string message) {
  return invalid_argument(std::string(field), std::move(message));
}

tl::unexpected<Error> bad_char(std::string_view field, std::string_view value, size_t pos,
                               std::string_view allowed) {
  return bad(field, "invalid character " + describe_char(value[pos]) + " at position " +
                        std::to_string(pos) + " (allowed: " + std::string(allowed) + ")");
}

std::string field_at(std::string_view base, size_t i, std::string_view member) {
  return std::string(base) + "[" + std::to_string(i) + "]." + std::string(member);
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

}  // namespace

Status validate_name(std::string_view field, std::string_view name) {
  if (name.empty()) return bad(field, "must not be empty");
  if (name.size() > 63) return bad(field, "longer than 63 characters");
  for (size_t i = 0; i < name.size(); ++i)
    if (!is_ascii_lower_alnum(name[i]) && name[i] != '-')
      return bad_char(field, name, i, "a-z 0-9 '-'");
  if (name.front() == '-' || name.back() == '-')
    return bad(field, "must not start or end with '-'");
  return {};
}

Status validate_image_name(std::string_view field, std::string_view name) {
  if (name.empty()) return bad(field, "must not be empty");
  if (name.size() > 128) return bad(field, "longer than 128 characters");
  for (size_t i = 0; i < name.size(); ++i) {
    char c = name[i];
    if (!is_ascii_alnum(c) && c != '.' && c != '_' && c != '-')
      return bad_char(field, name, i, "A-Z a-z 0-9 '.' '_' '-'");
  }
  if (!is_ascii_alnum(name.front())) return bad(field, "must start with a letter or digit");
  if (name.find("..") != std::string_view::npos) return bad(field, "must not contain \"..\"");
  return {};
}

Status validate_ifname(std::string_view field, std::string_view name) {
  if (name.empty()) return bad(field, "must not be empty");
  if (name.size() > 15) return bad(field, "longer than 15 characters (IFNAMSIZ)");
  for (size_t i = 0; i < name.size(); ++i) {
    char c = name[i];
    if (!is_ascii_alnum(c) && c != '_' && c != '.' && c != '-')
      return bad_char(field, name, i, "A-Z a-z 0-9 '_' '.' '-'");
  }
  if (name == "." || name == "..") return bad(field, "must not be \".\" or \"..\"");
  return {};
}

Status validate_uuid(std::string_view field, std::string_view uuid) {
  if (uuid.size() != 36) return bad(field, "not a UUID (expected 8-4-4-4-12 hex digits)");
  bool all_zero = true;
  for (size_t i = 0; i < uuid.size(); ++i) {
    bool dash_pos = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash_pos) {
      if (uuid[i] != '-')
        return bad(field, "not a UUID (expected '-' at position " + std::to_string(i) + ")");
    } else if (!is_ascii_hex(uuid[i])) {
      return bad_char(field, uuid, i, "hex digits");
    } else if (uuid[i] != '0') {
      all_zero = false;
    }
  }
  if (all_zero) return bad(field, "the nil UUID is not allowed");
  return {};
}

bool same_mac(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    auto fold = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; };
    if (fold(a[i]) != fold(b[i])) return false;
  }
  return true;
}

Status validate_mac(std::string_view field, std::string_view mac) {
  if (mac.size() != 17) return bad(field, "not a MAC address (expected xx:xx:xx:xx:xx:xx)");
  for (size_t i = 0; i < mac.size(); ++i) {
    if (i % 3 == 2) {
      if (mac[i] != ':') return bad(field, "not a MAC address (expected ':' separators)");
    } else if (!is_ascii_hex(mac[i])) {
      return bad_char(field, mac, i, "hex digits and ':'");
    }
  }
  int first = hex_value(mac[0]) * 16 + hex_value(mac[1]);
  if (first & 0x01) return bad(field, "multicast MAC address not allowed");
  if (!(first & 0x02))
    return bad(field, "must be a locally administered address (e.g. 52:54:00:xx:xx:xx)");
  return {};
}

Status validate_cmdline(std::string_view field, std::string_view cmdline) {
  if (cmdline.size() > kMaxCmdlineBytes)
    return bad(field, "longer than " + std::to_string(kMaxCmdlineBytes) + " bytes");
  for (size_t i = 0; i < cmdline.size(); ++i) {
    auto u = static_cast<unsigned char>(cmdline[i]);
    if (u < 0x20 || u > 0x7e) return bad_char(field, cmdline, i, "printable ASCII");
  }
  return {};
}

Status validate_machine(std::string_view field, std::string_view machine) {
  // Versioned types as QEMU names them; the version is at most "NN.NN".
  static const std::regex kVersioned(R"(^pc-(q35|i440fx)-[0-9]{1,2}\.[0-9]{1,2}$)");
  if (machine == "q35" || machine == "pc") return {};
  if (machine.size() <= 20 && std::regex_match(machine.begin(), machine.end(), kVersioned))
    return {};
  std::string shown =
      machine.size() > 32 ? std::string(machine.substr(0, 32)) + "..." : std::string(machine);
  for (char& c : shown)
    if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) > 0x7e) c = '?';
  return bad(field, "unknown machine type \"" + shown +
                        "\" (allowed: q35, pc, pc-q35-X.Y, pc-i440fx-X.Y)");
}

Status validate_cpu_model(std::string_view field, std::string_view model) {
  // QEMU's x86 model names: letters, digits, '.', '_', '-' ("Skylake-Server-v4",
  // "Opteron_G5-v1"), starting with a letter or digit: never an option separator (',',
  // '=') on QEMU's command line.
  if (model.empty()) return {};
  if (model.size() > 64) return bad(field, "CPU model name longer than 64 characters");
  for (size_t i = 0; i < model.size(); ++i) {
    char c = model[i];
    if (!is_ascii_alnum(c) && c != '.' && c != '_' && c != '-')
      return bad_char(field, model, i, "A-Z a-z 0-9 '.' '_' '-'");
  }
  if (!is_ascii_alnum(model.front()))
    return bad(field, "CPU model must start with a letter or digit");
  if (model == "base") return bad(field, "\"base\" is not a CPU model a guest can run");
  return {};
}

Status validate_label(std::string_view field, std::string_view key, std::string_view value) {
  if (key.empty()) return bad(field, "label key must not be empty");
  if (key.size() > 63) return bad(field, "label key longer than 63 characters");
  for (size_t i = 0; i < key.size(); ++i) {
    char c = key[i];
    if (!is_ascii_alnum(c) && c != '.' && c != '_' && c != '-')
      return bad_char(field, key, i, "A-Z a-z 0-9 '.' '_' '-'");
  }
  if (!is_ascii_alnum(key.front()))
    return bad(field, "label key must start with a letter or digit");
  // The key is known to be clean now, so it can name the field of a bad value.
  std::string value_field = std::string(field) + "." + std::string(key);
  if (value.size() > 255) return bad(value_field, "label value longer than 255 characters");
  for (size_t i = 0; i < value.size(); ++i) {
    auto u = static_cast<unsigned char>(value[i]);
    if (u < 0x20 || u > 0x7e) return bad_char(value_field, value, i, "printable ASCII");
  }
  return {};
}

Status validate_labels(std::string_view field, const std::map<std::string, std::string>& labels) {
  if (labels.size() > kMaxLabels)
    return bad(field, std::to_string(labels.size()) + " labels, at most " +
                          std::to_string(kMaxLabels) + " allowed");
  for (const auto& [k, v] : labels)
    if (auto s = validate_label(field, k, v); !s) return s;
  return {};
}

namespace {

bool is_q35(std::string_view machine) {
  return machine == "q35" || machine.rfind("pc-q35-", 0) == 0;
}

// CD-ROM, boot order and firmware. The CD-ROM slot and UEFI exist on q35 only (the
// hardware profile, docs/internals/firmware.md); the boot order names each device once.
Status validate_boot(const VmSpec& spec, size_t boot_disks) {
  if (!spec.cdrom.empty()) {
    if (auto s = validate_image_name("cdrom", spec.cdrom); !s) return s;
    if (!is_q35(spec.machine)) return bad("cdrom", "the CD-ROM needs a q35 machine");
  }
  bool boot_cdrom = false;
  for (size_t i = 0; i < spec.boot.size(); ++i) {
    std::string field = "boot[" + std::to_string(i) + "]";
    for (size_t k = 0; k < i; ++k)
      if (spec.boot[k] == spec.boot[i])
        return bad(field, std::string("\"") + to_string(spec.boot[i]) + "\" named twice");
    if (spec.boot[i] == BootDevice::cdrom) {
      boot_cdrom = true;
      if (!is_q35(spec.machine)) return bad(field, "the CD-ROM needs a q35 machine");
    }
    if (spec.boot[i] == BootDevice::disk && boot_disks == 0)
      return bad(field, "\"disk\" boots the disk marked boot=true; no disk is");
  }
  if (spec.kernel_boot && !spec.boot.empty())
    return bad("boot", "kernel_boot boots the kernel; a boot order is for firmware boot");
  if (spec.firmware == Firmware::uefi && !is_q35(spec.machine))
    return bad("firmware", "UEFI needs a q35 machine");
  if (!spec.kernel_boot && boot_disks == 0 && !boot_cdrom)
    return bad("kernel_boot",
               "no boot source: set kernel_boot, mark one disk boot=true or boot from the cdrom");
  return {};
}

}  // namespace

Status validate(const VmSpec& spec) {
  if (auto s = validate_name("name", spec.name); !s) return s;
  if (!spec.uuid.empty())
    if (auto s = validate_uuid("uuid", spec.uuid); !s) return s;
  if (spec.vcpus < 1 || spec.vcpus > kMaxVcpus)
    return bad("vcpus", std::to_string(spec.vcpus) + " is outside 1.." + std::to_string(kMaxVcpus));
  if (spec.memory_mib < kMinMemoryMib || spec.memory_mib > kMaxMemoryMib)
    return bad("memory_mib", std::to_string(spec.memory_mib) + " is outside " +
                                 std::to_string(kMinMemoryMib) + ".." +
                                 std::to_string(kMaxMemoryMib));
  if (auto s = validate_machine("machine", spec.machine); !s) return s;
  if (auto s = validate_cpu_model("cpu_model", spec.cpu_model); !s) return s;

  if (spec.kernel_boot) {
    const KernelBoot& kb = *spec.kernel_boot;
    if (auto s = validate_image_name("kernel_boot.kernel", kb.kernel); !s) return s;
    if (!kb.initrd.empty())
      if (auto s = validate_image_name("kernel_boot.initrd", kb.initrd); !s) return s;
    if (auto s = validate_cmdline("kernel_boot.cmdline", kb.cmdline); !s) return s;
  }

  if (spec.disks.size() > kMaxDisks)
    return bad("disks", std::to_string(spec.disks.size()) + " disks, at most " +
                            std::to_string(kMaxDisks) + " allowed");
  std::set<std::string> disk_names;
  size_t boot_disks = 0;
  // Each spare root port holds one device, a disk or a NIC.
  std::set<uint32_t> slots;
  auto use_slot = [&](const std::string& field, uint32_t slot) -> Status {
    if (slot > kMaxHotplugSlots)
      return bad(field, std::to_string(slot) + " is not a hot-plug slot (1.." +
                            std::to_string(kMaxHotplugSlots) + ")");
    if (!slots.insert(slot).second)
      return bad(field, "hot-plug slot " + std::to_string(slot) + " holds another device");
    return {};
  };
  for (size_t i = 0; i < spec.disks.size(); ++i) {
    const DiskSpec& d = spec.disks[i];
    if (auto s = validate_name(field_at("disks", i, "name"), d.name); !s) return s;
    if (!disk_names.insert(d.name).second)
      return bad(field_at("disks", i, "name"), "duplicate disk name \"" + d.name + "\"");
    if (!d.base_image.empty())
      if (auto s = validate_image_name(field_at("disks", i, "base_image"), d.base_image); !s)
        return s;
    if (d.base_image.empty() && d.size_bytes == 0)
      return bad(field_at("disks", i, "size_bytes"), "a blank disk needs a size > 0");
    if (d.size_bytes > kMaxDiskBytes)
      return bad(field_at("disks", i, "size_bytes"), std::to_string(d.size_bytes) +
                                                         " exceeds the maximum of " +
                                                         std::to_string(kMaxDiskBytes) + " bytes");
    if (!d.datastore.empty()) {
      if (auto s = validate_name(field_at("disks", i, "datastore"), d.datastore); !s) return s;
      if (!d.datastore_id.empty())
        if (auto s = validate_uuid(field_at("disks", i, "datastore_id"), d.datastore_id); !s)
          return s;
      if (d.readonly)
        return bad(field_at("disks", i, "readonly"),
                   "a read-only disk lives on each host; it cannot be on a datastore");
    } else if (!d.datastore_id.empty()) {
      return bad(field_at("disks", i, "datastore_id"), "set without a datastore");
    }
    if (d.boot) ++boot_disks;
    if (d.hotplug_slot != 0)
      if (auto s = use_slot(field_at("disks", i, "hotplug_slot"), d.hotplug_slot); !s) return s;
  }
  if (boot_disks > 1) return bad("disks", "more than one disk has boot=true");
  if (auto s = validate_boot(spec, boot_disks); !s) return s;

  if (spec.nics.size() > kMaxNics)
    return bad("nics", std::to_string(spec.nics.size()) + " NICs, at most " +
                           std::to_string(kMaxNics) + " allowed");
  std::set<std::string> macs;
  for (size_t i = 0; i < spec.nics.size(); ++i) {
    const NicSpec& n = spec.nics[i];
    if (n.mode == NicMode::bridge) {
      if (auto s = validate_ifname(field_at("nics", i, "bridge"), n.bridge); !s) return s;
      if (n.vlan > kMaxVlanId)
        return bad(field_at("nics", i, "vlan"), std::to_string(n.vlan) + " is not a VLAN id (1.." +
                                                    std::to_string(kMaxVlanId) +
                                                    ", or 0 for none)");
    } else if (!n.bridge.empty()) {
      return bad(field_at("nics", i, "bridge"), "only allowed with mode \"bridge\"");
    } else if (n.vlan != 0) {
      return bad(field_at("nics", i, "vlan"), "only allowed with mode \"bridge\"");
    }
    if (n.hotplug_slot != 0)
      if (auto s = use_slot(field_at("nics", i, "hotplug_slot"), n.hotplug_slot); !s) return s;
    if (n.mac.empty()) continue;
    if (auto s = validate_mac(field_at("nics", i, "mac"), n.mac); !s) return s;
    if (!macs.insert(lower(n.mac)).second)
      return bad(field_at("nics", i, "mac"), "duplicate MAC address " + n.mac);
  }

  if (auto s = validate_labels("labels", spec.labels); !s) return s;
  if (spec.cloud_init)
    if (auto s = validate_cloud_init(*spec.cloud_init, spec.nics.size()); !s) return s;
  return {};
}

namespace {
constexpr char kHex[] = "0123456789abcdef";
}  // namespace

std::string new_uuid(uint64_t (*random)()) {
  uint64_t hi = random(), lo = random();
  unsigned char b[16];
  for (int i = 0; i < 8; ++i) {
    b[i] = static_cast<unsigned char>(hi >> (56 - 8 * i));
    b[8 + i] = static_cast<unsigned char>(lo >> (56 - 8 * i));
  }
  b[6] = static_cast<unsigned char>((b[6] & 0x0f) | 0x40);  // version 4
  b[8] = static_cast<unsigned char>((b[8] & 0x3f) | 0x80);  // RFC 4122 variant
  std::string u;
  for (int i = 0; i < 16; ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) u += '-';
    u += kHex[b[i] >> 4];
    u += kHex[b[i] & 0x0f];
  }
  return u;
}

Result<VmSpec> complete(VmSpec spec, uint64_t (*random)()) {
  if (spec.uuid.empty()) spec.uuid = new_uuid(random);
  std::set<std::string> used;
  for (const NicSpec& n : spec.nics)
    if (!n.mac.empty()) used.insert(lower(n.mac));
  // Each candidate adds a multiple of an odd constant, so even a constant `random` yields
  // distinct suffixes; the bound only guards against pathological sources.
  uint64_t candidate = 0;
  for (NicSpec& n : spec.nics) {
    if (!n.mac.empty()) continue;
    for (int attempt = 0; attempt < 64 && n.mac.empty(); ++attempt) {
      uint64_t r = random() + 0x9e3779b97f4a7c15ull * candidate++;
      std::string mac = "52:54:00";
      for (int i = 0; i < 3; ++i) {
        auto byte = static_cast<unsigned>((r >> (16 - 8 * i)) & 0xff);
        mac += ':';
        mac += kHex[byte >> 4];
        mac += kHex[byte & 0x0f];
      }
      if (used.insert(mac).second) n.mac = std::move(mac);
    }
    if (n.mac.empty()) return internal_error("could not generate a unique MAC address");
  }
  if (auto s = validate(spec); !s) return tl::unexpected(s.error());
  return spec;
}

}  // namespace strata::model
