// Host networks and the bridges a VM's NICs join (see networks.h).
#include "strata/manager/controllers/networks.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "strata/sched/snapshot.h"

namespace strata::manager {

std::vector<std::string> host_networks(const std::string& inventory_json) {
  std::vector<std::string> out;
  auto j = nlohmann::json::parse(inventory_json, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return out;
  auto it = j.find("interfaces");
  if (it == j.end() || !it->is_array()) return out;
  for (const auto& n : *it) {
    if (!n.is_object()) continue;
    auto name = n.find("name");
    auto bridge = n.find("bridge");
    if (name == n.end() || !name->is_string() || name->get_ref<const std::string&>().empty() ||
        bridge == n.end() || !bridge->is_boolean() || !bridge->get<bool>())
      continue;
    out.push_back(sched::network_token(name->get<std::string>(), false));
    auto vlan = n.find("vlan_filtering_supported");
    if (vlan != n.end() && vlan->is_boolean() && vlan->get<bool>())
      out.push_back(sched::network_token(name->get<std::string>(), true));
  }
  return out;
}

std::vector<std::string> nic_networks(const std::vector<model::NicSpec>& nics) {
  std::vector<std::string> out;
  for (const auto& n : nics) {
    if (n.mode != model::NicMode::bridge || n.bridge.empty()) continue;
    std::string token = sched::network_token(n.bridge, n.vlan != 0);
    if (std::find(out.begin(), out.end(), token) == out.end()) out.push_back(std::move(token));
  }
  return out;
}

}  // namespace strata::manager
