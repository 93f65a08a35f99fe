// The load balancer: every interval (stratad --balance-interval, default 60 s) it asks the
// placement engine for the moves that even out CPU and memory across the hosts that are
// up (PlacementService::plan_balance, sched/balance.h) and
//   advise (default)  records a balance.advice event when the advice changed (no repeat
//                     every minute), and nothing moves until someone applies it
//                     (strata balance apply, POST /api/v1/balance/apply);
//   auto              starts the moves as live migrations through the VM service, as a
//                     person's migrate would, with actor controller:balance;
//   off               does nothing by itself (plan and apply still answer).
// Hysteresis: a plan needs an imbalance above min_imbalance and moves that each gain
// min_gain (balance.h), and a VM the balancer moved is held where it went for
// hold_after_move (30 min), so nothing flaps. At most max_moves per cycle.
#pragma once

#include <chrono>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "strata/common/clock.h"
#include "strata/common/error.h"
#include "strata/common/periodic.h"
#include "strata/manager/controllers/placement.h"
#include "strata/manager/events/event_log.h"
#include "strata/manager/vms/vm_service.h"
#include "strata/sched/balance.h"

namespace strata::manager {

enum class BalanceMode { off, advise, automatic };
std::string_view to_string(BalanceMode m);  // "off", "advise", "auto"
std::optional<BalanceMode> balance_mode_from_string(std::string_view s);

struct BalancerConfig {
  BalanceMode mode = BalanceMode::advise;
  std::chrono::milliseconds interval{60000};
  std::chrono::milliseconds hold_after_move{30 * 60 * 1000};
  sched::BalanceConfig plan;
};

// What apply() started: the plan it carried out, the migration task of each move, and the
// moves the VM service refused (the VM changed meanwhile, say) with the reason.
struct BalanceApplied {
  BalanceProposal proposal;
  struct Started {
    std::string vm;
    std::string task_id;
  };
  struct Refused {
    std::string vm;
    std::string reason;
  };
  std::vector<Started> started;
  std::vector<Refused> refused;
};

class Balancer {
 public:
  Balancer(VmService& vms, EventLog& events, ClockPtr clock, BalancerConfig config = {});
  ~Balancer();
  Balancer(const Balancer&) = delete;
  Balancer& operator=(const Balancer&) = delete;

  const BalancerConfig& config() const { return config_; }

  // The moves now (reads only).
  Result<BalanceProposal> plan();
  // Plans and starts each move as a live migration (VmService::migrate to the planned
  // host) on behalf of `actor`; the VMs moved are held for hold_after_move.
  Result<BalanceApplied> apply(const std::string& actor);

  // One cycle (the thread's body; tests call it).
  void tick();
  void start();
  void stop();

 private:
  // VM ids the balancer moved within hold_after_move, with the reason. Locks mu_.
  std::map<std::string, std::string> held();

  VmService& vms_;
  EventLog& events_;
  ClockPtr clock_;
  BalancerConfig config_;
  // Guards moved_ and last_advice_; never held across a plan or a migration request.
  std::mutex mu_;
  std::map<std::string, Clock::TimePoint> moved_;  // VM id -> when the balancer moved it
  std::string last_advice_;                        // the moves last advised, as text
  // Declared last: stopped before the members its passes use are destroyed.
  PeriodicThread thread_;
};

}  // namespace strata::manager
