// VmSpec <-> JSON. Parsing is strict: unknown fields, wrong types, negative or fractional
// numbers are errors naming the field path ("disks[1].size_bytes"); the parsed spec is then
// validated. No nlohmann exception escapes this file.
#include "strata/model/vm_spec_json.h"

#include <initializer_list>
#include <limits>
#include <string>

#include "strata/common/json.h"
#include "strata/model/validation.h"

namespace strata::model {
namespace {

using nlohmann::json;

// Keys come from untrusted input; keep them printable and short when echoed back.
std::string printable(std::string_view s) {
  std::string out;
  for (char c : s.substr(0, 64)) {
    auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u > 0x7e) {
      static constexpr char kHex[] = "0123456789abcdef";
      out += "\\x";
      out += kHex[u >> 4];
      out += kHex[u & 0x0f];
    } else {
      out += c;
    }
  }
  if (s.size() > 64) out += "...";
  return out;
}

std::string join(const std::string& path, std::string_view key) {
  return path.empty() ? std::string(key) : path + "." + std::string(key);
}

const char* type_name(const json& j) { return j.type_name(); }

tl::unexpected<Error> wrong_type(const std::string& field, const char* expected, const json& j) {
  return invalid_argument(field, std::string("expected ") + expected + ", got " + type_name(j));
}

Status check_object(const json& j, const std::string& path,
                    std::initializer_list<std::string_view> allowed) {
  if (!j.is_object()) return wrong_type(path.empty() ? "spec" : path, "an object", j);
  for (const auto& item : j.items()) {
    bool known = false;
    for (std::string_view a : allowed) known = known || item.key() == a;
    if (!known) {
      std::string field = join(path, printable(item.key()));
      return invalid_argument(field, "unknown field");
    }
  }
  return {};
}

// Reads an optional string member; leaves `out` untouched when absent.
Status read_string(const json& obj, std::string_view key, const std::string& path, std::string& out,
                   bool required = false) {
  std::string field = join(path, key);
  auto it = obj.find(key);
  if (it == obj.end()) {
    if (required) return invalid_argument(field, "is required");
    return {};
  }
  if (!it->is_string()) return wrong_type(field, "a string", *it);
  out = it->get<std::string>();
  return {};
}

Status read_uint(const json& obj, std::string_view key, const std::string& path, uint64_t max,
                 uint64_t& out) {
  std::string field = join(path, key);
  auto it = obj.find(key);
  if (it == obj.end()) return {};
  if (it->is_number_unsigned()) {
    out = it->get<uint64_t>();
  } else if (it->is_number_integer()) {
    if (it->get<int64_t>() < 0) return invalid_argument(field, "must not be negative");
    out = static_cast<uint64_t>(it->get<int64_t>());
  } else {
    return wrong_type(field, "a non-negative integer", *it);
  }
  if (out > max) return invalid_argument(field, std::to_string(out) + " is too large");
  return {};
}

Status read_bool(const json& obj, std::string_view key, const std::string& path, bool& out) {
  auto it = obj.find(key);
  if (it == obj.end()) return {};
  if (!it->is_boolean()) return wrong_type(join(path, key), "a boolean", *it);
  out = it->get<bool>();
  return {};
}

Status read_slot(const json& j, const std::string& path, uint32_t& out) {
  uint64_t v = out;
  if (auto s = read_uint(j, "hotplug_slot", path, kMaxHotplugSlots, v); !s) return s;
  out = static_cast<uint32_t>(v);
  return {};
}

Status parse_kernel_boot(const json& j, KernelBoot& kb) {
  const std::string path = "kernel_boot";
  if (auto s = check_object(j, path, {"kernel", "initrd", "cmdline"}); !s) return s;
  if (auto s = read_string(j, "kernel", path, kb.kernel, true); !s) return s;
  if (auto s = read_string(j, "initrd", path, kb.initrd); !s) return s;
  return read_string(j, "cmdline", path, kb.cmdline);
}

Status parse_disk(const json& j, const std::string& path, DiskSpec& d) {
  if (auto s = check_object(j, path,
                            {"name", "base_image", "size_bytes", "boot", "readonly", "datastore",
                             "datastore_id", "hotplug_slot"});
      !s)
    return s;
  if (auto s = read_string(j, "name", path, d.name, true); !s) return s;
  if (auto s = read_string(j, "base_image", path, d.base_image); !s) return s;
  if (auto s = read_uint(j, "size_bytes", path, std::numeric_limits<uint64_t>::max(), d.size_bytes);
      !s)
    return s;
  if (auto s = read_bool(j, "boot", path, d.boot); !s) return s;
  if (auto s = read_string(j, "datastore", path, d.datastore); !s) return s;
  if (auto s = read_string(j, "datastore_id", path, d.datastore_id); !s) return s;
  if (auto s = read_slot(j, path, d.hotplug_slot); !s) return s;
  return read_bool(j, "readonly", path, d.readonly);
}

Status parse_nic(const json& j, const std::string& path, NicSpec& n) {
  if (auto s = check_object(j, path, {"mode", "bridge", "mac", "vlan", "hotplug_slot"}); !s)
    return s;
  if (auto s = read_slot(j, path, n.hotplug_slot); !s) return s;
  std::string mode = to_string(n.mode);
  if (auto s = read_string(j, "mode", path, mode); !s) return s;
  auto m = nic_mode_from_string(mode);
  if (!m) {
    std::string field = join(path, "mode");
    return invalid_argument(field,
                            "unknown mode \"" + printable(mode) + "\" (allowed: user, bridge)");
  }
  n.mode = *m;
  if (auto s = read_string(j, "bridge", path, n.bridge); !s) return s;
  // Read wider than a VLAN id so validation names the field with the allowed range.
  uint64_t vlan = n.vlan;
  if (auto s = read_uint(j, "vlan", path, std::numeric_limits<uint16_t>::max(), vlan); !s) return s;
  n.vlan = static_cast<uint16_t>(vlan);
  return read_string(j, "mac", path, n.mac);
}

Status read_string_array(const json& obj, std::string_view key, const std::string& path,
                         size_t max, std::vector<std::string>& out) {
  std::string field = join(path, key);
  auto it = obj.find(key);
  if (it == obj.end()) return {};
  if (!it->is_array()) return wrong_type(field, "an array", *it);
  if (it->size() > max)
    return invalid_argument(field, std::to_string(it->size()) + " entries, at most " +
                                       std::to_string(max) + " allowed");
  for (size_t i = 0; i < it->size(); ++i) {
    const json& e = (*it)[i];
    if (!e.is_string()) return wrong_type(field + "[" + std::to_string(i) + "]", "a string", e);
    out.push_back(e.get<std::string>());
  }
  return {};
}

Status parse_ci_user(const json& j, const std::string& path, CloudInitUser& u) {
  if (auto s = check_object(j, path, {"name", "ssh_authorized_keys", "password_hash", "sudo",
                                     "groups"});
      !s)
    return s;
  if (auto s = read_string(j, "name", path, u.name, true); !s) return s;
  if (auto s = read_string_array(j, "ssh_authorized_keys", path, kMaxSshKeysPerUser,
                                 u.ssh_authorized_keys);
      !s)
    return s;
  if (auto s = read_string(j, "password_hash", path, u.password_hash); !s) return s;
  if (auto s = read_bool(j, "sudo", path, u.sudo); !s) return s;
  return read_string_array(j, "groups", path, 32, u.groups);
}

Status parse_ci_nic(const json& j, const std::string& path, CloudInitNic& n) {
  if (auto s = check_object(j, path, {"nic", "dhcp4", "address", "gateway", "nameservers"}); !s)
    return s;
  uint64_t nic = 0;
  if (auto s = read_uint(j, "nic", path, kMaxNics, nic); !s) return s;
  n.nic = static_cast<uint32_t>(nic);
  if (auto s = read_bool(j, "dhcp4", path, n.dhcp4); !s) return s;
  if (auto s = read_string(j, "address", path, n.address); !s) return s;
  if (auto s = read_string(j, "gateway", path, n.gateway); !s) return s;
  return read_string_array(j, "nameservers", path, kMaxNameservers, n.nameservers);
}

// An optional array under `key` of `path` ("" at the top), each element parsed by
// parse_one(element, "path.key[i]", item).
template <typename T, typename Fn>
Status parse_items(const json& obj, std::string_view key, const std::string& path,
                   std::vector<T>& out, size_t max, Fn parse_one) {
  std::string field = join(path, key);
  auto it = obj.find(key);
  if (it == obj.end()) return {};
  if (!it->is_array()) return wrong_type(field, "an array", *it);
  // Bound the work before parsing elements; validate() gives the precise limit message.
  if (it->size() > max)
    return invalid_argument(field, std::to_string(it->size()) + " entries, at most " +
                                       std::to_string(max) + " allowed");
  for (size_t i = 0; i < it->size(); ++i) {
    T item;
    if (auto s = parse_one((*it)[i], field + "[" + std::to_string(i) + "]", item); !s) return s;
    out.push_back(std::move(item));
  }
  return {};
}

Status parse_cloud_init(const json& j, const std::string& path, CloudInit& ci) {
  if (auto s = check_object(j, path, {"hostname", "users", "network", "user_data"}); !s) return s;
  if (auto s = read_string(j, "hostname", path, ci.hostname); !s) return s;
  if (auto s = parse_items(j, "users", path, ci.users, kMaxCloudInitUsers, parse_ci_user); !s)
    return s;
  if (auto s = parse_items(j, "network", path, ci.network, kMaxNics, parse_ci_nic); !s) return s;
  return read_string(j, "user_data", path, ci.user_data);
}

// {"model": "i6300esb", "action": "reset"}: both optional (those are the defaults).
Status parse_watchdog(const json& j, Watchdog& w) {
  if (auto s = check_object(j, "watchdog", {"model", "action"}); !s) return s;
  std::string model = kWatchdogModel;
  if (auto s = read_string(j, "model", "watchdog", model); !s) return s;
  if (model != kWatchdogModel)
    return invalid_argument("watchdog.model", std::string("must be \"") + kWatchdogModel + "\"");
  std::string action = to_string(w.action);
  if (auto s = read_string(j, "action", "watchdog", action); !s) return s;
  auto a = watchdog_action_from_string(action);
  if (!a)
    return invalid_argument("watchdog.action",
                            "must be reset, shutdown, poweroff, pause, inject-nmi or none");
  w.action = *a;
  return {};
}

Result<VmSpec> parse(const json& j) {
  VmSpec spec;
  if (auto s = check_object(
          j, "",
          {"name", "uuid", "vcpus", "memory_mib", "machine", "kernel_boot", "disks", "nics", "vnc",
           "labels", "cloud_init", "cdrom", "boot", "firmware", "cpu_model", "watchdog"});
      !s)
    return tl::unexpected(s.error());
  if (auto s = read_string(j, "name", "", spec.name, true); !s) return tl::unexpected(s.error());
  if (auto s = read_string(j, "uuid", "", spec.uuid); !s) return tl::unexpected(s.error());
  uint64_t vcpus = spec.vcpus;
  if (auto s = read_uint(j, "vcpus", "", std::numeric_limits<uint32_t>::max(), vcpus); !s)
    return tl::unexpected(s.error());
  spec.vcpus = static_cast<uint32_t>(vcpus);
  if (auto s =
          read_uint(j, "memory_mib", "", std::numeric_limits<uint64_t>::max(), spec.memory_mib);
      !s)
    return tl::unexpected(s.error());
  if (auto s = read_string(j, "machine", "", spec.machine); !s) return tl::unexpected(s.error());
  if (auto s = read_string(j, "cpu_model", "", spec.cpu_model); !s) return tl::unexpected(s.error());
  if (auto it = j.find("kernel_boot"); it != j.end() && !it->is_null()) {
    KernelBoot kb;
    if (auto s = parse_kernel_boot(*it, kb); !s) return tl::unexpected(s.error());
    spec.kernel_boot = std::move(kb);
  }
  if (auto s = parse_items(j, "disks", "", spec.disks, kMaxDisks, parse_disk); !s)
    return tl::unexpected(s.error());
  if (auto s = parse_items(j, "nics", "", spec.nics, kMaxNics, parse_nic); !s)
    return tl::unexpected(s.error());
  if (auto s = read_bool(j, "vnc", "", spec.vnc); !s) return tl::unexpected(s.error());
  if (auto it = j.find("labels"); it != j.end()) {
    if (!it->is_object()) return wrong_type("labels", "an object", *it);
    if (it->size() > kMaxLabels)
      return invalid_argument("labels", "more than " + std::to_string(kMaxLabels));
    for (const auto& item : it->items()) {
      std::string field = "labels." + printable(item.key());
      if (!item.value().is_string()) return wrong_type(field, "a string", item.value());
      spec.labels[item.key()] = item.value().get<std::string>();
    }
  }
  if (auto it = j.find("cloud_init"); it != j.end() && !it->is_null()) {
    CloudInit ci;
    if (auto s = parse_cloud_init(*it, "cloud_init", ci); !s) return tl::unexpected(s.error());
    spec.cloud_init = std::move(ci);
  }
  if (auto it = j.find("cdrom"); it != j.end() && !it->is_null()) {
    if (!it->is_string()) return wrong_type("cdrom", "a string or null", *it);
    spec.cdrom = it->get<std::string>();
  }
  if (auto it = j.find("boot"); it != j.end()) {
    if (!it->is_array()) return wrong_type("boot", "an array", *it);
    if (it->size() > 2) return invalid_argument("boot", "at most 2 entries (cdrom, disk)");
    for (size_t i = 0; i < it->size(); ++i) {
      const json& b = (*it)[i];
      std::string field = "boot[" + std::to_string(i) + "]";
      if (!b.is_string()) return wrong_type(field, "a string", b);
      auto d = boot_device_from_string(b.get<std::string>());
      if (!d) return invalid_argument(field, "must be \"cdrom\" or \"disk\"");
      spec.boot.push_back(*d);
    }
  }
  if (auto it = j.find("firmware"); it != j.end()) {
    if (!it->is_string()) return wrong_type("firmware", "a string", *it);
    auto f = firmware_from_string(it->get<std::string>());
    if (!f) return invalid_argument("firmware", "must be \"bios\" or \"uefi\"");
    spec.firmware = *f;
  }
  if (auto it = j.find("watchdog"); it != j.end() && !it->is_null()) {
    Watchdog w;
    if (auto s = parse_watchdog(*it, w); !s) return tl::unexpected(s.error());
    spec.watchdog = w;
  }
  if (auto s = validate(spec); !s) return tl::unexpected(s.error());
  return spec;
}

}  // namespace

