// Tests for the metrics parsers (pure) and the readers over the fixture tree.
#include "strata/agent/metrics.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace strata::agent {
namespace {

const std::string kIntel = std::string(STRATA_INVENTORY_FIXTURES) + "/intel-2s";

TEST(ProcStat, ParsesAggregateLine) {
  auto r = parse_proc_stat("cpu  10 2 3 100 5 1 1 0 4 0\ncpu0 1 1 1 1 1 1 1 1 1 1\n");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->user, 10u);
  EXPECT_EQ(r->idle, 100u);
  EXPECT_EQ(r->guest, 4u);
  EXPECT_EQ(r->total(), 122u);  // guest not double-counted
  EXPECT_EQ(r->idle_total(), 105u);
}

TEST(ProcStat, OldKernelWithFourColumns) {
  auto r = parse_proc_stat("cpu 1 2 3 4\n");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->total(), 10u);
}

TEST(ProcStat, RejectsMalformed) {
  EXPECT_FALSE(parse_proc_stat(""));
  EXPECT_FALSE(parse_proc_stat("cpu0 1 2 3 4\n"));  // no aggregate line
  EXPECT_FALSE(parse_proc_stat("cpu 1 2 3\n"));
  EXPECT_FALSE(parse_proc_stat("cpu 1 2 x 4\n"));
}

TEST(CpuPercent, FromTwoSamples) {
  CpuTimes a{100, 0, 50, 800, 50, 0, 0, 0, 0, 0};
  CpuTimes b{160, 0, 90, 880, 70, 0, 0, 0, 0, 0};  // busy +100, idle +100
  auto p = cpu_percent(a, b);
  ASSERT_TRUE(p);
  EXPECT_DOUBLE_EQ(*p, 50.0);
  CpuTimes c = a;
  c.idle += 100;
  EXPECT_DOUBLE_EQ(*cpu_percent(a, c), 0.0);
  CpuTimes d = a;
  d.user += 40;
  EXPECT_DOUBLE_EQ(*cpu_percent(a, d), 100.0);
}

TEST(CpuPercent, IowaitGoingBackwardsIsClamped) {
  CpuTimes a{100, 0, 0, 100, 50, 0, 0, 0, 0, 0};
  CpuTimes b{150, 0, 0, 150, 40, 0, 0, 0, 0, 0};  // iowait -10
  auto p = cpu_percent(a, b);
  ASSERT_TRUE(p);
  EXPECT_DOUBLE_EQ(*p, 50.0);
}

TEST(CpuPercent, RejectsSamplesOutOfOrder) {
  CpuTimes a{100, 0, 0, 100, 0, 0, 0, 0, 0, 0};
  EXPECT_FALSE(cpu_percent(a, a));
  CpuTimes b{50, 0, 0, 50, 0, 0, 0, 0, 0, 0};
  EXPECT_FALSE(cpu_percent(a, b));
}

TEST(LoadAvg, Parses) {
  auto r = parse_loadavg("0.52 1.58 10.59 2/389 12345\n");
  ASSERT_TRUE(r);
  EXPECT_DOUBLE_EQ(r->one, 0.52);
  EXPECT_DOUBLE_EQ(r->fifteen, 10.59);
  EXPECT_EQ(r->running, 2u);
  EXPECT_EQ(r->total_tasks, 389u);
  EXPECT_FALSE(parse_loadavg(""));
  EXPECT_FALSE(parse_loadavg("0.1 0.2 0.3\n"));
  EXPECT_FALSE(parse_loadavg("0.1 0.2 abc 1/2 3\n"));
  EXPECT_FALSE(parse_loadavg("0.1 0.2 0.3 12 3\n"));
}

TEST(Uptime, Parses) {
  EXPECT_DOUBLE_EQ(*parse_uptime("350735.47 2803872.21\n"), 350735.47);
  EXPECT_FALSE(parse_uptime(""));
  EXPECT_FALSE(parse_uptime("soon 1\n"));
}

TEST(MemoryUsage, UsedIsTotalMinusAvailable) {
  auto r = parse_memory_usage("MemTotal: 1000 kB\nMemFree: 100 kB\nMemAvailable: 600 kB\n");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->used_bytes, 400u * 1024);
  EXPECT_FALSE(parse_memory_usage("MemTotal: 1000 kB\n"));
  EXPECT_FALSE(parse_memory_usage("MemAvailable: 1000 kB\n"));
}

