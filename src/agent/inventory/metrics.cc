// Live metrics: pure parsers for /proc and sysfs counters, and thin readers around them.
#include "strata/agent/metrics.h"

#include <unistd.h>

#include <charconv>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

#include <nlohmann/json.hpp>

#include "strata/agent/inventory_parsers.h"

namespace strata::agent {
namespace fs = std::filesystem;
namespace {

std::vector<std::string_view> fields_of(std::string_view s) {
  std::vector<std::string_view> out;
  size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n')) ++i;
    size_t j = i;
    while (j < s.size() && s[j] != ' ' && s[j] != '\t' && s[j] != '\n') ++j;
    if (j > i) out.push_back(s.substr(i, j - i));
    i = j;
  }
  return out;
}

Result<double> parse_double(std::string_view s, const std::string& field) {
  s = trim(s);
  double v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || p != s.data() + s.size() || v < 0)
    return invalid_argument(field, "not a non-negative number: '" + std::string(s) + "'");
  return v;
}

Result<std::string> read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) return not_found("cannot read " + p.string());
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return unavailable("read error on " + p.string());
  return ss.str();
}

}  // namespace

Result<CpuTimes> parse_proc_stat(std::string_view text) {
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    if (line.substr(0, 4) != "cpu ") continue;
    auto f = fields_of(line.substr(4));
    if (f.size() < 4) return invalid_argument("proc_stat.cpu", "fewer than 4 cpu counters");
    std::vector<uint64_t> v;
    for (auto s : f) {
      auto n = parse_u64(s);
      if (!n) return invalid_argument("proc_stat.cpu", "bad counter '" + std::string(s) + "'");
      v.push_back(*n);
    }
    v.resize(10, 0);  // older kernels have fewer columns
    return CpuTimes{v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], v[9]};
  }
  return invalid_argument("proc_stat.cpu", "no aggregate 'cpu' line");
}

Result<double> cpu_percent(const CpuTimes& earlier, const CpuTimes& later) {
  if (later.total() <= earlier.total())
    return invalid_argument("cpu_times", "second sample is not later than the first");
  // Per-field deltas clamped at 0: iowait is known to step backwards on tickless kernels.
  auto d = [](uint64_t a, uint64_t b) { return b > a ? static_cast<double>(b - a) : 0.0; };
  double idle = d(earlier.idle, later.idle) + d(earlier.iowait, later.iowait);
  double busy = d(earlier.user, later.user) + d(earlier.nice, later.nice) +
                d(earlier.system, later.system) + d(earlier.irq, later.irq) +
                d(earlier.softirq, later.softirq) + d(earlier.steal, later.steal);
  if (idle + busy == 0) return invalid_argument("cpu_times", "no CPU time elapsed between samples");
  return 100.0 * busy / (idle + busy);
}

Result<LoadAverage> parse_loadavg(std::string_view text) {
  // "0.52 0.58 0.59 1/389 12345"
  auto f = fields_of(text);
  if (f.size() < 4) return invalid_argument("loadavg", "expected at least 4 fields");
  LoadAverage la;
  double* dst[] = {&la.one, &la.five, &la.fifteen};
  for (int i = 0; i < 3; ++i) {
    auto v = parse_double(f[i], "loadavg");
    if (!v) return tl::unexpected(v.error());
    *dst[i] = *v;
  }
  size_t slash = f[3].find('/');
  if (slash == std::string_view::npos) return invalid_argument("loadavg", "bad running/total field");
  auto run = parse_u64(f[3].substr(0, slash));
  auto tot = parse_u64(f[3].substr(slash + 1));
  if (!run || !tot) return invalid_argument("loadavg", "bad running/total field");
  la.running = static_cast<uint32_t>(*run);
  la.total_tasks = static_cast<uint32_t>(*tot);
  return la;
}