json to_json(const VmSpec& spec) {
  json j = {
      {"name", spec.name},       {"uuid", spec.uuid},
      {"vcpus", spec.vcpus},     {"memory_mib", spec.memory_mib},
      {"machine", spec.machine}, {"vnc", spec.vnc},
  };
  if (!spec.cpu_model.empty()) j["cpu_model"] = spec.cpu_model;
  if (spec.kernel_boot) {
    j["kernel_boot"] = {{"kernel", spec.kernel_boot->kernel},
                        {"initrd", spec.kernel_boot->initrd},
                        {"cmdline", spec.kernel_boot->cmdline}};
  }
  j["disks"] = json::array();
  for (const DiskSpec& d : spec.disks) {
    j["disks"].push_back({{"name", d.name},
                          {"base_image", d.base_image},
                          {"size_bytes", d.size_bytes},
                          {"boot", d.boot},
                          {"readonly", d.readonly}});
    if (!d.datastore.empty()) {
      j["disks"].back()["datastore"] = d.datastore;
      j["disks"].back()["datastore_id"] = d.datastore_id;
    }
    // Written only when set: the spec files of VMs without hot-plugged disks stay as they were.
    if (d.hotplug_slot != 0) j["disks"].back()["hotplug_slot"] = d.hotplug_slot;
  }
  j["nics"] = json::array();
  for (const NicSpec& n : spec.nics) {
    j["nics"].push_back({{"mode", to_string(n.mode)}, {"bridge", n.bridge}, {"mac", n.mac}});
    // Only when set, so the spec files of VMs without a VLAN stay as they were.
    if (n.vlan != 0) j["nics"].back()["vlan"] = n.vlan;
    if (n.hotplug_slot != 0) j["nics"].back()["hotplug_slot"] = n.hotplug_slot;
  }
  j["labels"] = json::object();
  for (const auto& [k, v] : spec.labels) j["labels"][k] = v;
  if (spec.cloud_init) j["cloud_init"] = to_json(*spec.cloud_init);
  // Written only when set, so the spec files of VMs without them stay as they were.
  if (!spec.cdrom.empty()) j["cdrom"] = spec.cdrom;
  if (!spec.boot.empty()) {
    j["boot"] = json::array();
    for (BootDevice b : spec.boot) j["boot"].push_back(to_string(b));
  }
  if (spec.firmware != Firmware::bios) j["firmware"] = to_string(spec.firmware);
  if (spec.watchdog) j["watchdog"] = to_json(*spec.watchdog);
  return j;
}

