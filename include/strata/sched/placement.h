// Applying decisions to a snapshot, so a batch of VMs can be placed one after another on
// a private copy without rereading the store. The scheduler itself never calls these.
#pragma once

#include <vector>

#include "strata/common/error.h"
#include "strata/sched/request.h"
#include "strata/sched/scheduler.h"
#include "strata/sched/snapshot.h"

namespace strata::sched {

// Adds the request's vCPUs, memory and anti-affinity group to the planned host.
// invalid_argument when the plan's host index/id does not match this snapshot.
Status apply_placement(Snapshot& snapshot, const Plan& plan, const PlacementRequest& request);

// Places the requests in order on `snapshot`, applying each success before the next
// decision. One result per request; a failure does not stop the batch.
std::vector<Result<Plan>> place_batch(const Scheduler& scheduler, Snapshot& snapshot,
                                      const std::vector<PlacementRequest>& requests);

}  // namespace strata::sched
