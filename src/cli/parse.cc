// Sizes, durations and key=value pairs from the command line (see parse.h).
#include "strata/cli/parse.h"

#include <cctype>
#include <cstdio>
#include <limits>

namespace strata::cli {

namespace {

constexpr uint64_t kMax = uint64_t{1} << 63;

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// Leading digits of `s` as a number; advances `pos`. False on overflow or no digits.
bool read_number(std::string_view s, size_t& pos, uint64_t& out) {
  size_t start = pos;
  out = 0;
  while (pos < s.size() && std::isdigit(static_cast<unsigned char>(s[pos]))) {
    uint64_t d = static_cast<uint64_t>(s[pos] - '0');
    if (out > (std::numeric_limits<uint64_t>::max() - d) / 10) return false;
    out = out * 10 + d;
    ++pos;
  }
  return pos > start;
}

}  // namespace

Result<uint64_t> parse_size(std::string_view text, std::string_view flag, uint64_t plain_unit) {
  std::string f(flag);
  auto bad = [&](const std::string& why) {
    return invalid_argument(
        f, f + ": invalid size '" + std::string(text) + "': " + why + " (examples: 512M, 2G, 1T)");
  };
  if (text.empty()) return bad("empty");
  if (text[0] == '-') return bad("must not be negative");
  size_t pos = 0;
  uint64_t n = 0;
  if (!read_number(text, pos, n)) return bad(pos == 0 ? "expected a number" : "too large");
  if (pos < text.size() && (text[pos] == '.' || text[pos] == ','))
    return bad("use a whole number with a smaller unit instead of a fraction");
  std::string unit = lower(text.substr(pos));
  uint64_t mult = 0;
  if (unit.empty())
    mult = plain_unit;
  else if (unit == "b")
    mult = 1;
  else if (unit == "k" || unit == "kb" || unit == "ki" || unit == "kib")
    mult = uint64_t{1} << 10;
  else if (unit == "m" || unit == "mb" || unit == "mi" || unit == "mib")
    mult = uint64_t{1} << 20;
  else if (unit == "g" || unit == "gb" || unit == "gi" || unit == "gib")
    mult = uint64_t{1} << 30;
  else if (unit == "t" || unit == "tb" || unit == "ti" || unit == "tib")
    mult = uint64_t{1} << 40;
  else
    return bad("unknown unit '" + std::string(text.substr(pos)) + "'");
  if (n != 0 && mult > kMax / n) return bad("too large");
  return n * mult;
}

Result<uint64_t> parse_memory_mib(std::string_view text, std::string_view flag) {
  auto bytes = parse_size(text, flag, uint64_t{1} << 20);
  if (!bytes) return bytes;
  std::string f(flag);
  if (*bytes == 0) return invalid_argument(f, f + ": memory must be greater than zero");
  if (*bytes % (uint64_t{1} << 20) != 0)
    return invalid_argument(
        f, f + ": memory must be a whole number of MiB, not '" + std::string(text) + "'");
  return *bytes >> 20;
}

Result<VmSize> parse_vm_size(std::string_view text, std::string_view flag) {
  std::string f(flag);
  auto bad = [&](const std::string& why) {
    return invalid_argument(f, f + ": invalid VM size '" + std::string(text) + "': " + why +
                                   " (examples: 1c512M, 2c4G: vCPUs, 'c', memory)");
  };
  size_t pos = 0;
  uint64_t vcpus = 0;
  if (!read_number(text, pos, vcpus)) return bad("expected the number of vCPUs first");
  if (pos >= text.size() || (text[pos] != 'c' && text[pos] != 'C'))
    return bad("expected 'c' after the vCPUs");
  if (vcpus == 0 || vcpus > 4096) return bad("vCPUs must be 1..4096");
  std::string_view mem = text.substr(pos + 1);
  if (mem.empty()) return bad("expected the memory after 'c'");
  auto mib = parse_memory_mib(mem, flag);
  if (!mib) return tl::unexpected(mib.error());
  return VmSize{static_cast<uint32_t>(vcpus), *mib};
}

Result<std::pair<uint32_t, VmSize>> parse_count_x_size(std::string_view text,
                                                       std::string_view flag) {
  std::string f(flag);
  std::string compact;
  for (char c : text)
    if (c != ' ' && c != '\t') compact += c;
  auto bad = [&](const std::string& why) {
    return invalid_argument(f, f + ": invalid '" + std::string(text) + "': " + why +
                                   " (example: 10x2c4G, or '10 x 2c4G')");
  };
  size_t pos = 0;
  uint64_t n = 0;
  std::string_view v(compact);
  if (!read_number(v, pos, n)) return bad("expected a count first");
  if (n == 0 || n > 100000) return bad("the count must be 1..100000");
  if (pos >= v.size() || (v[pos] != 'x' && v[pos] != 'X')) return bad("expected 'x' after the count");
  auto size = parse_vm_size(v.substr(pos + 1), flag);
  if (!size) return tl::unexpected(size.error());
  return std::pair<uint32_t, VmSize>{static_cast<uint32_t>(n), *size};
}

Result<uint64_t> parse_duration_s(std::string_view text, std::string_view flag) {
  std::string f(flag);
  auto bad = [&](const std::string& why) {
    return invalid_argument(f, f + ": invalid duration '" + std::string(text) + "': " + why +
                                   " (examples: 90s, 30m, 24h, 7d)");
  };
  if (text.empty()) return bad("empty");
  if (text[0] == '-') return bad("must not be negative");
  size_t pos = 0;
  uint64_t total = 0;
  while (pos < text.size()) {
    uint64_t n = 0;
    if (!read_number(text, pos, n)) return bad("expected a number");
    uint64_t mult = 1;
    if (pos < text.size()) {
      switch (std::tolower(static_cast<unsigned char>(text[pos]))) {
        case 's':
          mult = 1;
          break;
        case 'm':
          mult = 60;
          break;
        case 'h':
          mult = 3600;
          break;
        case 'd':
          mult = 86400;
          break;
        default:
          return bad("unknown unit '" + std::string(1, text[pos]) + "'");
      }
      ++pos;
    } else if (total != 0) {
      return bad("a unit is needed after each number");
    }
    if (n > (kMax - total) / mult) return bad("too large");
    total += n * mult;
  }
  if (total == 0) return bad("must be greater than zero");
  return total;
}

Result<std::pair<std::string, std::string>> parse_key_value(std::string_view text,
                                                            std::string_view flag) {
  auto eq = text.find('=');
  std::string f(flag);
  if (eq == std::string_view::npos || eq == 0)
    return invalid_argument(f, f + ": expected key=value, got '" + std::string(text) + "'");
  return std::pair{std::string(text.substr(0, eq)), std::string(text.substr(eq + 1))};
}

std::string format_bytes(uint64_t bytes) {
  static constexpr const char* kUnits[] = {"B", "K", "M", "G", "T", "P"};
  int u = 0;
  double v = static_cast<double>(bytes);
  while (v >= 1024.0 && u < 5) {
    v /= 1024.0;
    ++u;
  }
  char buf[32];
  if (u == 0 || v >= 100.0 || v == static_cast<double>(static_cast<uint64_t>(v)))
    std::snprintf(buf, sizeof buf, "%.0f%s", v, kUnits[u]);
  else
    std::snprintf(buf, sizeof buf, "%.1f%s", v, kUnits[u]);
  return buf;
}

}  // namespace strata::cli
