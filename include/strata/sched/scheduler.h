// Placement decisions: a snapshot and a request in, a plan (host + score) out. Filters
// (explanation.h) remove hosts that cannot take the VM; a weight strategy ranks the rest.
// Pure: no I/O, never mutates the snapshot. A no-fit is ErrorCode::resource_exhausted
// whose message summarizes the filters (the manager returns it as HTTP 422).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "strata/common/error.h"
#include "strata/sched/explanation.h"
#include "strata/sched/request.h"
#include "strata/sched/snapshot.h"

namespace strata::sched {

enum class WeightStrategy : uint8_t {
  // Prefer the host with the most free resources after placement (mean of the free vCPU
  // and free memory fractions; Kubernetes' LeastAllocated). Default.
  spread,
  // Best fit without stranding: prefer the placement that adds the least stranded
  // capacity (free vCPU and free memory fractions drifting apart: what one dimension has
  // left but the other cannot match), then the fullest host. Consolidates onto few
  // hosts, keeps empty hosts for large VMs, fills both dimensions
  // (docs/internals/scheduler.md has the measurements).
  pack,
};

std::string_view to_string(WeightStrategy s);
std::optional<WeightStrategy> weight_strategy_from_string(std::string_view s);

struct SchedulerConfig {
  double cpu_overcommit = 4.0;  // vCPUs placeable per hardware thread; > 0
  double mem_overcommit = 1.0;  // MiB placeable per MiB of host memory; > 0
  WeightStrategy strategy = WeightStrategy::spread;
};

Status validate_config(const SchedulerConfig& config);

struct Plan {
  uint32_t host_index = 0;  // index into the snapshot the plan was made from
  std::string host_id;
  double score = 0;  // 0..100 under the configured strategy, higher is better
};

class Scheduler {
 public:
  // invalid_argument when the config is out of range.
  static Result<Scheduler> create(SchedulerConfig config);

  const SchedulerConfig& config() const { return config_; }

  // The best host for the request. Errors: invalid_argument (bad request),
  // resource_exhausted (no host passes every filter; the message has the per-filter
  // summary and the first few per-host reasons).
  Result<Plan> place(const Snapshot& snapshot, const PlacementRequest& request) const;

  // The full story for one request: every rejected host with its reason, and the ranked
  // survivors. Costs string formatting per host; call it when someone asks.
  Result<Explanation> explain(const Snapshot& snapshot, const PlacementRequest& request) const;

 private:
  explicit Scheduler(SchedulerConfig config) : config_(config) {}
  SchedulerConfig config_;
};

}  // namespace strata::sched
