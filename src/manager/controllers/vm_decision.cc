// Pure reconcile decisions (see vm_decision.h).
#include "strata/manager/controllers/vm_decision.h"

#include <fmt/format.h>

#include <algorithm>

#include "strata/wire/api_level.h"

namespace strata::manager {

Status check_host_hardware(const model::VmSpec& spec, const store::HostRecord& host) {
  const wire::HardwareNeed need = wire::required_hardware(spec);
  const int offered =
      wire::inventory_hardware_profile(host.inventory).value_or(wire::kHardwareProfileUnreported);
  if (offered >= need.profile) return {};
  return make_error(ErrorCode::failed_precondition,
                    fmt::format("host {}'s agent builds VM hardware up to profile {}; {} need{} "
                                "profile {}: upgrade that host's agent",
                                host.name, offered, need.what,
                                need.what.starts_with("the ") ? "s" : "", need.profile),
                    std::string(need.field));
}

std::string_view to_string(VmAction a) {
  switch (a) {
    case VmAction::none:
      return "none";
    case VmAction::start:
      return "start";
    case VmAction::pause:
      return "pause";
    case VmAction::resume:
      return "resume";
    case VmAction::reboot:
      return "reboot";
    case VmAction::shutdown:
      return "shutdown";
    case VmAction::force_off:
      return "force_off";
  }
  return "none";
}

bool is_active_state(const std::string& s) {
  return s == "running" || s == "paused" || s == "starting" || s == "shutting_down";
}

VmAction decide_vm_action(const std::string& desired_state, const VmDocument& doc,
                          const VmStatusDoc& status, const std::string& agent_state) {
  const int64_t gen = doc.control.generation;
  const bool already_applied = status.applied_generation >= gen;
  if (desired_state != "running") {
    if (!is_active_state(agent_state)) return VmAction::none;
    return doc.control.stop_force ? VmAction::force_off : VmAction::shutdown;
  }
  const bool stopped =
      agent_state == "defined" || agent_state == "stopped" || agent_state == "crashed";
  if (stopped && !(already_applied && agent_state != "defined")) return VmAction::start;
  if (!stopped && doc.control.paused && agent_state == "running") return VmAction::pause;
  if (!doc.control.paused && agent_state == "paused") return VmAction::resume;
  if (doc.control.reboot_generation == gen && !already_applied && agent_state == "running")
    return VmAction::reboot;
  return VmAction::none;
}

std::chrono::milliseconds retry_delay(int attempt, std::chrono::milliseconds base,
                                      std::chrono::milliseconds max) {
  int shift = std::clamp(attempt - 1, 0, 5);
  return std::min(base * (1 << shift), max);
}

Adoption decide_adoption(const std::optional<store::VmRecord>& record,
                         const std::string& agent_vm_name) {
  if (!record || record->name != agent_vm_name) return Adoption::ignore;
  return record->host_id ? Adoption::known : Adoption::adopt;
}

std::optional<std::string> guest_facts_change(const std::optional<model::GuestFacts>& before,
                                              const std::optional<model::GuestFacts>& after) {
  if (!after) {
    if (!before) return std::nullopt;
    return std::string("gone");
  }
  if (before) {
    model::GuestFacts a = *before, b = *after;
    a.updated_unix_ms = b.updated_unix_ms = 0;
    if (a == b) return std::nullopt;
  }
  std::string addresses;
  for (const auto& i : after->interfaces)
    for (const auto& a : i.addresses) addresses += (addresses.empty() ? "" : " ") + a;
  return fmt::format(
      "host name {}, OS {}, addresses {}", after->hostname.empty() ? "-" : after->hostname,
      after->os_name.empty() ? "-" : after->os_name, addresses.empty() ? "-" : addresses);
}

bool vm_converged(const store::VmRecord& vm, const VmDocument& doc, const VmStatusDoc& status,
                  const AgentVmView& agent) {
  if (vm.deletion_requested || doc.migration.active() || doc.clone_of.pending) return false;
  if (!agent.vm_id_label.empty() && agent.vm_id_label != vm.id) return false;
  if (status.state != agent.state || status.agent_state != agent.state) return false;
  if (!status.last_error.empty()) return false;
  if (status.applied_generation < doc.control.generation) return false;
  if (decide_vm_action(vm.desired_state, doc, status, agent.state) != VmAction::none) return false;
  if (guest_facts_change(status.guest, agent.guest)) return false;
  return status.cpu_model == agent.cpu_model;
}

}  // namespace strata::manager
