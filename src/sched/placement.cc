// Applying plans to a snapshot copy, for batches placed one decision after another.
#include "strata/sched/placement.h"

#include <algorithm>

#include "snapshot_access.h"

namespace strata::sched {

using detail::SnapshotAccess;

Status apply_placement(Snapshot& snapshot, const Plan& plan, const PlacementRequest& request) {
  if (plan.host_index >= snapshot.size() || snapshot.id(plan.host_index) != plan.host_id) {
    return invalid_argument("plan.host_id",
                            "plan for host " + plan.host_id + " does not match this snapshot");
  }
  HostRecord& h = SnapshotAccess::records(snapshot)[plan.host_index];
  h.allocated_vcpus += request.vcpus;
  h.allocated_memory_mib += request.memory_mib;
  if (!request.anti_affinity_group.empty()) {
    uint32_t group = SnapshotAccess::intern(snapshot, request.anti_affinity_group);
    std::vector<uint32_t>& members = SnapshotAccess::group_hosts(snapshot, group);
    auto it = std::lower_bound(members.begin(), members.end(), plan.host_index);
    if (it == members.end() || *it != plan.host_index) members.insert(it, plan.host_index);
  }
  if (!request.affinity_group.empty()) {
    uint32_t group = SnapshotAccess::intern(snapshot, request.affinity_group);
    std::vector<uint32_t>& members = SnapshotAccess::together_hosts(snapshot, group);
    auto it = std::lower_bound(members.begin(), members.end(), plan.host_index);
    if (it == members.end() || *it != plan.host_index) members.insert(it, plan.host_index);
  }
  return {};
}

std::vector<Result<Plan>> place_batch(const Scheduler& scheduler, Snapshot& snapshot,
                                      const std::vector<PlacementRequest>& requests) {
  std::vector<Result<Plan>> plans;
  plans.reserve(requests.size());
  for (const PlacementRequest& request : requests) {
    Result<Plan> plan = scheduler.place(snapshot, request);
    if (plan) {
      // Cannot fail: the plan was made from this very snapshot.
      (void)apply_placement(snapshot, *plan, request);
    }
    plans.push_back(std::move(plan));
  }
  return plans;
}

}  // namespace strata::sched
