// MigrationSlots: per-host and overall limits on concurrent live migrations, the line of
// waiting migrations (arrival order, no overtaking on a shared host), resumed migrations.
#include "strata/manager/controllers/migration_slots.h"

#include <gtest/gtest.h>

namespace strata::manager {
namespace {

using H = MigrationSlots::Host;
const H h1{"id1", "h1"}, h2{"id2", "h2"}, h3{"id3", "h3"}, h4{"id4", "h4"}, h5{"id5", "h5"};

TEST(MigrationSlots, AHostRunsAtMostItsLimitInAndOutTogether) {
  MigrationSlots s({.per_host = 2, .total = 8});
  EXPECT_TRUE(s.admit("a", h1, h2, false).started);
  EXPECT_TRUE(s.admit("b", h3, h1, false).started);  // h1: one out, one in
  auto c = s.admit("c", h1, h4, false);
  EXPECT_FALSE(c.started);
  EXPECT_EQ(c.reason, "queued: host h1 runs 2 migrations (limit 2 per host)");
  EXPECT_TRUE(s.waiting("c"));
  // Hosts not involved are not held back; one that c waits for is (c goes first).
  EXPECT_TRUE(s.admit("d", h5, H{"id6", "h6"}, false).started);
  EXPECT_FALSE(s.admit("e", h4, h5, false).started);
  EXPECT_EQ(s.in_use("id1"), 2);
  EXPECT_EQ(s.in_use("id5"), 1);
  EXPECT_EQ(s.in_use("id4"), 0);
  // Asking again while running answers started; nothing is counted twice.
  EXPECT_TRUE(s.admit("a", h1, h2, false).started);
  EXPECT_EQ(s.in_use("id1"), 2);
}

TEST(MigrationSlots, AnEndedMigrationLetsTheFirstWaiterStartInArrivalOrder) {
  MigrationSlots s({.per_host = 1, .total = 8});
  ASSERT_TRUE(s.admit("a", h1, h2, false).started);
  EXPECT_FALSE(s.admit("b", h1, h3, false).started);
  auto c = s.admit("c", h1, h4, false);
  EXPECT_FALSE(c.started);
  // Asked again (a resync) before a slot is free: still waits, its place kept.
  EXPECT_FALSE(s.admit("c", h1, h4, false).started);
  EXPECT_EQ(s.release("a"), std::vector<std::string>{"b"});
  // c may not overtake b, even though b has not asked again yet.
  auto c2 = s.admit("c", h1, h4, false);
  EXPECT_FALSE(c2.started);
  EXPECT_EQ(c2.reason, "queued: 1 earlier migration on host h1 waits first");
  EXPECT_TRUE(s.admit("b", h1, h3, false).started);
  EXPECT_TRUE(s.release("c").empty());  // c given up while waiting: leaves the line
  EXPECT_FALSE(s.waiting("c"));
  EXPECT_TRUE(s.release("b").empty());
  EXPECT_EQ(s.total_running(), 0u);
}

TEST(MigrationSlots, TheOverallLimitHoldsAcrossHosts) {
  MigrationSlots s({.per_host = 2, .total = 2});
  EXPECT_TRUE(s.admit("a", h1, h2, false).started);
  EXPECT_TRUE(s.admit("b", h3, h4, false).started);
  auto c = s.admit("c", h5, H{"id6", "h6"}, false);
  EXPECT_FALSE(c.started);
  EXPECT_EQ(c.reason, "queued: 2 migrations run (limit 2 in all)");
  EXPECT_EQ(s.release("b"), std::vector<std::string>{"c"});
}

TEST(MigrationSlots, AResumedMigrationRunsWhateverTheLimits) {
  MigrationSlots s({.per_host = 1, .total = 1});
  EXPECT_TRUE(s.admit("a", h1, h2, false).started);
  // After a manager restart a migration that was already copying is followed again.
  EXPECT_TRUE(s.admit("b", h1, h3, true).started);
  EXPECT_EQ(s.in_use("id1"), 2);
  EXPECT_FALSE(s.admit("c", h4, h5, false).started);
  EXPECT_TRUE(s.release("a").empty());  // b still holds h1 and the one overall slot
  EXPECT_EQ(s.release("b"), std::vector<std::string>{"c"});
}

TEST(MigrationSlots, ReleaseOfAFreedHostStartsOnlyWaitersThatFit) {
  MigrationSlots s({.per_host = 1, .total = 8});
  ASSERT_TRUE(s.admit("a", h1, h2, false).started);
  ASSERT_TRUE(s.admit("b", h3, h4, false).started);
  EXPECT_FALSE(s.admit("c", h1, h3, false).started);  // needs h1 and h3
  EXPECT_FALSE(s.admit("d", h2, h5, false).started);  // needs h2
  // a ends: d fits (h2, h5 free); c still needs h3, which b holds.
  EXPECT_EQ(s.release("a"), std::vector<std::string>{"d"});
  EXPECT_TRUE(s.admit("d", h2, h5, false).started);
  EXPECT_EQ(s.release("b"), std::vector<std::string>{"c"});
}

}  // namespace
}  // namespace strata::manager
