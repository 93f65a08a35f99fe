// A background pass on the injected clock: `body` runs at start() and then every `interval`
// of clock time (a SimulatedClock's advance() runs the next one in tests), or at once after
// kick(), on one thread of its own, until stop(). The one home of the loop the manager's
// background workers (event retention, maintenance evacuation, HA) share.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>

#include "strata/common/clock.h"

namespace strata {

class PeriodicThread {
 public:
  PeriodicThread(ClockPtr clock, Clock::Duration interval, std::function<void()> body);
  ~PeriodicThread() { stop(); }
  PeriodicThread(const PeriodicThread&) = delete;
  PeriodicThread& operator=(const PeriodicThread&) = delete;

  void start();
  // The next pass now (after the one running, if any), not at the next interval.
  void kick();
  // Idempotent; waits for the pass in progress. No pass starts after it returns.
  void stop();

 private:
  ClockPtr clock_;
  Clock::Duration interval_;
  std::function<void()> body_;
  // Guards stopping_ and kick_; the thread waits on cv_ through clock_wait_for (clock time)
  // and runs body_ with mu_ released.
  std::mutex mu_;
  std::condition_variable_any cv_;
  bool stopping_ = false;
  bool kick_ = false;
  std::thread thread_;
};

}  // namespace strata
