// PeriodicThread (see periodic.h).
#include "strata/common/periodic.h"

#include "strata/common/clock_wait.h"

namespace strata {

PeriodicThread::PeriodicThread(ClockPtr clock, Clock::Duration interval,
                               std::function<void()> body)
    : clock_(std::move(clock)), interval_(interval), body_(std::move(body)) {}

void PeriodicThread::start() {
  thread_ = std::thread([this] {
    std::unique_lock lock(mu_);
    while (!stopping_) {
      kick_ = false;
      lock.unlock();
      body_();
      lock.lock();
      clock_wait_for(*clock_, lock, cv_, interval_, [this] { return stopping_ || kick_; });
    }
  });
}

void PeriodicThread::kick() {
  {
    std::lock_guard lock(mu_);
    kick_ = true;
  }
  cv_.notify_all();
}

void PeriodicThread::stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

}  // namespace strata
