// Host liveness with simulated time: misses, silence, recovery.
#include "strata/manager/agents/heartbeat.h"

#include <gtest/gtest.h>

namespace strata::manager {
namespace {

using std::chrono::milliseconds;

struct Fixture {
  std::shared_ptr<ManualClock> clock = std::make_shared<ManualClock>();
  HeartbeatConfig cfg{milliseconds(2000), 3, milliseconds(1500)};
};

TEST(Heartbeat, StartsUnknownAndGoesUpOnSuccess) {
  Fixture f;
  HeartbeatTracker t(f.cfg, f.clock);
  EXPECT_EQ(t.state(), Liveness::unknown);
  EXPECT_TRUE(t.due());
  EXPECT_TRUE(t.on_success());
  EXPECT_EQ(t.state(), Liveness::up);
  EXPECT_FALSE(t.due());
  f.clock->advance(milliseconds(2000));
  EXPECT_TRUE(t.due());
}

TEST(Heartbeat, UnreachableAfterThresholdConsecutiveMisses) {
  Fixture f;
  HeartbeatTracker t(f.cfg, f.clock);
  t.on_success();
  EXPECT_FALSE(t.on_failure());
  EXPECT_FALSE(t.on_failure());
  EXPECT_EQ(t.state(), Liveness::up);
  EXPECT_TRUE(t.on_failure());
  EXPECT_EQ(t.state(), Liveness::unreachable);
  EXPECT_EQ(t.consecutive_misses(), 3);
}

TEST(Heartbeat, SuccessResetsTheMissCount) {
  Fixture f;
  HeartbeatTracker t(f.cfg, f.clock);
  t.on_success();
  t.on_failure();
  t.on_failure();
  t.on_success();
  t.on_failure();
  t.on_failure();
  EXPECT_EQ(t.state(), Liveness::up);
}

TEST(Heartbeat, SilenceCountsAsMissed) {
  // A hung RPC never reports failure; time alone must make the host unreachable.
  Fixture f;
  HeartbeatTracker t(f.cfg, f.clock);
  t.on_success();
  f.clock->advance(milliseconds(5999));
  EXPECT_FALSE(t.check());
  f.clock->advance(milliseconds(1));
  EXPECT_TRUE(t.check());
  EXPECT_EQ(t.state(), Liveness::unreachable);
  EXPECT_FALSE(t.check());  // reported once
}

TEST(Heartbeat, SilenceIsJudgedAsOfWhenTheAnswerWasDueNotWhenItWasHandled) {
  // A manager behind on its answers (a restart's first round on a loaded machine) handles a
  // beat's failure long after it was due: the host was silent only until then.
  Fixture f;
  HeartbeatTracker t(f.cfg, f.clock);
  const auto created = f.clock->now();
  f.clock->advance(milliseconds(9000));  // the answer is handled 9 s after the start
  t.on_failure();
  EXPECT_FALSE(t.check(created + milliseconds(1500))) << "1.5 s of silence is not 3 misses";
  EXPECT_EQ(t.state(), Liveness::unknown);
  EXPECT_TRUE(t.check()) << "as of now, 9 s without an answer is";
  EXPECT_EQ(t.state(), Liveness::unreachable);
}

TEST(Heartbeat, RecoversAfterUnreachable) {
  Fixture f;
  HeartbeatTracker t(f.cfg, f.clock);
  for (int i = 0; i < 3; ++i) t.on_failure();
  EXPECT_EQ(t.state(), Liveness::unreachable);
  EXPECT_TRUE(t.on_success());
  EXPECT_EQ(t.state(), Liveness::up);
}

TEST(Heartbeat, NeverSeenHostBecomesUnreachableBySilence) {
  Fixture f;
  HeartbeatTracker t(f.cfg, f.clock);
  f.clock->advance(milliseconds(6000));
  EXPECT_TRUE(t.check());
  EXPECT_EQ(t.state(), Liveness::unreachable);
}

}  // namespace
}  // namespace strata::manager
