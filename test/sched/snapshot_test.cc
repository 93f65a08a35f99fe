// Snapshot: validation, ordering by id, lookup and lossless reconstruction.
#include "strata/sched/snapshot.h"

#include <gtest/gtest.h>

#include "test_hosts.h"

namespace strata::sched {
namespace {

using testing::host;

TEST(SchedSnapshot, RoundTripsHostsOrderedById) {
  HostInfo b = host("b", 32, 131072);
  b.name = "node-b";
  b.state = HostState::maintenance;
  b.arch = "aarch64";
  b.accelerator = Accelerator::tcg;
  b.allocated_vcpus = 7;
  b.allocated_memory_mib = 4096;
  b.labels = {{"zone", "z1"}, {"rack", "r4"}, {"ssd", "true"}};
  b.anti_affinity_groups = {"web", "db"};
  auto s = Snapshot::build({b, host("a")});
  ASSERT_TRUE(s) << s.error().to_string();
  ASSERT_EQ(s->size(), 2u);
  EXPECT_EQ(s->id(0), "a");
  EXPECT_EQ(s->name(0), "a");  // name defaults to id
  EXPECT_EQ(s->find("b"), 1u);
  EXPECT_FALSE(s->find("c"));
  HostInfo back = s->host(1);
  EXPECT_EQ(back.id, "b");
  EXPECT_EQ(back.name, "node-b");
  EXPECT_EQ(back.state, HostState::maintenance);
  EXPECT_EQ(back.arch, "aarch64");
  EXPECT_EQ(back.accelerator, Accelerator::tcg);
  EXPECT_EQ(back.total_vcpus, 32u);
  EXPECT_EQ(back.total_memory_mib, 131072u);
  EXPECT_EQ(back.allocated_vcpus, 7u);
  EXPECT_EQ(back.allocated_memory_mib, 4096u);
  EXPECT_EQ(back.labels, b.labels);
  EXPECT_EQ(back.anti_affinity_groups, (std::vector<std::string>{"db", "web"}));
  EXPECT_TRUE(s->host(0).anti_affinity_groups.empty());
}

TEST(SchedSnapshot, RejectsDuplicateAndEmptyIds) {
  auto dup = Snapshot::build({host("a"), host("b"), host("a")});
  ASSERT_FALSE(dup);
  EXPECT_EQ(dup.error().code, ErrorCode::invalid_argument);
  EXPECT_NE(dup.error().message.find("duplicate host id 'a'"), std::string::npos);
  auto empty = Snapshot::build({host("")});
  ASSERT_FALSE(empty);
  EXPECT_EQ(empty.error().field, "hosts.id");
}

TEST(SchedSnapshot, Names) {
  EXPECT_EQ(to_string(HostState::unreachable), "unreachable");
  EXPECT_EQ(to_string(Accelerator::tcg), "tcg");
  EXPECT_EQ(to_string(AcceleratorRequirement::any), "any");
  EXPECT_EQ(to_string(Filter::anti_affinity), "anti-affinity");
  EXPECT_EQ(to_string(WeightStrategy::pack), "pack");
}

}  // namespace
}  // namespace strata::sched
