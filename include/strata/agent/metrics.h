// Live host and process metrics: CPU %, memory, load, uptime, per-process CPU time and
// RSS, per-interface byte counters. Parsers are pure functions over file contents;
// the read_* functions only fetch files and call them. CPU % is computed from two
// samples by a pure function, so the caller owns the sampling interval (no sleeps here).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include <nlohmann/json_fwd.hpp>

#include "strata/common/error.h"

namespace strata::agent {

// The aggregate "cpu" line of /proc/stat, in clock ticks.
struct CpuTimes {
  uint64_t user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0,
           steal = 0, guest = 0, guest_nice = 0;
  // guest/guest_nice are already included in user/nice, so they are not added again.
  uint64_t total() const { return user + nice + system + idle + iowait + irq + softirq + steal; }
  uint64_t idle_total() const { return idle + iowait; }
};

// Parses /proc/stat's first "cpu " line (at least user..idle must be present).
Result<CpuTimes> parse_proc_stat(std::string_view text);

// Busy percentage (0..100) of all CPUs between two samples. Error when `later` is not
// later (total went backwards or did not advance).
Result<double> cpu_percent(const CpuTimes& earlier, const CpuTimes& later);

struct LoadAverage {
  double one = 0, five = 0, fifteen = 0;
  uint32_t running = 0, total_tasks = 0;
};
Result<LoadAverage> parse_loadavg(std::string_view text);

// /proc/uptime: seconds since boot (first field).
Result<double> parse_uptime(std::string_view text);

struct MemoryUsage {
  uint64_t total_bytes = 0;
  uint64_t available_bytes = 0;
  uint64_t used_bytes = 0;       // total - available
};
// From /proc/meminfo content (needs MemTotal and MemAvailable).
Result<MemoryUsage> parse_memory_usage(std::string_view meminfo);

// Fields of /proc/<pid>/stat. comm may contain spaces and parentheses: it is everything
// between the first '(' and the LAST ')'.
struct ProcStat {
  int64_t pid = 0;
  std::string comm;
  char state = '?';
  uint64_t utime_ticks = 0;
  uint64_t stime_ticks = 0;
  uint64_t starttime_ticks = 0;  // since boot
  uint64_t cpu_ticks() const { return utime_ticks + stime_ticks; }
};
Result<ProcStat> parse_pid_stat(std::string_view text);

// VmRSS from /proc/<pid>/status, in bytes. Kernel threads have no VmRSS: returns 0.
// Error on a VmRSS line that does not parse.
Result<uint64_t> parse_status_vm_rss(std::string_view text);

// One counter file (/sys/class/net/<if>/statistics/rx_bytes): a decimal and a newline.
Result<uint64_t> parse_counter(std::string_view text);

struct NetCounters {
  uint64_t rx_bytes = 0, tx_bytes = 0, rx_packets = 0, tx_packets = 0;
};

// ---- Reading the live machine (roots injectable for tests) ----

struct HostSample {
  CpuTimes cpu;
  MemoryUsage memory;
  LoadAverage load;
  double uptime_seconds = 0;
};
Result<HostSample> read_host_sample(const std::string& proc_root = "/proc");

struct HostMetrics {
  double cpu_percent = 0;
  MemoryUsage memory;
  LoadAverage load;
  double uptime_seconds = 0;
};
// Metrics between two samples (memory/load/uptime from `later`).
Result<HostMetrics> host_metrics(const HostSample& earlier, const HostSample& later);

struct ProcessMetrics {
  int64_t pid = 0;
  std::string comm;
  uint64_t cpu_time_ns = 0;      // utime + stime
  uint64_t rss_bytes = 0;
};
// `ticks_per_second` defaults to sysconf(_SC_CLK_TCK) when 0.
Result<ProcessMetrics> read_process_metrics(int64_t pid, const std::string& proc_root = "/proc",
                                            uint64_t ticks_per_second = 0);

Result<NetCounters> read_net_counters(const std::string& ifname,
                                      const std::string& sys_root = "/sys");

nlohmann::json to_json(const HostMetrics& m);
nlohmann::json to_json(const ProcessMetrics& m);
nlohmann::json to_json(const NetCounters& c);

}  // namespace strata::agent
