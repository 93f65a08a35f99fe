// Pure parsers for /proc/cpuinfo, /proc/meminfo, sysfs cpu lists and os-release.
#include "strata/agent/inventory_parsers.h"

#include <algorithm>
#include <charconv>
#include <cstdint>

namespace strata::agent {
namespace {

// Splits on '\n'; a trailing empty line is dropped.
std::vector<std::string_view> lines_of(std::string_view text) {
  std::vector<std::string_view> out;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    out.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

std::vector<std::string> split_ws(std::string_view s) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && (s[i] == ' ' || s[i] == '\t')) ++i;
    size_t j = i;
    while (j < s.size() && s[j] != ' ' && s[j] != '\t') ++j;
    if (j > i) out.emplace_back(s.substr(i, j - i));
    i = j;
  }
  return out;
}

// "Key: 123 kB" -> (Key, bytes or count). Shared by /proc/meminfo and node meminfo.
Status parse_meminfo_line(std::string_view line, std::map<std::string, uint64_t>& out) {
  size_t colon = line.find(':');
  if (colon == std::string_view::npos)
    return invalid_argument("meminfo", "line without ':': " + std::string(line));
  std::string key(trim(line.substr(0, colon)));
  std::string_view rest = trim(line.substr(colon + 1));
  uint64_t multiplier = 1;
  if (rest.size() >= 2 && rest.substr(rest.size() - 2) == "kB") {
    multiplier = 1024;
    rest = trim(rest.substr(0, rest.size() - 2));
  }
  auto v = parse_u64(rest);
  if (!v) return invalid_argument("meminfo." + key, "not a number: " + std::string(rest));
  out[key] = *v * multiplier;
  return {};
}

}  // namespace

std::string_view trim(std::string_view s) {
  auto ws = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; };
  while (!s.empty() && ws(s.front())) s.remove_prefix(1);
  while (!s.empty() && ws(s.back())) s.remove_suffix(1);
  return s;
}

Result<uint64_t> parse_u64(std::string_view text) {
  text = trim(text);
  uint64_t v = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec != std::errc() || p != text.data() + text.size())
    return invalid_argument("", "not an unsigned integer: '" + std::string(text) + "'");
  return v;
}

Result<int64_t> parse_i64(std::string_view text) {
  text = trim(text);
  int64_t v = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec != std::errc() || p != text.data() + text.size())
    return invalid_argument("", "not an integer: '" + std::string(text) + "'");
  return v;
}

Result<std::vector<CpuinfoProcessor>> parse_cpuinfo(std::string_view text) {
  std::vector<CpuinfoProcessor> out;
  for (std::string_view line : lines_of(text)) {
    size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;  // blank separators, odd lines
    std::string_view key = trim(line.substr(0, colon));
    std::string_view value = trim(line.substr(colon + 1));
    if (key == "processor") {
      auto n = parse_u64(value);
      if (!n) return invalid_argument("cpuinfo.processor", "not a number: " + std::string(value));
      out.push_back(CpuinfoProcessor{});
      out.back().processor = static_cast<uint32_t>(*n);
      continue;
    }
    if (out.empty()) continue;  // header lines before the first block (s390, arm)
    CpuinfoProcessor& p = out.back();
    if (key == "vendor_id") {
      p.vendor = value;
    } else if (key == "model name") {
      p.model_name = value;
    } else if (key == "physical id" || key == "core id") {
      auto n = parse_i64(value);
      if (!n) return invalid_argument("cpuinfo." + std::string(key), "not a number: " + std::string(value));
      (key == "physical id" ? p.physical_id : p.core_id) = *n;
    } else if (key == "flags") {
      p.flags = split_ws(value);
    }
  }
  if (out.empty()) return invalid_argument("cpuinfo", "no processor entries");
  return out;
}

Result<std::map<std::string, uint64_t>> parse_meminfo(std::string_view text) {
  std::map<std::string, uint64_t> out;
  for (std::string_view line : lines_of(text)) {
    if (trim(line).empty()) continue;
    if (auto st = parse_meminfo_line(line, out); !st) return tl::unexpected(st.error());
  }
  if (out.empty()) return invalid_argument("meminfo", "empty meminfo");
  return out;
}

Result<std::map<std::string, uint64_t>> parse_node_meminfo(std::string_view text) {
  std::map<std::string, uint64_t> out;
  for (std::string_view line : lines_of(text)) {
    line = trim(line);
    if (line.empty()) continue;
    // "Node 0 MemTotal:  123 kB": drop the "Node N " prefix.
    if (line.substr(0, 5) != "Node ")
      return invalid_argument("node_meminfo", "line without 'Node N': " + std::string(line));
    size_t sp = line.find(' ', 5);
    if (sp == std::string_view::npos || !parse_u64(line.substr(5, sp - 5)))
      return invalid_argument("node_meminfo", "bad node prefix: " + std::string(line));
    if (auto st = parse_meminfo_line(line.substr(sp + 1), out); !st)
      return tl::unexpected(st.error());
  }
  if (out.empty()) return invalid_argument("node_meminfo", "empty node meminfo");
  return out;
}

Result<std::vector<uint32_t>> parse_cpu_list(std::string_view text) {
  constexpr uint64_t kMaxCpuIds = 65536;  // Linux's NR_CPUS is at most 8192 on x86
  std::vector<uint32_t> ids;  // sorted and deduplicated at the end (a std::set cost ~10x)
  uint64_t expanded = 0;
  text = trim(text);
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find(',', start);
    if (end == std::string_view::npos) end = text.size();
    std::string_view part = trim(text.substr(start, end - start));
    size_t dash = part.find('-');
    auto lo = parse_u64(part.substr(0, dash));
    auto hi = dash == std::string_view::npos ? lo : parse_u64(part.substr(dash + 1));
    // Ids are uint32 and a list names at most kMaxCpuIds of them in all: "…-18446744073709551615"
    // made `i <= hi` always true (an endless loop), and many large ranges cost seconds.
    if (!lo || !hi || *hi < *lo || *hi > UINT32_MAX || *hi - *lo >= kMaxCpuIds - expanded)
      return invalid_argument("cpulist", "bad cpu range: '" + std::string(part) + "'");
    expanded += *hi - *lo + 1;
    for (uint64_t i = *lo; i <= *hi; ++i) ids.push_back(static_cast<uint32_t>(i));
    start = end + 1;
  }
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  return ids;
}

std::map<std::string, std::string> parse_os_release(std::string_view text) {
  std::map<std::string, std::string> out;
  for (std::string_view line : lines_of(text)) {
    line = trim(line);
    if (line.empty() || line.front() == '#') continue;
    size_t eq = line.find('=');
    if (eq == std::string_view::npos || eq == 0) continue;
    std::string key(line.substr(0, eq));
    std::string_view raw = line.substr(eq + 1);
    std::string value;
    if (!raw.empty() && (raw.front() == '"' || raw.front() == '\'')) {
      char q = raw.front();
      for (size_t i = 1; i < raw.size() && raw[i] != q; ++i) {
        if (raw[i] == '\\' && q == '"' && i + 1 < raw.size()) ++i;
        value.push_back(raw[i]);
      }
    } else {
      value = raw;
    }
    out[key] = value;
  }
  return out;
}

}  // namespace strata::agent
