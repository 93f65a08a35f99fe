// Injected time: logic takes a Clock so timeouts and retries are testable with simulated
// time instead of sleeps.
#pragma once

#include <chrono>
#include <memory>

namespace strata {

class Clock {
 public:
  using Duration = std::chrono::nanoseconds;
  using TimePoint = std::chrono::time_point<std::chrono::steady_clock, Duration>;
  virtual ~Clock() = default;
  virtual TimePoint now() const = 0;                           // monotonic
  virtual std::chrono::system_clock::time_point wall() const = 0;  // for records/logs
  virtual void sleep_for(Duration d) = 0;
};
using ClockPtr = std::shared_ptr<Clock>;

// The real clock.
ClockPtr system_clock();

// A clock that only moves when told to; sleep_for advances it.
class ManualClock final : public Clock {
 public:
  TimePoint now() const override { return now_; }
  std::chrono::system_clock::time_point wall() const override {
    return std::chrono::system_clock::time_point(
        std::chrono::duration_cast<std::chrono::system_clock::duration>(now_.time_since_epoch()));
  }
  void sleep_for(Duration d) override { now_ += d; }
  void advance(Duration d) { now_ += d; }

 private:
  TimePoint now_{};
};

}  // namespace strata