json to_json(const CloudInit& ci) {
  json j = json::object();
  if (!ci.hostname.empty()) j["hostname"] = ci.hostname;
  if (!ci.users.empty()) {
    j["users"] = json::array();
    for (const CloudInitUser& u : ci.users) {
      json ju = {{"name", u.name}, {"ssh_authorized_keys", u.ssh_authorized_keys}};
      if (!u.password_hash.empty()) ju["password_hash"] = u.password_hash;
      if (u.sudo) ju["sudo"] = true;
      if (!u.groups.empty()) ju["groups"] = u.groups;
      j["users"].push_back(std::move(ju));
    }
  }
  if (!ci.network.empty()) {
    j["network"] = json::array();
    for (const CloudInitNic& n : ci.network) {
      json jn = {{"nic", n.nic}};
      if (n.dhcp4) jn["dhcp4"] = true;
      if (!n.address.empty()) jn["address"] = n.address;
      if (!n.gateway.empty()) jn["gateway"] = n.gateway;
      if (!n.nameservers.empty()) jn["nameservers"] = n.nameservers;
      j["network"].push_back(std::move(jn));
    }
  }
  if (!ci.user_data.empty()) j["user_data"] = ci.user_data;
  return j;
}

json to_json(const Watchdog& w) {
  return {{"model", kWatchdogModel}, {"action", to_string(w.action)}};
}

