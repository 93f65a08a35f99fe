// PeriodicThread on a SimulatedClock: a pass at start, one per interval of clock time (none
// while time stands still), one at once after kick(), none after stop().
#include "strata/common/periodic.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "common/test_util.h"
#include "strata/common/clock_wait.h"

namespace strata {
namespace {

using test::eventually;

TEST(PeriodicThread, RunsAtStartEveryIntervalAndOnKickUntilStopped) {
  auto clock = std::make_shared<SimulatedClock>();
  std::atomic<int> passes{0};
  PeriodicThread t(clock, std::chrono::seconds(10), [&] { ++passes; });
  t.start();
  ASSERT_TRUE(eventually([&] { return passes == 1 && clock->parked() == 1; }));
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(passes, 1) << "time stands still: no second pass";
  clock->advance(std::chrono::seconds(9));
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(passes, 1);
  clock->advance(std::chrono::seconds(1));
  ASSERT_TRUE(eventually([&] { return passes == 2 && clock->parked() == 1; }));
  t.kick();
  ASSERT_TRUE(eventually([&] { return passes == 3 && clock->parked() == 1; }));
  t.stop();
  clock->advance(std::chrono::seconds(60));
  t.kick();
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(passes, 3);
  t.stop();  // idempotent
}

}  // namespace
}  // namespace strata
