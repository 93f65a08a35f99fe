// Pure parsers for the text formats the host inventory reads (/proc/cpuinfo,
// /proc/meminfo, sysfs cpu lists, os-release). No I/O: each takes the file's content.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "strata/common/error.h"

namespace strata::agent {

// One "processor" block of /proc/cpuinfo, with only the fields the inventory uses.
struct CpuinfoProcessor {
  uint32_t processor = 0;
  std::string vendor;
  std::string model_name;
  int64_t physical_id = -1;      // -1 when the kernel omits it (some VMs, non-x86)
  int64_t core_id = -1;
  std::vector<std::string> flags;
};

// Parses /proc/cpuinfo. Error if there is no processor block or a "processor" value
// is not a number.
Result<std::vector<CpuinfoProcessor>> parse_cpuinfo(std::string_view text);

// Parses /proc/meminfo ("Key:   123 kB") into key -> value; "kB" values are converted
// to bytes, unit-less values (HugePages_Total) are kept as counts. Error on a line that
// has a key but no number, or when the text is empty.
Result<std::map<std::string, uint64_t>> parse_meminfo(std::string_view text);

// Parses a per-node meminfo (/sys/devices/system/node/nodeN/meminfo, lines
// "Node 0 MemTotal:  123 kB") into key -> bytes.
Result<std::map<std::string, uint64_t>> parse_node_meminfo(std::string_view text);

// Expands a kernel cpu list ("0-3,8,10-11") into sorted ids. Empty text -> empty list.
// Error on a bad range, an id past uint32, or more than 65536 ids in all.
Result<std::vector<uint32_t>> parse_cpu_list(std::string_view text);

// Parses os-release KEY=VALUE lines; values may be "double" or 'single' quoted with
// backslash escapes. Comments and blank lines are skipped.
std::map<std::string, std::string> parse_os_release(std::string_view text);

// Parses an unsigned decimal (surrounding whitespace allowed). Error otherwise.
Result<uint64_t> parse_u64(std::string_view text);
// Parses a signed decimal (surrounding whitespace allowed). Error otherwise.
Result<int64_t> parse_i64(std::string_view text);

// Trims ASCII whitespace on both sides.
std::string_view trim(std::string_view s);

}  // namespace strata::agent
