// Versioned VM hardware profile (see hardware_profile.h).
#include "hardware_profile.h"

#include <sstream>

namespace strata::agent::qemu {

using nlohmann::json;

std::map<std::string, std::string> parse_machine_help(std::string_view text) {
  // Lines: "pc-q35-7.2           Standard PC (Q35 + ICH9, 2009)" and
  //        "q35                  Standard PC (Q35 + ICH9, 2009) (alias of pc-q35-7.2)".
  std::map<std::string, std::string> out;
  std::istringstream in{std::string(text)};
  std::string line;
  const std::string alias_of = "(alias of ";
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == ' ' || line.rfind("Supported machines", 0) == 0) continue;
    std::string name = line.substr(0, line.find(' '));
    if (name.empty()) continue;
    if (auto p = line.rfind(alias_of); p != std::string::npos) {
      auto end = line.find(')', p);
      if (end == std::string::npos) continue;
      std::string target = line.substr(p + alias_of.size(), end - p - alias_of.size());
      out[name] = target;
      out.emplace(target, target);
    } else {
      out.emplace(name, name);
    }
  }
  return out;
}

Result<HardwareProfile> new_hardware_profile(const std::string& machine,
                                             const std::string& accelerator,
                                             const std::map<std::string, std::string>& machines) {
  auto it = machines.find(machine);
  if (it == machines.end())
    return make_error(ErrorCode::failed_precondition,
                      "QEMU on this host has no machine type " + machine);
  HardwareProfile p;
  p.version = kHardwareProfileVersion;
  p.machine = it->second;
  p.cpu_model = accelerator == "kvm" ? "host" : "max";
  // The root ports and the AHCI bus of the CD-ROM exist on q35 only; i440fx ("pc") VMs
  // record that they have neither.
  const bool q35 = p.machine.rfind("pc-q35-", 0) == 0;
  p.spare_root_ports = q35 ? 4 : 0;
  p.usb_tablet = true;
  p.cdrom = q35;
  return p;
}

void settle_version(HardwareProfile& p) {
  // v4 adds nothing to the profile itself (its hot-plug slots are in the spec), so a new
  // VM records v3 or lower.
  if (p.version >= 4) p.version = 3;
  if (p.version >= 3 && p.watchdog.empty()) p.version = 2;
}

json to_json(const HardwareProfile& p) {
  json j = {{"version", p.version},       {"machine", p.machine},
            {"cpu_model", p.cpu_model},   {"spare_root_ports", p.spare_root_ports},
            {"usb_tablet", p.usb_tablet}, {"cdrom", p.cdrom}};
  if (p.version >= 2) j["firmware"] = p.firmware;
  if (p.version >= 3) j["watchdog"] = p.watchdog;
  return j;
}

Result<HardwareProfile> hardware_profile_from_json(const json& j) {
  auto bad = [](const std::string& why) {
    return internal_error("hardware profile in state.json: " + why);
  };
  if (!j.is_object()) return bad("not an object");
  HardwareProfile p;
  auto num = [&](const char* k, int& out) {
    auto it = j.find(k);
    if (it == j.end() || !it->is_number_integer()) return false;
    out = it->get<int>();
    return true;
  };
  auto str = [&](const char* k, std::string& out) {
    auto it = j.find(k);
    if (it == j.end() || !it->is_string()) return false;
    out = it->get<std::string>();
    return true;
  };
  auto flag = [&](const char* k, bool& out) {
    auto it = j.find(k);
    if (it == j.end() || !it->is_boolean()) return false;
    out = it->get<bool>();
    return true;
  };
  if (!num("version", p.version)) return bad("version");
  if (p.version < 1 || p.version > kHardwareProfileVersion)
    return bad("unknown version " + std::to_string(p.version));
  if (!str("machine", p.machine)) return bad("machine");
  if (!str("cpu_model", p.cpu_model)) return bad("cpu_model");
  if (!num("spare_root_ports", p.spare_root_ports) || p.spare_root_ports < 0 ||
      p.spare_root_ports > 16)
    return bad("spare_root_ports");
  if (!flag("usb_tablet", p.usb_tablet)) return bad("usb_tablet");
  if (!flag("cdrom", p.cdrom)) return bad("cdrom");
  if (p.version >= 2) {
    if (!str("firmware", p.firmware) || (p.firmware != "bios" && p.firmware != "uefi"))
      return bad("firmware");
    if (p.firmware == "uefi" && p.machine.rfind("pc-q35-", 0) != 0)
      return bad("firmware: uefi needs a q35 machine");
  }
  if (p.version >= 3)
    if (!str("watchdog", p.watchdog) || (!p.watchdog.empty() && p.watchdog != "i6300esb"))
      return bad("watchdog");
  return p;
}

}  // namespace strata::agent::qemu
