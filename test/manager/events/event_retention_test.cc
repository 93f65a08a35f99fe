// Event retention on simulated time: a prune runs when due on the injected clock and
// deletes by age and by count; nothing runs between intervals.
#include "strata/manager/events/event_retention.h"

#include <gtest/gtest.h>

#include <thread>

#include "strata/common/clock_wait.h"

namespace strata::manager {
namespace {

using namespace std::chrono_literals;

class EventRetentionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    clock_->advance(std::chrono::hours(24 * 365 * 50));  // a wall time well after 1970
    auto s = store::open_store("sqlite::memory:", store::StoreOptions{clock_, 1});
    ASSERT_TRUE(s) << s.error().to_string();
    store_ = std::move(*s);
  }
  void append(int n) {
    for (int i = 0; i < n; ++i) {
      store::EventRecord e;
      e.actor = "test";
      e.action = "vm.update";
      ASSERT_TRUE(store_->append_event(e));
    }
  }
  size_t count() { return store_->list_events(0, 0)->size(); }

  std::shared_ptr<ManualClock> clock_ = std::make_shared<ManualClock>();
  store::StorePtr store_;
};

TEST_F(EventRetentionTest, OldEventsArePrunedWhenDueOnTheClock) {
  EventRetentionConfig cfg;
  cfg.max_age = std::chrono::hours(24 * 30);
  cfg.max_rows = 0;
  cfg.interval = 5min;
  cfg.batch = 7;  // several batches per prune
  EventRetention retention(*store_, clock_, cfg);

  append(20);                               // day 0
  clock_->advance(std::chrono::hours(24 * 20));
  append(5);                                // day 20
  EXPECT_EQ(*retention.tick(), 0) << "nothing is 30 days old yet";
  clock_->advance(std::chrono::hours(24 * 11));  // day 31: the first 20 are too old
  EXPECT_EQ(*retention.tick(), 20);
  EXPECT_EQ(count(), 5u);

  clock_->advance(std::chrono::hours(24 * 20));  // day 51: the last 5 are too old too
  EXPECT_EQ(*retention.tick(), 5);
  EXPECT_EQ(*retention.tick(), 0) << "not due again before the interval";
  EXPECT_EQ(count(), 0u);
}

TEST_F(EventRetentionTest, CountLimitKeepsTheNewestAndWaitsForTheInterval) {
  EventRetentionConfig cfg;
  cfg.max_age = 0ms;
  cfg.max_rows = 10;
  cfg.interval = 5min;
  cfg.batch = 4;
  EventRetention retention(*store_, clock_, cfg);
  append(25);
  EXPECT_EQ(*retention.tick(), 15);
  EXPECT_EQ(count(), 10u);
  EXPECT_EQ(store_->list_events(0, 0)->front().seq, 16);
  append(5);
  clock_->advance(4min);
  EXPECT_EQ(*retention.tick(), 0) << "not due: 4 of 5 minutes";
  EXPECT_EQ(count(), 15u);
  clock_->advance(1min);
  EXPECT_EQ(*retention.tick(), 5);
  EXPECT_EQ(count(), 10u);
}

TEST_F(EventRetentionTest, NoLimitsPruneNothing) {
  EventRetentionConfig cfg;
  cfg.max_age = 0ms;
  cfg.max_rows = 0;
  EventRetention retention(*store_, clock_, cfg);
  append(3);
  clock_->advance(std::chrono::hours(24 * 3650));
  EXPECT_EQ(*retention.tick(), 0);
  EXPECT_EQ(count(), 3u);
}

TEST(RetentionAge, ParsesUnitsAndRejectsGarbage) {
  EXPECT_EQ(*parse_retention_age("30d"), std::chrono::hours(24 * 30));
  EXPECT_EQ(*parse_retention_age("12h"), std::chrono::hours(12));
  EXPECT_EQ(*parse_retention_age("90m"), std::chrono::minutes(90));
  EXPECT_EQ(*parse_retention_age("45s"), std::chrono::seconds(45));
  EXPECT_EQ(*parse_retention_age("0"), 0ms);
  for (const char* bad : {"", "d", "30", "-1d", "3x", "1.5d", "0d"})
    EXPECT_FALSE(parse_retention_age(bad)) << bad;
}

// The retention thread waits for the next prune on the injected clock: advancing a
// SimulatedClock by one interval runs it at once (it used to wait the interval in real
// time, 5 minutes by default).
TEST(EventRetentionThreadTest, TheNextPruneRunsWhenTheClockReachesIt) {
  auto clock = std::make_shared<SimulatedClock>();
  clock->advance(std::chrono::hours(24 * 365 * 50));
  auto s = store::open_store("sqlite::memory:", store::StoreOptions{clock, 1});
  ASSERT_TRUE(s) << s.error().to_string();
  auto& store = **s;
  auto append = [&](int n) {
    for (int i = 0; i < n; ++i) {
      store::EventRecord e;
      e.actor = "test";
      e.action = "vm.update";
      ASSERT_TRUE(store.append_event(e));
    }
  };
  auto count_is = [&](size_t n) {
    for (int i = 0; i < 500; ++i) {  // up to 5 s of real time
      if (store.list_events(0, 0)->size() == n) return true;
      std::this_thread::sleep_for(10ms);
    }
    return false;
  };
  append(30);
  EventRetentionConfig cfg;
  cfg.max_age = 0ms;
  cfg.max_rows = 10;
  cfg.interval = 5min;
  EventRetention retention(store, clock, cfg);
  retention.start();
  EXPECT_TRUE(count_is(10));  // the first prune runs at start
  append(20);
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ(store.list_events(0, 0)->size(), 30u);  // not due yet
  clock->advance(5min);
  EXPECT_TRUE(count_is(10));
  retention.stop();
}

}  // namespace
}  // namespace strata::manager
