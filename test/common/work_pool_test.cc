// WorkPool: jobs run on the workers, a full queue refuses instead of blocking, the
// destructor runs what was queued.
#include "strata/common/work_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <future>

namespace strata {

TEST(WorkPool, RunsJobsOffTheCallingThread) {
  WorkPool pool(2, 8);
  std::promise<std::thread::id> where;
  ASSERT_TRUE(pool.submit([&] { where.set_value(std::this_thread::get_id()); }));
  EXPECT_NE(where.get_future().get(), std::this_thread::get_id());
}

TEST(WorkPool, AFullQueueRefusesAndTheDestructorDrains) {
  std::atomic<int> ran{0};
  std::promise<void> release;
  std::shared_future<void> gate = release.get_future().share();
  {
    WorkPool pool(1, 2);
    std::promise<void> started;
    ASSERT_TRUE(pool.submit([&] {
      started.set_value();
      gate.wait();
      ++ran;
    }));
    started.get_future().wait();  // the one worker is busy now
    EXPECT_TRUE(pool.submit([&] { ++ran; }));
    EXPECT_TRUE(pool.submit([&] { ++ran; }));
    EXPECT_FALSE(pool.submit([&] { ++ran; }));  // two already wait
    release.set_value();
  }
  EXPECT_EQ(ran.load(), 3);
}

}  // namespace strata
