// Waiting for a deadline on the injected clock, so code on background threads (controller
// backoff, agent heartbeats) runs in simulated time in tests:
//   clock_wait_until(clock, lock, cv, deadline, pred)
// is cv.wait_until(lock, deadline, pred) with `deadline` on `clock`. On the real clock it
// waits in real time; on a SimulatedClock it returns as soon as advance() reaches the
// deadline (or pred() holds), with no real waiting at all.
// (ManualClock in clock.h stays the single-threaded manual clock: it does not wake waiters.)
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>

#include "strata/common/clock.h"

namespace strata {

// Waits on `cv` (with `lock` held on entry and on return; whoever changes what pred reads
// does so under that lock and notifies `cv`) until pred() holds (returns true) or `clock`
// reached `deadline` (returns pred()).
bool clock_wait_until(Clock& clock, std::unique_lock<std::mutex>& lock,
                      std::condition_variable_any& cv, Clock::TimePoint deadline,
                      const std::function<bool()>& pred);
inline bool clock_wait_for(Clock& clock, std::unique_lock<std::mutex>& lock,
                           std::condition_variable_any& cv, Clock::Duration d,
                           const std::function<bool()>& pred) {
  return clock_wait_until(clock, lock, cv, clock.now() + d, pred);
}

// A thread-safe manual clock: time moves only by advance() (or sleep_for, which advances),
// and advance() wakes every thread waiting in clock_wait_until() on it.
class SimulatedClock final : public Clock {
 public:
  TimePoint now() const override { return TimePoint(Duration(now_ns_.load())); }
  std::chrono::system_clock::time_point wall() const override;
  void sleep_for(Duration d) override { advance(d); }
  void advance(Duration d);

  // Threads waiting in clock_wait_until() on this clock right now.
  size_t waiters() const;
  // Of those, the ones parked until a deadline still ahead: they do nothing until advance()
  // (or their predicate) wakes them. Tests advance once every thread they expect is parked,
  // so simulated time never runs ahead of threads that have not looked at it yet.
  size_t parked() const;

  bool wait_until(std::unique_lock<std::mutex>& lock, std::condition_variable_any& cv,
                  TimePoint deadline, const std::function<bool()>& pred);

 private:
  std::atomic<int64_t> now_ns_{0};
  // Guards waiters_ and orders advance() against a waiter's last look at now(): the waiter
  // holds it (with its own lock) from that look until cv.wait() released both at once.
  mutable std::mutex mu_;
  std::multimap<std::condition_variable_any*, TimePoint> waiters_;  // cv -> its deadline
};

}  // namespace strata