Result<Watchdog> watchdog_from_json(const json& j) {
  try {
    Watchdog w;
    if (auto s = parse_watchdog(j, w); !s) return tl::unexpected(s.error());
    return w;
  } catch (const nlohmann::json::exception& e) {
    return invalid_argument("watchdog", std::string("malformed watchdog: ") + e.what());
  }
}

Result<CloudInit> cloud_init_from_json(const json& j, size_t nic_count) {
  try {
    CloudInit ci;
    if (auto s = parse_cloud_init(j, "cloud_init", ci); !s) return tl::unexpected(s.error());
    if (auto s = validate_cloud_init(ci, nic_count); !s) return tl::unexpected(s.error());
    return ci;
  } catch (const nlohmann::json::exception& e) {
    return invalid_argument("cloud_init", std::string("malformed cloud_init: ") + e.what());
  }
}

Result<CloudInit> cloud_init_from_json_text(std::string_view text, size_t nic_count) {
  if (text.size() > kMaxCloudInitJsonBytes)
    return invalid_argument("cloud_init", "longer than " +
                                              std::to_string(kMaxCloudInitJsonBytes) + " bytes");
  auto j = parse_json(text, JsonLimits{.max_depth = 8, .max_values = 100000});
  if (!j) {
    Error e = j.error();
    e.field = e.field.empty() ? "cloud_init" : "cloud_init." + e.field;
    return tl::unexpected(e);
  }
  return cloud_init_from_json(*j, nic_count);
}

Result<VmSpec> vm_spec_from_json(const json& j) {
  try {
    return parse(j);
  } catch (const nlohmann::json::exception& e) {
    return invalid_argument("spec", std::string("malformed VM spec: ") + e.what());
  } catch (const std::exception& e) {
    return internal_error(std::string("parsing VM spec: ") + e.what());
  }
}

}  // namespace strata::model