Result<double> parse_uptime(std::string_view text) {
  auto f = fields_of(text);
  if (f.empty()) return invalid_argument("uptime", "empty");
  return parse_double(f[0], "uptime");
}

Result<MemoryUsage> parse_memory_usage(std::string_view meminfo) {
  auto m = parse_meminfo(meminfo);
  if (!m) return tl::unexpected(m.error());
  auto total = m->find("MemTotal");
  auto avail = m->find("MemAvailable");
  if (total == m->end()) return invalid_argument("meminfo.MemTotal", "MemTotal missing");
  if (avail == m->end()) return invalid_argument("meminfo.MemAvailable", "MemAvailable missing");
  MemoryUsage u;
  u.total_bytes = total->second;
  u.available_bytes = std::min(avail->second, total->second);
  u.used_bytes = u.total_bytes - u.available_bytes;
  return u;
}

Result<ProcStat> parse_pid_stat(std::string_view text) {
  // "pid (comm) state ppid ..." where comm may itself contain ") (" sequences: the real
  // end of comm is the last ')'.
  size_t open = text.find('(');
  size_t close = text.rfind(')');
  if (open == std::string_view::npos || close == std::string_view::npos || close < open)
    return invalid_argument("pid_stat", "no (comm) field");
  ProcStat st;
  auto pid = parse_i64(text.substr(0, open));
  if (!pid) return invalid_argument("pid_stat.pid", "bad pid");
  st.pid = *pid;
  st.comm = std::string(text.substr(open + 1, close - open - 1));
  // After comm: field 3 (state) is rest[0]; utime is field 14 -> rest[11], stime 15 ->
  // rest[12], starttime 22 -> rest[19].
  auto rest = fields_of(text.substr(close + 1));
  if (rest.size() < 20) return invalid_argument("pid_stat", "too few fields after comm");
  if (rest[0].size() != 1) return invalid_argument("pid_stat.state", "bad state");
  st.state = rest[0][0];
  auto ut = parse_u64(rest[11]), stt = parse_u64(rest[12]), start = parse_u64(rest[19]);
  if (!ut) return invalid_argument("pid_stat.utime", "bad utime");
  if (!stt) return invalid_argument("pid_stat.stime", "bad stime");
  if (!start) return invalid_argument("pid_stat.starttime", "bad starttime");
  st.utime_ticks = *ut;
  st.stime_ticks = *stt;
  st.starttime_ticks = *start;
  return st;
}

Result<uint64_t> parse_status_vm_rss(std::string_view text) {
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    if (line.substr(0, 6) != "VmRSS:") continue;
    std::string_view v = trim(line.substr(6));
    if (v.size() < 2 || v.substr(v.size() - 2) != "kB")
      return invalid_argument("status.VmRSS", "VmRSS without kB unit");
    auto n = parse_u64(v.substr(0, v.size() - 2));
    if (!n) return invalid_argument("status.VmRSS", "bad VmRSS value");
    return *n * 1024;
  }
  return uint64_t{0};  // kernel threads have no VmRSS line
}

Result<uint64_t> parse_counter(std::string_view text) {
  auto v = parse_u64(text);
  if (!v) return invalid_argument("counter", "bad counter '" + std::string(trim(text)) + "'");
  return *v;
}

Result<HostSample> read_host_sample(const std::string& proc_root) {
  fs::path root(proc_root);
  HostSample s;
  auto stat = read_file(root / "stat");
  if (!stat) return tl::unexpected(stat.error());
  auto cpu = parse_proc_stat(*stat);
  if (!cpu) return tl::unexpected(cpu.error());
  s.cpu = *cpu;
  auto mem_text = read_file(root / "meminfo");
  if (!mem_text) return tl::unexpected(mem_text.error());
  auto mem = parse_memory_usage(*mem_text);
  if (!mem) return tl::unexpected(mem.error());
  s.memory = *mem;
  auto la_text = read_file(root / "loadavg");
  if (!la_text) return tl::unexpected(la_text.error());
  auto la = parse_loadavg(*la_text);
  if (!la) return tl::unexpected(la.error());
  s.load = *la;
  auto up_text = read_file(root / "uptime");
  if (!up_text) return tl::unexpected(up_text.error());
  auto up = parse_uptime(*up_text);
  if (!up) return tl::unexpected(up.error());
  s.uptime_seconds = *up;
  return s;
}