TEST(PidStat, CommWithSpacesAndParentheses) {
  // comm is "vm) R (web 1": a parser that stops at the first ')' reads the wrong state.
  auto r = parse_pid_stat(
      "4242 (vm) R (web 1) S 1 4242 4242 0 -1 4194560 1837 0 0 0 52331 10377 0 0 20 0 5 0 "
      "1833471 4517060608 266001 18446744073709551615 1 1 0 0 0 0 268444224 4096 17987 0 0 0 17 "
      "3 0 0 0 0 0 0 0 0 0 0 0 0 0\n");
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_EQ(r->pid, 4242);
  EXPECT_EQ(r->comm, "vm) R (web 1");
  EXPECT_EQ(r->state, 'S');
  EXPECT_EQ(r->utime_ticks, 52331u);
  EXPECT_EQ(r->stime_ticks, 10377u);
  EXPECT_EQ(r->cpu_ticks(), 62708u);
  EXPECT_EQ(r->starttime_ticks, 1833471u);
}

TEST(PidStat, EmptyComm) {
  auto r = parse_pid_stat("7 () S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20\n");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->comm, "");
  EXPECT_EQ(r->utime_ticks, 11u);
  EXPECT_EQ(r->stime_ticks, 12u);
}

TEST(PidStat, RejectsMalformed) {
  EXPECT_FALSE(parse_pid_stat(""));
  EXPECT_FALSE(parse_pid_stat("42 no-parens S 1 2 3"));
  EXPECT_FALSE(parse_pid_stat("42 (short) S 1 2 3\n"));              // truncated
  EXPECT_FALSE(parse_pid_stat("x (a) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20"));
  EXPECT_FALSE(parse_pid_stat("42 (a) S 1 2 3 4 5 6 7 8 9 10 u 12 13 14 15 16 17 18 19 20"));
  EXPECT_FALSE(parse_pid_stat("42 )a( S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20"));
}

TEST(StatusVmRss, ParsesKilobytes) {
  EXPECT_EQ(*parse_status_vm_rss("Name:\tx\nVmRSS:\t 1064004 kB\nThreads: 5\n"), 1064004ull * 1024);
  EXPECT_EQ(*parse_status_vm_rss("Name:\tkthreadd\nThreads: 1\n"), 0u);  // kernel thread
  EXPECT_FALSE(parse_status_vm_rss("VmRSS:\t lots kB\n"));
  EXPECT_FALSE(parse_status_vm_rss("VmRSS:\t 12\n"));
}

TEST(Counter, Parses) {
  EXPECT_EQ(*parse_counter("918273645512\n"), 918273645512u);
  EXPECT_FALSE(parse_counter(""));
  EXPECT_FALSE(parse_counter("-1\n"));
  EXPECT_FALSE(parse_counter("12 34\n"));
}

TEST(Readers, HostSampleFromFixture) {
  auto s = read_host_sample(kIntel + "/proc");
  ASSERT_TRUE(s) << s.error().to_string();
  EXPECT_EQ(s->cpu.user, 4705u);
  EXPECT_EQ(s->memory.total_bytes, 395921048ull * 1024);
  EXPECT_DOUBLE_EQ(s->load.one, 1.52);
  EXPECT_DOUBLE_EQ(s->uptime_seconds, 350735.47);
  HostSample later = *s;
  later.cpu.user += 30;
  later.cpu.idle += 70;
  auto m = host_metrics(*s, later);
  ASSERT_TRUE(m);
  EXPECT_DOUBLE_EQ(m->cpu_percent, 30.0);
  EXPECT_EQ(to_json(*m)["memory"]["used_bytes"], m->memory.used_bytes);
}

TEST(Readers, ProcessMetricsFromFixture) {
  auto m = read_process_metrics(4242, kIntel + "/proc", 100);
  ASSERT_TRUE(m) << m.error().to_string();
  EXPECT_EQ(m->comm, "vm) R (web 1");
  EXPECT_EQ(m->cpu_time_ns, 62708ull * 10'000'000);
  EXPECT_EQ(m->rss_bytes, 1064004ull * 1024);
  auto k = read_process_metrics(2, kIntel + "/proc", 100);
  ASSERT_TRUE(k);
  EXPECT_EQ(k->rss_bytes, 0u);
  EXPECT_EQ(k->cpu_time_ns, 3u * 10'000'000);
  auto missing = read_process_metrics(999999, kIntel + "/proc", 100);
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, ErrorCode::not_found);
}

TEST(Readers, NetCountersFromFixture) {
  auto c = read_net_counters("eno1", kIntel + "/sys");
  ASSERT_TRUE(c) << c.error().to_string();
  EXPECT_EQ(c->rx_bytes, 918273645512u);
  EXPECT_EQ(c->tx_bytes, 123456789012u);
  EXPECT_EQ(c->tx_packets, 90123456u);
  EXPECT_FALSE(read_net_counters("nope0", kIntel + "/sys"));
  auto bad = read_net_counters("../../etc", kIntel + "/sys");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, ErrorCode::invalid_argument);
}

}  // namespace
}  // namespace strata::agent
