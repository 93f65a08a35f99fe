// Deadline waits on the injected clock and the SimulatedClock (see clock_wait.h).
#include "strata/common/clock_wait.h"

namespace strata {

namespace {

// The caller's mutex and the clock's as one lockable, so one cv.wait() releases both
// atomically: advance() (which takes the clock's) cannot slip between a waiter's last
// look at now() and its sleep, and its notify cannot be lost.
class BothLocks {
 public:
  BothLocks(std::unique_lock<std::mutex>& outer, std::mutex& clock) : outer_(outer), clock_(clock) {}
  void lock() {
    outer_.lock();
    clock_.lock();
  }
  void unlock() {
    clock_.unlock();
    outer_.unlock();
  }

 private:
  std::unique_lock<std::mutex>& outer_;
  std::mutex& clock_;
};

}  // namespace

bool clock_wait_until(Clock& clock, std::unique_lock<std::mutex>& lock,
                      std::condition_variable_any& cv, Clock::TimePoint deadline,
                      const std::function<bool()>& pred) {
  if (auto* sim = dynamic_cast<SimulatedClock*>(&clock))
    return sim->wait_until(lock, cv, deadline, pred);
  // Any other clock runs in real time: wait the remaining time of that clock.
  auto remaining = deadline - clock.now();
  if (remaining < Clock::Duration::zero()) remaining = Clock::Duration::zero();
  return cv.wait_for(lock, remaining, pred);
}

std::chrono::system_clock::time_point SimulatedClock::wall() const {
  return std::chrono::system_clock::time_point(
      std::chrono::duration_cast<std::chrono::system_clock::duration>(now().time_since_epoch()));
}

void SimulatedClock::advance(Duration d) {
  std::lock_guard lock(mu_);
  now_ns_ += d.count();
  for (auto& [cv, deadline] : waiters_) cv->notify_all();
}

size_t SimulatedClock::waiters() const {
  std::lock_guard lock(mu_);
  return waiters_.size();
}

size_t SimulatedClock::parked() const {
  std::lock_guard lock(mu_);
  const auto t = now();
  size_t n = 0;
  for (const auto& [cv, deadline] : waiters_) n += deadline > t ? 1 : 0;
  return n;
}

bool SimulatedClock::wait_until(std::unique_lock<std::mutex>& lock,
                                std::condition_variable_any& cv, TimePoint deadline,
                                const std::function<bool()>& pred) {
  // Lock order: the caller's mutex, then mu_ (advance() takes only mu_).
  mu_.lock();
  auto it = waiters_.emplace(&cv, deadline);
  BothLocks both(lock, mu_);
  bool ok = pred();
  while (!ok && now() < deadline) {
    cv.wait(both);
    ok = pred();
  }
  waiters_.erase(it);
  mu_.unlock();
  return ok;
}

}  // namespace strata
