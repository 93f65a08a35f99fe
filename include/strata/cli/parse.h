// Parsing of human-written values on the command line: sizes ("512M", "2G", "1T"),
// durations ("24h", "90s", "1h30m") and key=value pairs. Pure functions; errors name the
// flag so the message can be shown as is.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

#include "strata/common/error.h"

namespace strata::cli {

// Binary units: K=2^10, M=2^20, G=2^30, T=2^40 (also "Ki"/"KiB"/"KB" and lower case).
// A number without a unit is multiplied by `plain_unit`. Whole numbers only; negative
// numbers, fractions, garbage and values above 2^63 are rejected.
Result<uint64_t> parse_size(std::string_view text, std::string_view flag, uint64_t plain_unit = 1);

// Memory for a VM in MiB: "512M", "2G"; a plain number means MiB. Must be a whole
// number of MiB and > 0.
Result<uint64_t> parse_memory_mib(std::string_view text, std::string_view flag);

// Durations in seconds: "90", "90s", "30m", "24h", "7d", "1h30m". Must be > 0.
Result<uint64_t> parse_duration_s(std::string_view text, std::string_view flag);

// "key=value" -> {key, value}; the key must be non-empty.
Result<std::pair<std::string, std::string>> parse_key_value(std::string_view text,
                                                            std::string_view flag);

// A VM size "<vCPUs>c<memory>": "2c4G" = 2 vCPUs and 4096 MiB (memory as parse_memory_mib).
struct VmSize {
  uint32_t vcpus = 0;
  uint64_t memory_mib = 0;
};
Result<VmSize> parse_vm_size(std::string_view text, std::string_view flag);

// "N x SIZE" (also "NxSIZE", spaces optional): how many VMs of which size, N > 0.
Result<std::pair<uint32_t, VmSize>> parse_count_x_size(std::string_view text,
                                                       std::string_view flag);

// 536870912 -> "512M", 1536 MiB -> "1.5G"; for tables.
std::string format_bytes(uint64_t bytes);

}  // namespace strata::cli
