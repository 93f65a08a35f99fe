// String forms of the model's enums (VmState, NicMode, Firmware, BootDevice), as used in JSON and the API.
#include "strata/model/vm_spec.h"

#include <array>
#include <utility>

namespace strata::model {
namespace {

constexpr std::array<std::pair<VmState, const char*>, 7> kVmStates{{
    {VmState::defined, "defined"},
    {VmState::starting, "starting"},
    {VmState::running, "running"},
    {VmState::paused, "paused"},
    {VmState::shutting_down, "shutting_down"},
    {VmState::stopped, "stopped"},
    {VmState::crashed, "crashed"},
}};

}  // namespace

const char* to_string(VmState s) {
  for (const auto& [state, name] : kVmStates)
    if (state == s) return name;
  return "unknown";
}

std::optional<VmState> vm_state_from_string(const std::string& s) {
  for (const auto& [state, name] : kVmStates)
    if (s == name) return state;
  return std::nullopt;
}

const char* to_string(NicMode m) {
  switch (m) {
    case NicMode::user:
      return "user";
    case NicMode::bridge:
      return "bridge";
  }
  return "unknown";
}

std::optional<NicMode> nic_mode_from_string(const std::string& s) {
  if (s == "user") return NicMode::user;
  if (s == "bridge") return NicMode::bridge;
  return std::nullopt;
}

const char* to_string(Firmware f) { return f == Firmware::uefi ? "uefi" : "bios"; }

std::optional<Firmware> firmware_from_string(const std::string& s) {
  if (s == "bios") return Firmware::bios;
  if (s == "uefi") return Firmware::uefi;
  return std::nullopt;
}

const char* to_string(WatchdogAction a) {
  switch (a) {
    case WatchdogAction::reset:
      return "reset";
    case WatchdogAction::shutdown:
      return "shutdown";
    case WatchdogAction::poweroff:
      return "poweroff";
    case WatchdogAction::pause:
      return "pause";
    case WatchdogAction::inject_nmi:
      return "inject-nmi";
    case WatchdogAction::none:
      return "none";
  }
  return "reset";
}

std::optional<WatchdogAction> watchdog_action_from_string(const std::string& s) {
  for (auto a : {WatchdogAction::reset, WatchdogAction::shutdown, WatchdogAction::poweroff,
                 WatchdogAction::pause, WatchdogAction::inject_nmi, WatchdogAction::none})
    if (s == to_string(a)) return a;
  return std::nullopt;
}

const char* to_string(BootDevice b) { return b == BootDevice::cdrom ? "cdrom" : "disk"; }

std::optional<BootDevice> boot_device_from_string(const std::string& s) {
  if (s == "cdrom") return BootDevice::cdrom;
  if (s == "disk") return BootDevice::disk;
  return std::nullopt;
}

}  // namespace strata::model