Result<HostMetrics> host_metrics(const HostSample& earlier, const HostSample& later) {
  auto pct = cpu_percent(earlier.cpu, later.cpu);
  if (!pct) return tl::unexpected(pct.error());
  return HostMetrics{*pct, later.memory, later.load, later.uptime_seconds};
}

Result<ProcessMetrics> read_process_metrics(int64_t pid, const std::string& proc_root,
                                            uint64_t ticks_per_second) {
  if (ticks_per_second == 0) {
    long t = ::sysconf(_SC_CLK_TCK);
    ticks_per_second = t > 0 ? static_cast<uint64_t>(t) : 100;
  }
  fs::path dir = fs::path(proc_root) / std::to_string(pid);
  auto stat_text = read_file(dir / "stat");
  if (!stat_text) return not_found("process " + std::to_string(pid) + " not found");
  auto st = parse_pid_stat(*stat_text);
  if (!st) return tl::unexpected(st.error());
  auto status_text = read_file(dir / "status");
  if (!status_text) return not_found("process " + std::to_string(pid) + " not found");
  auto rss = parse_status_vm_rss(*status_text);
  if (!rss) return tl::unexpected(rss.error());
  ProcessMetrics m;
  m.pid = st->pid;
  m.comm = st->comm;
  m.cpu_time_ns = st->cpu_ticks() * 1'000'000'000ull / ticks_per_second;
  m.rss_bytes = *rss;
  return m;
}

Result<NetCounters> read_net_counters(const std::string& ifname, const std::string& sys_root) {
  if (ifname.empty() || ifname.find('/') != std::string::npos || ifname == "." || ifname == "..")
    return invalid_argument("ifname", "bad interface name '" + ifname + "'");
  fs::path dir = fs::path(sys_root) / "class/net" / ifname / "statistics";
  NetCounters c;
  std::pair<const char*, uint64_t*> files[] = {{"rx_bytes", &c.rx_bytes},
                                               {"tx_bytes", &c.tx_bytes},
                                               {"rx_packets", &c.rx_packets},
                                               {"tx_packets", &c.tx_packets}};
  for (auto& [name, dst] : files) {
    auto text = read_file(dir / name);
    if (!text) return not_found("interface " + ifname + " has no " + name);
    auto v = parse_counter(*text);
    if (!v) return tl::unexpected(v.error().wrap(ifname + "/" + name));
    *dst = *v;
  }
  return c;
}

nlohmann::json to_json(const HostMetrics& m) {
  return {{"cpu_percent", m.cpu_percent},
          {"memory", {{"total_bytes", m.memory.total_bytes},
                      {"available_bytes", m.memory.available_bytes},
                      {"used_bytes", m.memory.used_bytes}}},
          {"load", {{"one", m.load.one}, {"five", m.load.five}, {"fifteen", m.load.fifteen},
                    {"running", m.load.running}, {"total_tasks", m.load.total_tasks}}},
          {"uptime_seconds", m.uptime_seconds}};
}

nlohmann::json to_json(const ProcessMetrics& m) {
  return {{"pid", m.pid}, {"comm", m.comm}, {"cpu_time_ns", m.cpu_time_ns}, {"rss_bytes", m.rss_bytes}};
}

nlohmann::json to_json(const NetCounters& c) {
  return {{"rx_bytes", c.rx_bytes}, {"tx_bytes", c.tx_bytes},
          {"rx_packets", c.rx_packets}, {"tx_packets", c.tx_packets}};
}

}  // namespace strata::agent
