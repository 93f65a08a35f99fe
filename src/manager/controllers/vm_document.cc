// VM document codec (see vm_document.h).
#include "strata/manager/controllers/vm_document.h"

#include <utility>

#include <fmt/format.h>

#include "strata/model/vm_spec_json.h"

namespace strata::manager {

using nlohmann::json;

std::string encode(const VmDocument& d) {
  json j = {{"vm", model::to_json(d.spec)},
            {"placement",
             {{"host", d.placement.host},
              {"node_selector", d.placement.node_selector},
              {"anti_affinity_group", d.placement.anti_affinity_group}}},
            {"control",
             {{"generation", d.control.generation},
              {"paused", d.control.paused},
              {"stop_force", d.control.stop_force},
              {"stop_timeout_s", d.control.stop_timeout_s},
              {"reboot_generation", d.control.reboot_generation},
              {"task_id", d.control.task_id}}}};
  // Written only when set: documents stay as they were for VMs without them.
  if (!d.placement.affinity_group.empty())
    j["placement"]["affinity_group"] = d.placement.affinity_group;
  if (!d.placement.avoid_selector.empty())
    j["placement"]["avoid_selector"] = d.placement.avoid_selector;
  if (d.is_template) j["template"] = true;
  if (d.clone_of.is_clone())
    j["clone_of"] = {{"source_id", d.clone_of.source_id},
                     {"source_name", d.clone_of.source_name},
                     {"linked", d.clone_of.linked},
                     {"pending", d.clone_of.pending}};
  if (d.ha.enabled) j["ha"] = {{"enabled", true}, {"priority", d.ha.priority}};
  if (d.migration.active() || d.migration.seq > 0)
    j["migration"] = {{"target_host_id", d.migration.target_host_id},
                      {"task_id", d.migration.task_id},
                      {"seq", d.migration.seq},
                      {"max_bandwidth", d.migration.max_bandwidth},
                      {"downtime_max_ms", d.migration.downtime_max_ms},
                      {"tls", d.migration.tls},
                      {"auto_converge", d.migration.auto_converge},
                      {"postcopy", d.migration.postcopy},
                      {"cancelled_by", d.migration.cancelled_by},
                      {"cold", d.migration.cold}};
  return j.dump();
}

namespace {

// value() for an integer member, without its undefined behaviour: value() converts a float
// (1e300 in a damaged row) to the integer type with a cast that is undefined out of range.
// A member that is not an integer within T's range throws json::type_error, as value()
// does for other wrong types, so the decoders' catch turns it into "not valid".
template <typename T>
T integer_member(const json& obj, const char* key, T def) {
  auto it = obj.find(key);
  if (it == obj.end()) return def;
  if (it->is_number_unsigned()) {
    if (std::in_range<T>(it->get<uint64_t>())) return static_cast<T>(it->get<uint64_t>());
  } else if (it->is_number_integer()) {
    if (std::in_range<T>(it->get<int64_t>())) return static_cast<T>(it->get<int64_t>());
  }
  throw json::type_error::create(302, std::string(key) + " must be an integer in range", &*it);
}

}  // namespace

Result<VmDocument> decode_vm_document(const std::string& text) try {
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("vm"))
    return internal_error("stored VM document is not valid");
  auto spec = model::vm_spec_from_json(j["vm"]);
  if (!spec) return tl::unexpected(spec.error().wrap("stored VM spec"));
  VmDocument d;
  d.spec = std::move(*spec);
  const json& p = j.value("placement", json::object());
  const json& c = j.value("control", json::object());
  if (!p.is_object() || !c.is_object()) return internal_error("stored VM document is not valid");
  d.placement.host = p.value("host", "");
  if (p.contains("node_selector") && p["node_selector"].is_object())
    for (auto& [k, v] : p["node_selector"].items())
      if (v.is_string()) d.placement.node_selector[k] = v.get<std::string>();
  d.placement.anti_affinity_group = p.value("anti_affinity_group", "");
  d.placement.affinity_group = p.value("affinity_group", "");
  if (p.contains("avoid_selector") && p["avoid_selector"].is_object())
    for (auto& [k, v] : p["avoid_selector"].items())
      if (v.is_string()) d.placement.avoid_selector[k] = v.get<std::string>();
  d.control.generation = integer_member(c, "generation", int64_t{1});
  d.control.paused = c.value("paused", false);
  d.control.stop_force = c.value("stop_force", false);
  d.control.stop_timeout_s = integer_member(c, "stop_timeout_s", 0u);
  d.control.reboot_generation = integer_member(c, "reboot_generation", int64_t{0});
  d.control.task_id = c.value("task_id", "");
  d.is_template = j.value("template", false);
  if (j.contains("clone_of") && j["clone_of"].is_object()) {
    const json& o = j["clone_of"];
    d.clone_of.source_id = o.value("source_id", "");
    d.clone_of.source_name = o.value("source_name", "");
    d.clone_of.linked = o.value("linked", false);
    d.clone_of.pending = o.value("pending", false);
  }
  if (j.contains("ha") && j["ha"].is_object()) {
    d.ha.enabled = j["ha"].value("enabled", false);
    d.ha.priority = integer_member(j["ha"], "priority", 0);
  }
  if (j.contains("migration") && j["migration"].is_object()) {
    const json& m = j["migration"];
    d.migration.target_host_id = m.value("target_host_id", "");
    d.migration.task_id = m.value("task_id", "");
    d.migration.seq = integer_member(m, "seq", int64_t{0});
    d.migration.max_bandwidth = integer_member(m, "max_bandwidth", uint64_t{0});
    d.migration.downtime_max_ms = integer_member(m, "downtime_max_ms", int64_t{0});
    d.migration.tls = m.value("tls", false);
    d.migration.auto_converge = m.value("auto_converge", false);
    d.migration.postcopy = m.value("postcopy", false);
    d.migration.cancelled_by = m.value("cancelled_by", "");
    d.migration.cold = m.contains("cold") && m["cold"].is_boolean() && m["cold"].get<bool>();
  }
  return d;
} catch (const json::exception& e) {
  // A field of the wrong type (a damaged row): value() throws; the caller gets an error.
  return internal_error(std::string("stored VM document is not valid: ") + e.what());
}

