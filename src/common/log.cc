// Subsystem loggers on stderr.
#include "strata/common/log.h"

#include <mutex>

#include <spdlog/sinks/stdout_color_sinks.h>

namespace strata {

std::shared_ptr<spdlog::logger> logger(const std::string& subsystem) {
  static std::mutex mu;
  std::lock_guard lock(mu);
  if (auto l = spdlog::get(subsystem)) return l;
  auto l = spdlog::stderr_color_mt(subsystem);
  l->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %n %v");
  l->set_level(spdlog::get_level());
  return l;
}

bool set_log_level(const std::string& level) {
  auto lvl = spdlog::level::from_str(level);
  if (lvl == spdlog::level::off && level != "off") return false;
  spdlog::set_level(lvl);
  spdlog::apply_all([&](const std::shared_ptr<spdlog::logger>& l) { l->set_level(lvl); });
  return true;
}

}  // namespace strata
