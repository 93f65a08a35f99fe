// Scheduler benchmark: decisions per second and per-decision latency on 10 000 synthetic
// hosts (100 000 constrained placements, applied one after another), and packing quality
// (fill a fleet with mixed-size VMs until the first placement fails), spread vs pack
// measured side by side in one run. Last line: `scheduler: placements_per_s=N pack_utilization=U`.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>
#include <vector>

#include "fleet.h"
#include "strata/sched/placement.h"
#include "strata/sched/scheduler.h"

namespace {

using namespace strata;
using Clock = std::chrono::steady_clock;

// CPU time of this thread in microseconds. The machines are shared (load far above the
// core count), so "one core" rates and latencies are measured in CPU time; wall-clock
// figures are printed next to them.
double cpu_us() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) * 1e6 + static_cast<double>(ts.tv_nsec) / 1e3;
}

struct Options {
  uint32_t hosts = 10000;
  uint32_t requests = 100000;
  uint32_t fill_hosts = 10000;
  uint64_t seed = 42;
};

struct Throughput {
  double per_second = 0;       // decisions per CPU second
  double per_wall_second = 0;  // decisions per wall second (shared machine: lower)
  double p50_us = 0;           // CPU time per decision
  double p99_us = 0;
  double max_us = 0;
  double wall_p99_us = 0;
  uint32_t placed = 0;
  uint32_t failed = 0;
  double explain_us = 0;  // mean cost of a full explanation, for comparison
};

struct Fill {
  uint32_t placed = 0;
  double vcpu_utilization = 0;    // allocated / (threads x cpu_overcommit), up hosts
  double memory_utilization = 0;  // allocated / (memory x mem_overcommit), up hosts
  uint32_t hosts_used = 0;
  uint32_t hosts_used_at_half = 0;  // hosts holding a VM when half the memory was placed
  std::string first_failure;
};

double percentile(std::vector<double>& v, double p) {
  if (v.empty()) return 0;
  size_t k = std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())));
  std::nth_element(v.begin(), v.begin() + static_cast<ptrdiff_t>(k), v.end());
  return v[k];
}

sched::Snapshot build(std::vector<sched::HostInfo> hosts) {
  auto s = sched::Snapshot::build(std::move(hosts));
  if (!s) {
    std::fprintf(stderr, "snapshot: %s\n", s.error().to_string().c_str());
    std::exit(1);
  }
  return std::move(*s);
}

Throughput run_throughput(const sched::Scheduler& scheduler, const sched::Snapshot& fleet,
                          const std::vector<sched::PlacementRequest>& requests) {
  sched::Snapshot snap = fleet;  // each strategy starts from the same fleet
  std::vector<double> latency_us, wall_us;
  latency_us.reserve(requests.size());
  wall_us.reserve(requests.size());
  Throughput t;
  auto start = Clock::now();
  double cpu_start = cpu_us();
  for (const sched::PlacementRequest& r : requests) {
    auto w0 = Clock::now();
    double c0 = cpu_us();
    Result<sched::Plan> plan = scheduler.place(snap, r);
    if (plan) {
      (void)sched::apply_placement(snap, *plan, r);
      ++t.placed;
    } else {
      ++t.failed;
    }
    latency_us.push_back(cpu_us() - c0);
    wall_us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - w0).count());
  }
  double cpu_seconds = (cpu_us() - cpu_start) / 1e6;
  double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  t.per_second = static_cast<double>(requests.size()) / cpu_seconds;
  t.per_wall_second = static_cast<double>(requests.size()) / seconds;
  t.p50_us = percentile(latency_us, 0.50);
  t.p99_us = percentile(latency_us, 0.99);
  t.max_us = *std::max_element(latency_us.begin(), latency_us.end());
  t.wall_p99_us = percentile(wall_us, 0.99);
  // Explanations are lazy; show what one costs on the final, loaded fleet.
  constexpr size_t kExplains = 50;
  double e0 = cpu_us();
  for (size_t i = 0; i < kExplains; ++i) (void)scheduler.explain(snap, requests[i]);
  t.explain_us = (cpu_us() - e0) / kExplains;
  return t;
}

Fill run_fill(const sched::Scheduler& scheduler, const sched::Snapshot& fleet, uint64_t seed) {
  sched::Snapshot snap = fleet;
  bench::Rng rng(seed);
  Fill f;
  double mem_cap = 0;
  for (uint32_t i = 0; i < snap.size(); ++i) {
    if (snap.record(i).traits.state == sched::HostState::up) {
      mem_cap +=
          static_cast<double>(snap.record(i).total_memory_mib) * scheduler.config().mem_overcommit;
    }
  }
  std::vector<bool> used(snap.size());
  uint32_t in_use = 0;
  double placed_mib = 0;
  for (;;) {
    sched::PlacementRequest r = bench::mixed_size_vm(rng);
    Result<sched::Plan> plan = scheduler.place(snap, r);
    if (!plan) {
      f.first_failure = plan.error().message.substr(0, 160);
      break;
    }
    (void)sched::apply_placement(snap, *plan, r);
    ++f.placed;
    if (!used[plan->host_index]) {
      used[plan->host_index] = true;
      ++in_use;
    }
    placed_mib += static_cast<double>(r.memory_mib);
    if (f.hosts_used_at_half == 0 && placed_mib >= mem_cap / 2) f.hosts_used_at_half = in_use;
  }
  double vcpu_cap = 0, vcpu_used = 0, mem_used = 0;
  mem_cap = 0;
  for (uint32_t i = 0; i < snap.size(); ++i) {
    const sched::HostRecord& h = snap.record(i);
    if (h.traits.state != sched::HostState::up) continue;
    vcpu_cap += h.total_vcpus * scheduler.config().cpu_overcommit;
    mem_cap += static_cast<double>(h.total_memory_mib) * scheduler.config().mem_overcommit;
    vcpu_used += h.allocated_vcpus;
    mem_used += static_cast<double>(h.allocated_memory_mib);
    if (h.allocated_vcpus > 0) ++f.hosts_used;
  }
  f.vcpu_utilization = vcpu_used / vcpu_cap;
  f.memory_utilization = mem_used / mem_cap;
  return f;
}

