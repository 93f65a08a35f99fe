// Reads the CPU side of a host's inventory (see cpu_models.h).
#include "strata/manager/controllers/cpu_models.h"

#include <nlohmann/json.hpp>

#include "strata/common/sha256.h"

namespace strata::manager {

namespace {

using nlohmann::json;

std::vector<std::string> strings(const json& j, size_t max) {
  std::vector<std::string> out;
  if (!j.is_array()) return out;
  for (const auto& s : j)
    if (s.is_string() && out.size() < max) out.push_back(s.get<std::string>());
  return out;
}

std::string str(const json& j, const char* a, const char* b = nullptr) {
  const json* p = &j;
  for (const char* k : {a, b}) {
    if (!k) break;
    if (!p->is_object() || !p->contains(k)) return "";
    p = &(*p)[k];
  }
  return p->is_string() ? p->get<std::string>() : "";
}

}  // namespace

sched::HostCpu host_cpu(const std::string& host_name, const std::string& inventory_json) {
  sched::HostCpu h;
  h.host = host_name;
  json inv = json::parse(inventory_json, nullptr, /*allow_exceptions=*/false);
  if (inv.is_discarded() || !inv.is_object()) return h;
  // The agent's inventory has {"accelerator": {"accelerator": "tcg", ...}}; the copy sent
  // at enrollment flattens it to "accelerator": "tcg".
  h.accelerator = inv.contains("accelerator") && inv["accelerator"].is_string()
                      ? inv["accelerator"].get<std::string>()
                      : str(inv, "accelerator", "accelerator");
  // The signature: what makes "host"/"max" the same CPU on two hosts.
  Sha256 sig;
  for (const std::string& part :
       {str(inv, "cpu", "vendor"), str(inv, "cpu", "model_name"), h.accelerator,
        str(inv, "qemu", "version")})
    sig.update(part + "\n");
  if (inv.contains("cpu") && inv["cpu"].is_object() && inv["cpu"].contains("flags"))
    for (const auto& f : strings(inv["cpu"]["flags"], 4096)) sig.update(f + " ");
  h.signature = sig.hex_final();

  const json* cm = inv.contains("cpu_models") ? &inv["cpu_models"] : nullptr;
  if (!cm || !cm->is_object() || !cm->contains("models") || !(*cm)["models"].is_array()) return h;
  h.probed = true;
  for (const auto& m : (*cm)["models"]) {
    if (!m.is_object() || !m.contains("name") || !m["name"].is_string()) continue;
    std::string name = m["name"].get<std::string>();
    if (name.empty() || name.size() > 64) continue;
    if (m.value("deprecated", false) == true) h.deprecated.push_back(name);
    if (m.contains("usable") && m["usable"].is_boolean() && m["usable"].get<bool>()) {
      const json& n = m.contains("feature_count") ? m["feature_count"] : json();
      h.usable[name] = n.is_number_unsigned() && n.get<uint64_t>() < 4096 ? n.get<size_t>() : 0;
    } else {
      h.lacking[name] = m.contains("unavailable") ? strings(m["unavailable"], 64)
                                                  : std::vector<std::string>{};
      const json& n = m.contains("unavailable_count") ? m["unavailable_count"] : json();
      if (n.is_number_unsigned() && n.get<uint64_t>() < 4096) h.lacking_count[name] = n.get<size_t>();
    }
  }
  return h;
}

std::string cpu_signature_token(const std::string& signature) {
  return "cpu-sig:" + signature.substr(0, 16);
}

}  // namespace strata::manager
