// SimulatedClock: a thread waiting for a deadline wakes when advance() reaches it (not
// before), or when its predicate comes true; the real clock waits in real time.
#include "strata/common/clock_wait.h"

#include <gtest/gtest.h>

#include <thread>

#include "common/test_util.h"

namespace strata {
namespace {

using namespace std::chrono_literals;

using test::eventually;

TEST(SimulatedClock, AdvanceWakesAWaiterAtItsDeadlineOnly) {
  SimulatedClock clock;
  std::mutex mu;
  std::condition_variable_any cv;
  std::atomic<int> result{-1};
  std::thread waiter([&] {
    std::unique_lock lock(mu);
    result = clock_wait_for(clock, lock, cv, 10s, [] { return false; }) ? 1 : 0;
  });
  ASSERT_TRUE(eventually([&] { return clock.waiters() == 1; }));
  clock.advance(9s);
  std::this_thread::sleep_for(20ms);
  EXPECT_EQ(result.load(), -1) << "woke before its deadline";
  EXPECT_EQ(clock.waiters(), 1u);
  clock.advance(1s);
  EXPECT_TRUE(eventually([&] { return result.load() != -1; }));
  waiter.join();
  EXPECT_EQ(result.load(), 0);  // the deadline, not the predicate
  EXPECT_EQ(clock.waiters(), 0u);
}

TEST(SimulatedClock, PredicateWakesWithoutTimeMoving) {
  SimulatedClock clock;
  std::mutex mu;
  std::condition_variable_any cv;
  bool go = false;
  std::atomic<int> result{-1};
  std::thread waiter([&] {
    std::unique_lock lock(mu);
    result = clock_wait_for(clock, lock, cv, 1h, [&] { return go; }) ? 1 : 0;
  });
  ASSERT_TRUE(eventually([&] { return clock.waiters() == 1; }));
  {
    std::lock_guard lock(mu);
    go = true;
  }
  cv.notify_all();
  waiter.join();
  EXPECT_EQ(result.load(), 1);
  EXPECT_EQ(clock.now().time_since_epoch(), Clock::Duration::zero());
}

// Many waiters with their own deadlines and a thread advancing in small steps: every one
// wakes (no lost wake-up between its last look at now() and its sleep).
TEST(SimulatedClock, ManyWaitersAllWakeWhileTimeAdvances) {
  SimulatedClock clock;
  std::mutex mu;
  std::condition_variable_any cv;
  std::atomic<int> woke{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 8; ++i)
    threads.emplace_back([&, i] {
      for (int round = 0; round < 50; ++round) {
        std::unique_lock lock(mu);
        clock_wait_for(clock, lock, cv, std::chrono::milliseconds(1 + i), [] { return false; });
      }
      ++woke;
    });
  std::atomic<bool> done{false};
  std::thread ticker([&] {
    while (!done) {
      clock.advance(1ms);
      std::this_thread::yield();
    }
  });
  for (auto& t : threads) t.join();
  done = true;
  ticker.join();
  EXPECT_EQ(woke.load(), 8);
}

TEST(SimulatedClock, SleepForAdvancesAndWallFollows) {
  SimulatedClock clock;
  clock.sleep_for(1500ms);
  EXPECT_EQ(clock.now().time_since_epoch(), 1500ms);
  EXPECT_EQ(std::chrono::duration_cast<std::chrono::milliseconds>(
                clock.wall().time_since_epoch()),
            1500ms);
}

TEST(ClockWait, RealClockWaitsRealTime) {
  auto clock = system_clock();
  std::mutex mu;
  std::condition_variable_any cv;
  std::unique_lock lock(mu);
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_FALSE(clock_wait_for(*clock, lock, cv, 20ms, [] { return false; }));
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 20ms);
}

}  // namespace
}  // namespace strata
