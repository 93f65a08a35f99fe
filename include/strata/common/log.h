// Logging: one spdlog logger per subsystem ("agent.qemu", "manager.api", ...).
// Messages are structured key=value: log->info("vm started name={} pid={}", name, pid).
#pragma once

#include <memory>
#include <string>

#include <spdlog/spdlog.h>

namespace strata {

// Returns (creating on first use) the logger for a subsystem. Thread-safe.
std::shared_ptr<spdlog::logger> logger(const std::string& subsystem);

// Sets the level for all loggers ("trace".."off"); returns false on an unknown level.
bool set_log_level(const std::string& level);

}  // namespace strata
