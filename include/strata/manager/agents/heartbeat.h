// The per-host liveness state machine, on an injected Clock so it is unit-tested with
// simulated time. A host is `up` after a successful heartbeat and `unreachable` after
// `miss_threshold` consecutive failures or when no heartbeat succeeded for
// interval * miss_threshold (a hung RPC counts as missed). A success brings it back up.
#pragma once

#include <chrono>
#include <cstdint>
#include <string_view>

#include "strata/common/clock.h"

namespace strata::manager {

struct HeartbeatConfig {
  std::chrono::milliseconds interval{2000};  // between heartbeats
  int miss_threshold = 3;                    // consecutive misses before unreachable
  std::chrono::milliseconds rpc_timeout{1500};
};

enum class Liveness : uint8_t { unknown, up, unreachable };
std::string_view to_string(Liveness l);

class HeartbeatTracker {
 public:
  HeartbeatTracker(HeartbeatConfig config, ClockPtr clock);

  // Record the outcome of one heartbeat attempt. Return true when the state changed.
  bool on_success();
  bool on_failure();
  // Re-evaluates time-based expiry: no success for interval * miss_threshold as of `as_of`
  // (now by default; the connection manager passes the moment its beat's answer was due,
  // so that its own delay in handling answers never counts as the host's silence). True
  // when the state changed.
  bool check();
  bool check(Clock::TimePoint as_of);

  Liveness state() const { return state_; }
  int consecutive_misses() const { return misses_; }
  // When the next heartbeat should be sent.
  Clock::TimePoint next_due() const { return next_due_; }
  bool due() const { return clock_->now() >= next_due_; }

 private:
  HeartbeatConfig config_;
  ClockPtr clock_;
  Liveness state_ = Liveness::unknown;
  int misses_ = 0;
  Clock::TimePoint last_ok_{};
  Clock::TimePoint started_{};
  Clock::TimePoint next_due_{};
};

}  // namespace strata::manager
