// The agent API's level and the neighbouring-versions policy (strata/wire/api_level.h).
#include "strata/wire/api_level.h"

#include <fmt/format.h>

#include <nlohmann/json.hpp>

namespace strata::wire {

uint32_t required_api_level(AgentFeature feature) {
  switch (feature) {
    case AgentFeature::postcopy_migration:
      return 2;
  }
  return kApiLevel;
}

std::string_view to_string(AgentFeature feature) {
  switch (feature) {
    case AgentFeature::postcopy_migration:
      return "post-copy migration";
  }
  return "unknown feature";
}

Status check_agent_api_level(uint32_t agent_level, std::string_view field, uint32_t manager_level) {
  if (api_level_in_window(agent_level, manager_level)) return {};
  const uint32_t a = effective_api_level(agent_level);
  const uint32_t oldest = manager_level > 1 ? manager_level - 1 : 1;
  return make_error(
      ErrorCode::failed_precondition,
      fmt::format("the agent speaks API level {}; this manager (level {}) works with agents "
                  "of levels {} to {}: {}",
                  a, manager_level, oldest, manager_level + 1,
                  a < manager_level ? "upgrade the agent" : "upgrade the manager first"),
      std::string(field));
}

std::optional<uint32_t> inventory_api_level(std::string_view inventory_json) {
  auto j = nlohmann::json::parse(inventory_json, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return std::nullopt;
  auto agent = j.find("agent");
  if (agent == j.end() || !agent->is_object()) return kOldestApiLevel;
  auto level = agent->find("api_level");
  if (level == agent->end()) return kOldestApiLevel;
  if (!level->is_number_unsigned()) return std::nullopt;
  const uint64_t v = level->get<uint64_t>();
  if (v == 0 || v > UINT32_MAX) return std::nullopt;
  return static_cast<uint32_t>(v);
}

HardwareNeed required_hardware(const model::VmSpec& spec) {
  for (const auto& d : spec.disks)
    if (d.hotplug_slot != 0) return {4, "disks and NICs on hot-plug slots", "hotplug_slot"};
  for (const auto& n : spec.nics)
    if (n.hotplug_slot != 0) return {4, "disks and NICs on hot-plug slots", "hotplug_slot"};
  if (spec.watchdog) return {3, "the watchdog", "watchdog"};
  return {};
}

std::optional<int> inventory_hardware_profile(std::string_view inventory_json) {
  auto j = nlohmann::json::parse(inventory_json, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return std::nullopt;
  auto agent = j.find("agent");
  if (agent == j.end() || !agent->is_object()) return kHardwareProfileUnreported;
  auto v = agent->find("hardware_profile");
  if (v == agent->end()) return kHardwareProfileUnreported;
  if (!v->is_number_unsigned()) return std::nullopt;
  const uint64_t n = v->get<uint64_t>();
  if (n == 0 || n > 1000) return std::nullopt;
  return static_cast<int>(n);
}

}  // namespace strata::wire
