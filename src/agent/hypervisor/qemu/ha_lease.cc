// HA leases: the file format and the shim's verdict (see ha_lease.h).
#include "ha_lease.h"

#include <time.h>

#include <charconv>
#include <fstream>
#include <sstream>

namespace strata::agent::qemu {

int64_t lease_clock_ms() {
  struct timespec ts {};
  ::clock_gettime(CLOCK_BOOTTIME, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

std::string format_lease(int64_t expires_ms) {
  return "expires_boottime_ms=" + std::to_string(expires_ms) + "\n";
}

std::optional<int64_t> parse_lease(std::string_view text) {
  constexpr std::string_view kKey = "expires_boottime_ms=";
  if (text.substr(0, kKey.size()) != kKey) return std::nullopt;
  text.remove_prefix(kKey.size());
  if (!text.empty() && text.back() == '\n') text.remove_suffix(1);
  if (text.empty() || text.size() > 19) return std::nullopt;
  int64_t v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size() || v < 0) return std::nullopt;
  return v;
}

LeaseVerdict judge_lease(const std::optional<std::string>& file, int64_t now_ms) {
  if (!file) return LeaseVerdict::none;
  auto expires = parse_lease(*file);
  if (!expires || now_ms >= *expires) return LeaseVerdict::expired;
  return LeaseVerdict::valid;
}

LeaseVerdict read_lease_verdict(const std::string& vm_dir) {
  std::ifstream in(vm_dir + "/" + kLeaseFile, std::ios::binary);
  std::optional<std::string> text;
  if (in) {
    std::string s(64, '\0');
    in.read(s.data(), static_cast<std::streamsize>(s.size()));
    s.resize(static_cast<size_t>(in.gcount()));
    text = std::move(s);
  }
  return judge_lease(text, lease_clock_ms());
}

}  // namespace strata::agent::qemu
