// Scheduler flag parsing (see scheduler_options.h).
#include "strata/manager/scheduler_options.h"

#include <fmt/format.h>

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <string>

namespace strata::manager {

namespace {

Result<double> parse_ratio(std::string_view flag, std::string_view value) {
  std::string text(value);
  std::string field(flag.substr(flag.find_first_not_of('-')));
  char* end = nullptr;
  errno = 0;
  double v = std::strtod(text.c_str(), &end);
  if (text.empty() || *end != '\0' || errno != 0 || !std::isfinite(v))
    return invalid_argument(field, fmt::format("{} must be a number, got '{}'", flag, value));
  if (!(v > 0) || v > kMaxOvercommit)
    return invalid_argument(
        field, fmt::format("{} must be > 0 and <= {}, got {}", flag, kMaxOvercommit, text));
  return v;
}

}  // namespace

bool is_scheduler_flag(std::string_view flag) {
  return flag == "--cpu-overcommit" || flag == "--memory-overcommit" || flag == "--placement";
}

Status set_scheduler_option(sched::SchedulerConfig& config, std::string_view flag,
                            std::string_view value) {
  if (flag == "--cpu-overcommit") {
    auto v = parse_ratio(flag, value);
    if (!v) return tl::unexpected(v.error());
    config.cpu_overcommit = *v;
  } else if (flag == "--memory-overcommit") {
    auto v = parse_ratio(flag, value);
    if (!v) return tl::unexpected(v.error());
    config.mem_overcommit = *v;
  } else if (flag == "--placement") {
    auto s = sched::weight_strategy_from_string(value);
    if (!s)
      return invalid_argument("placement",
                              fmt::format("--placement must be spread or pack, got '{}'", value));
    config.strategy = *s;
  } else {
    return invalid_argument("flag", fmt::format("{} is not a scheduler flag", flag));
  }
  return sched::validate_config(config);
}

}  // namespace strata::manager
