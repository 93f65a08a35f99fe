// Periodic pruning of the event table (see event_retention.h).
#include "strata/manager/events/event_retention.h"

#include <cstdlib>

#include "strata/common/clock_wait.h"
#include "strata/common/log.h"

namespace strata::manager {

Result<std::chrono::milliseconds> parse_retention_age(const std::string& text) {
  if (text == "0") return std::chrono::milliseconds(0);
  if (text.size() < 2) return invalid_argument("event-max-age", "give N followed by d, h, m or s");
  char unit = text.back();
  std::string digits = text.substr(0, text.size() - 1);
  char* end = nullptr;
  long long n = std::strtoll(digits.c_str(), &end, 10);
  if (digits.empty() || *end != '\0' || n <= 0 || n > 36500LL * 24 * 3600)
    return invalid_argument("event-max-age", "give N followed by d, h, m or s (N > 0), or 0");
  using namespace std::chrono;
  switch (unit) {
    case 'd': return duration_cast<milliseconds>(hours(24) * n);
    case 'h': return duration_cast<milliseconds>(hours(n));
    case 'm': return duration_cast<milliseconds>(minutes(n));
    case 's': return duration_cast<milliseconds>(seconds(n));
    default: return invalid_argument("event-max-age", "unit must be d, h, m or s");
  }
}

EventRetention::EventRetention(store::Store& store, ClockPtr clock, EventRetentionConfig config)
    : store_(store),
      clock_(clock ? std::move(clock) : system_clock()),
      config_(config),
      thread_(clock_, config_.interval, [this] { (void)tick(); }) {
  if (config_.batch < 1) config_.batch = 1;
}

EventRetention::~EventRetention() { stop(); }

Result<int64_t> EventRetention::tick() {
  auto now = clock_->now();
  if (ran_ && now < next_) return int64_t{0};
  ran_ = true;
  next_ = now + config_.interval;
  if (config_.max_age.count() == 0 && config_.max_rows == 0) return int64_t{0};
  int64_t before_ms = 0;
  if (config_.max_age.count() > 0) {
    auto wall_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                       clock_->wall().time_since_epoch())
                       .count();
    before_ms = std::max<int64_t>(1, wall_ms - config_.max_age.count());
  }
  int64_t total = 0;
  // Bounded: a huge backlog is worked off over several ticks, never in one endless loop.
  for (int round = 0; round < 1000; ++round) {
    auto n = store_.prune_events(before_ms, config_.max_rows, config_.batch);
    if (!n) {
      logger("manager.events")->warn("event pruning failed error={}", n.error().to_string());
      return tl::unexpected(n.error());
    }
    total += *n;
    if (*n < config_.batch) break;
  }
  if (total > 0)
    logger("manager.events")
        ->info("events pruned count={} max_age_s={} max_rows={}", total,
               std::chrono::duration_cast<std::chrono::seconds>(config_.max_age).count(),
               config_.max_rows);
  return total;
}

void EventRetention::start() { thread_.start(); }

void EventRetention::stop() { thread_.stop(); }

}  // namespace strata::manager