Status validate_ha(const VmDocument& doc) {
  if (!doc.ha.enabled) return {};
  if (doc.ha.priority < 0 || doc.ha.priority > 1000)
    return invalid_argument("ha.priority", "ha.priority must be 0..1000");
  if (!doc.placement.host.empty())
    return invalid_argument("ha", "an HA VM restarts on another host when its host fails, so "
                                  "it cannot be pinned to host " + doc.placement.host +
                                  " (use node_selector to choose a group of hosts)");
  for (const auto& d : doc.spec.disks)
    if (!d.readonly && d.datastore.empty())
      return invalid_argument(
          "ha", fmt::format("an HA VM restarts on another host when its host fails, and disk {} "
                            "is a writable local disk that would be lost with the host: put it "
                            "on a datastore (shared storage every host mounts: \"datastore\": "
                            "\"NAME\"), or make it readonly",
                            d.name));
  return {};
}

std::string encode(const VmStatusDoc& s) {
  json j{{"state", s.state},
         {"agent_state", s.agent_state},
         {"last_error", s.last_error},
         {"observed_ms", s.observed_ms},
         {"applied_generation", s.applied_generation}};
  if (!s.migration.phase.empty()) {
    const auto& m = s.migration;
    j["migration"] = {{"phase", m.phase},
                      {"migration_uri", m.migration_uri},
                      {"nbd_host", m.nbd_host},
                      {"nbd_port", m.nbd_port},
                      {"stop_at_us", m.stop_at_us},
                      {"qemu_downtime_ms", m.qemu_downtime_ms},
                      {"total_ms", m.total_ms},
                      {"ram_transferred", m.ram_transferred},
                      {"ram_copied_paused", m.ram_copied_paused},
                      {"postcopy", m.postcopy}};
    if (m.recover_attempts) j["migration"]["recover_attempts"] = m.recover_attempts;
  }
  if (s.guest) j["guest"] = model::to_json(*s.guest);
  if (!s.cpu_model.empty()) j["cpu_model"] = s.cpu_model;
  return j.dump();
}

VmStatusDoc decode_vm_status(const std::string& text) {
  VmStatusDoc s;
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return s;
  try {
    s.state = j.value("state", "pending");
    s.agent_state = j.value("agent_state", "");
    s.last_error = j.value("last_error", "");
    s.cpu_model = j.value("cpu_model", "");
    s.observed_ms = integer_member(j, "observed_ms", int64_t{0});
    s.applied_generation = integer_member(j, "applied_generation", int64_t{0});
    if (j.contains("migration") && j["migration"].is_object()) {
      const json& m = j["migration"];
      s.migration.phase = m.value("phase", "");
      s.migration.migration_uri = m.value("migration_uri", "");
      s.migration.nbd_host = m.value("nbd_host", "");
      s.migration.nbd_port = m.value("nbd_port", "");
      s.migration.stop_at_us = integer_member(m, "stop_at_us", int64_t{0});
      s.migration.qemu_downtime_ms = integer_member(m, "qemu_downtime_ms", int64_t{0});
      s.migration.total_ms = integer_member(m, "total_ms", int64_t{0});
      s.migration.ram_transferred = integer_member(m, "ram_transferred", uint64_t{0});
      s.migration.ram_copied_paused = m.value("ram_copied_paused", false);
      s.migration.postcopy = m.value("postcopy", false);
      s.migration.recover_attempts = integer_member(m, "recover_attempts", int64_t{0});
    }
    // Damaged guest facts are dropped alone: the rest of the status stays.
    if (j.contains("guest"))
      if (auto g = model::guest_facts_from_json(j["guest"])) s.guest = std::move(*g);
  } catch (const json::exception&) {
    return VmStatusDoc{};  // a damaged status reads as the default (pending) one
  }
  return s;
}

std::string desired_state_name(const store::VmRecord& vm, const VmDocument& doc) {
  if (vm.desired_state == "running" && doc.control.paused) return "paused";
  return vm.desired_state;
}

}  // namespace strata::manager
