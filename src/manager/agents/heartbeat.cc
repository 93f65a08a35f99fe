// Liveness state machine (see heartbeat.h).
#include "strata/manager/agents/heartbeat.h"

namespace strata::manager {

std::string_view to_string(Liveness l) {
  switch (l) {
    case Liveness::unknown: return "unknown";
    case Liveness::up: return "up";
    case Liveness::unreachable: return "unreachable";
  }
  return "unknown";
}

HeartbeatTracker::HeartbeatTracker(HeartbeatConfig config, ClockPtr clock)
    : config_(config), clock_(std::move(clock)) {
  started_ = clock_->now();
  last_ok_ = started_;
  next_due_ = started_;
}

bool HeartbeatTracker::on_success() {
  Liveness before = state_;
  misses_ = 0;
  last_ok_ = clock_->now();
  next_due_ = last_ok_ + config_.interval;
  state_ = Liveness::up;
  return before != state_;
}

bool HeartbeatTracker::on_failure() {
  Liveness before = state_;
  ++misses_;
  next_due_ = clock_->now() + config_.interval;
  if (misses_ >= config_.miss_threshold) state_ = Liveness::unreachable;
  return before != state_;
}

bool HeartbeatTracker::check() { return check(clock_->now()); }

bool HeartbeatTracker::check(Clock::TimePoint as_of) {
  if (state_ == Liveness::unreachable) return false;
  auto silent_for = as_of - last_ok_;
  if (silent_for >= config_.interval * config_.miss_threshold) {
    state_ = Liveness::unreachable;
    return true;
  }
  return false;
}

}  // namespace strata::manager
