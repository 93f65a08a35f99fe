// collect_inventory and the metric readers on this machine's real /proc and /sys:
// sanity only (the exact values depend on the host).
#include <gtest/gtest.h>

#include <unistd.h>

#include "strata/agent/inventory.h"
#include "strata/agent/metrics.h"

namespace strata::agent {
namespace {

TEST(RealHost, InventoryIsSane) {
  auto r = collect_inventory();
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_GE(r->cpu.threads, 1u);
  EXPECT_GE(r->cpu.sockets, 1u);
  EXPECT_GE(r->cpu.cores, r->cpu.sockets);
  EXPECT_LE(r->cpu.cores, r->cpu.threads);
  EXPECT_EQ(r->cpu.threads, static_cast<uint32_t>(::sysconf(_SC_NPROCESSORS_ONLN)));
  EXPECT_FALSE(r->cpu.flags.empty());
  EXPECT_GT(r->memory.total_bytes, 0u);
  EXPECT_LE(r->memory.available_bytes, r->memory.total_bytes);
  bool lo = false;
  for (const auto& n : r->interfaces)
    if (n.name == "lo") {
      lo = true;
      EXPECT_TRUE(n.is_virtual);
      EXPECT_EQ(n.mac, "00:00:00:00:00:00");
    }
  EXPECT_TRUE(lo);
  EXPECT_FALSE(r->os.kernel_release.empty());
  EXPECT_FALSE(r->os.hostname.empty());
}

TEST(RealHost, MetricsAreSane) {
  auto a = read_host_sample();
  ASSERT_TRUE(a) << a.error().to_string();
  EXPECT_GT(a->memory.total_bytes, 0u);
  EXPECT_GT(a->uptime_seconds, 0.0);
  auto self = read_process_metrics(::getpid());
  ASSERT_TRUE(self) << self.error().to_string();
  EXPECT_GT(self->rss_bytes, 0u);
  EXPECT_EQ(self->pid, ::getpid());
  auto lo = read_net_counters("lo");
  EXPECT_TRUE(lo) << lo.error().to_string();
}

}  // namespace
}  // namespace strata::agent
