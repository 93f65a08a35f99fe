// Request validation and names.
#include "strata/sched/request.h"

namespace strata::sched {

std::string_view to_string(AcceleratorRequirement a) {
  switch (a) {
    case AcceleratorRequirement::any:
      return "any";
    case AcceleratorRequirement::kvm:
      return "kvm";
    case AcceleratorRequirement::tcg:
      return "tcg";
  }
  return "unknown";
}

Status validate_request(const PlacementRequest& request) {
  if (request.vcpus == 0) return invalid_argument("vcpus", "vcpus must be at least 1");
  if (request.memory_mib == 0) {
    return invalid_argument("memory_mib", "memory_mib must be at least 1");
  }
  for (const auto& [key, value] : request.node_selector) {
    if (key.empty()) return invalid_argument("node_selector", "label keys must not be empty");
  }
  for (const auto& [key, value] : request.avoid_selector) {
    if (key.empty()) return invalid_argument("avoid_selector", "label keys must not be empty");
  }
  if (!request.affinity_group.empty() && request.affinity_group == request.anti_affinity_group)
    return invalid_argument("affinity_group",
                            "a group cannot keep its VMs together and apart: affinity_group "
                            "and anti_affinity_group are the same");
  return {};
}

}  // namespace strata::sched
