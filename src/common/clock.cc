// The real Clock.
#include "strata/common/clock.h"

#include <thread>

namespace strata {
namespace {
class SystemClock final : public Clock {
 public:
  TimePoint now() const override {
    return TimePoint(std::chrono::duration_cast<Duration>(
        std::chrono::steady_clock::now().time_since_epoch()));
  }
  std::chrono::system_clock::time_point wall() const override {
    return std::chrono::system_clock::now();
  }
  void sleep_for(Duration d) override { std::this_thread::sleep_for(d); }
};
}  // namespace

ClockPtr system_clock() {
  static ClockPtr clock = std::make_shared<SystemClock>();
  return clock;
}

}  // namespace strata
