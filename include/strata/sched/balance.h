// Load balancing: live migrations that even out the CPU and memory the VMs hold across the
// hosts that are up. Pure like the rest of the scheduler: the fleet in, a plan out; the
// manager's balancer (src/manager/vms/balancer.cc) runs it every minute and, in `auto`
// mode, carries the moves out. Every move passes the scheduler's filters (capacity with
// overcommit, anti-affinity, node selector, datastores, accelerator), so a plan never
// proposes what a migration would refuse.
//
// Imbalance: for each host that is up, its CPU load (vCPUs placed / hardware threads) and
// memory load (MiB placed / MiB); the imbalance is the mean of the two loads' standard
// deviations across those hosts (0: perfectly even). What VMs hold, not what they use: the
// allocations are what the scheduler and HA admission count, they do not flap with a
// guest's momentary load, and they are known for every host.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "strata/common/error.h"
#include "strata/sched/request.h"
#include "strata/sched/scheduler.h"
#include "strata/sched/snapshot.h"

namespace strata::sched {

struct BalanceVm {
  std::string name;
  std::string host_id;       // where it runs (its allocation is in that host's HostInfo)
  PlacementRequest request;  // what a target must offer (no pinned_host: it is the move's)
  bool movable = true;       // false: counted where it is, never moved
  uint64_t disk_bytes = 0;   // disk data a move copies (local disks); 0 on shared storage
  // Keep-together group (empty: none). The group's VMs on one host move as one unit: to
  // one target that holds them all and passes each one's filters, in one move (as a
  // migration of any of them does). One of them not movable holds the others there too.
  std::string together;
};

struct BalanceConfig {
  // Hysteresis: below this imbalance the fleet counts as balanced and nothing moves, and a
  // move must lower the imbalance by at least min_gain, so moves stop well before the
  // fleet oscillates around even.
  double min_imbalance = 0.10;
  double min_gain = 0.02;
  uint32_t max_moves = 4;  // per plan (one balancer cycle)
};

// invalid_argument naming the field: min_imbalance 0..1, min_gain (0..1], max_moves 1..100.
Status validate_config(const BalanceConfig& config);

struct BalanceMove {
  std::string vm;
  std::string from_host_id;
  std::string to_host_id;
  double imbalance_before = 0;  // of the fleet, just before and after this move
  double imbalance_after = 0;
  uint64_t memory_mib = 0;  // what the move copies: the VMs' memory...
  uint64_t disk_bytes = 0;  // ...and their local disks
  // The other VMs of `vm`'s keep-together group that move with it (by name, sorted): one
  // migration of `vm` moves them all. Empty for a VM of no group.
  std::vector<std::string> together_with;
};

struct BalancePlan {
  double imbalance = 0;        // now
  double imbalance_after = 0;  // once every move is done
  std::vector<BalanceMove> moves;
  // Why the plan ends where it does: "balanced" (below min_imbalance), "no_gain" (no
  // allowed move gains min_gain), "max_moves" (the cap), "no_hosts" (fewer than two up).
  std::string stopped;
};

// The imbalance of `hosts` (those up with capacity; others do not count).
double imbalance(const std::vector<HostInfo>& hosts);

// Greedy: repeatedly the allowed move with the largest gain (ties: less memory to copy,
// then VM name, then target id), applied before choosing the next, until one of the
// `stopped` reasons. A move is one VM, or one keep-together group's VMs on a host (named
// by its first VM by name). A VM moves at most once per plan. Errors: invalid_argument
// for a bad config or a VM on a host that is not in `hosts`.
Result<BalancePlan> plan_balance(const Scheduler& scheduler, std::vector<HostInfo> hosts,
                                 const std::vector<BalanceVm>& vms, const BalanceConfig& config);

}  // namespace strata::sched