bool parse(int argc, char** argv, Options& o) {
  for (int i = 1; i < argc; ++i) {
    auto value = [&](uint64_t& out) {
      if (i + 1 >= argc) return false;
      out = std::strtoull(argv[++i], nullptr, 10);
      return out > 0;
    };
    uint64_t v = 0;
    std::string a = argv[i];
    if (a == "--hosts" && value(v)) {
      o.hosts = static_cast<uint32_t>(v);
    } else if (a == "--requests" && value(v)) {
      o.requests = static_cast<uint32_t>(v);
    } else if (a == "--fill-hosts" && value(v)) {
      o.fill_hosts = static_cast<uint32_t>(v);
    } else if (a == "--seed" && value(v)) {
      o.seed = v;
    } else {
      std::fprintf(stderr,
                   "usage: scheduler_bench [--hosts N (10000)] [--requests N (100000)]\n"
                   "                       [--fill-hosts N (10000)] [--seed N (42)]\n");
      return false;
    }
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  if (!parse(argc, argv, o)) return 2;
  sched::Scheduler spread = *sched::Scheduler::create({4.0, 1.0, sched::WeightStrategy::spread});
  sched::Scheduler pack = *sched::Scheduler::create({4.0, 1.0, sched::WeightStrategy::pack});

  sched::Snapshot fleet = build(bench::make_fleet({o.hosts, o.seed, true, 20}));
  auto requests = bench::make_constrained_workload(o.requests, o.hosts, o.seed + 1);
  std::printf(
      "scheduler benchmark (seed %llu): %u hosts (mixed state/arch/accelerator/labels, "
      "0-20%% preloaded), %u requests\n(10%% kvm-only, 25%% node selector, 10%% "
      "anti-affinity in 1000 groups, 1%% pinned), cpu_overcommit 4, mem_overcommit 1\n\n",
      static_cast<unsigned long long>(o.seed), o.hosts, o.requests);

  Throughput ts = run_throughput(spread, fleet, requests);
  Throughput tp = run_throughput(pack, fleet, requests);
  std::printf("%-36s %14s %14s\n", "throughput (one core, CPU time)", "spread", "pack");
  std::printf("%-36s %14.0f %14.0f\n", "decisions/s (place + apply)", ts.per_second, tp.per_second);
  std::printf("%-36s %14.1f %14.1f\n", "p50 CPU time per decision (us)", ts.p50_us, tp.p50_us);
  std::printf("%-36s %14.1f %14.1f\n", "p99 CPU time per decision (us)", ts.p99_us, tp.p99_us);
  std::printf("%-36s %14.1f %14.1f\n", "max CPU time per decision (us)", ts.max_us, tp.max_us);
  std::printf("%-36s %14.0f %14.0f\n", "decisions/s, wall clock (shared box)", ts.per_wall_second,
              tp.per_wall_second);
  std::printf("%-36s %14.1f %14.1f\n", "p99 wall time per decision (us)", ts.wall_p99_us,
              tp.wall_p99_us);
  std::printf("%-36s %14u %14u\n", "placed", ts.placed, tp.placed);
  std::printf("%-36s %14u %14u\n", "no fit (error with explanation)", ts.failed, tp.failed);
  std::printf("%-36s %14.1f %14.1f\n", "explain() CPU time per request (us)", ts.explain_us,
              tp.explain_us);

  sched::Snapshot empty = build(bench::make_fleet({o.fill_hosts, o.seed + 2, false, 0}));
  Fill fs = run_fill(spread, empty, o.seed + 3);
  Fill fp = run_fill(pack, empty, o.seed + 3);
  std::printf("\n%-36s %14s %14s\n", "fill until first failure", "spread", "pack");
  std::printf("(%u empty hosts 32-128 threads, 4-16 GiB/thread; VMs 1-32 vCPU, 0.5-128 GiB)\n",
              o.fill_hosts);
  std::printf("%-36s %14u %14u\n", "VMs placed", fs.placed, fp.placed);
  std::printf("%-36s %14u %14u\n", "hosts in use at 50% memory placed", fs.hosts_used_at_half,
              fp.hosts_used_at_half);
  std::printf("%-36s %14u %14u\n", "hosts in use at first failure", fs.hosts_used, fp.hosts_used);
  std::printf("%-36s %13.1f%% %13.1f%%\n", "vCPU utilization (of 4x threads)",
              100 * fs.vcpu_utilization, 100 * fp.vcpu_utilization);
  std::printf("%-36s %13.1f%% %13.1f%%\n", "memory utilization", 100 * fs.memory_utilization,
              100 * fp.memory_utilization);
  std::printf("first failure (spread): %s\n", fs.first_failure.c_str());
  std::printf("first failure (pack):   %s\n", fp.first_failure.c_str());

  // Conservative summary: the slower strategy's rate, pack's lower dimension.
  double rate = std::min(ts.per_second, tp.per_second);
  double util = std::min(fp.vcpu_utilization, fp.memory_utilization);
  std::printf("scheduler: placements_per_s=%.0f pack_utilization=%.3f\n", rate, util);
  return 0;
}
