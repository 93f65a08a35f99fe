// Retention of the event table: events older than a maximum age, or beyond a maximum
// count, are deleted (oldest first, in batches) when a prune is due on the injected clock.
// Without it the table grows forever: every request and every VM transition appends one.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>

#include "strata/common/clock.h"
#include "strata/common/periodic.h"
#include "strata/common/error.h"
#include "strata/store/store.h"

namespace strata::manager {

struct EventRetentionConfig {
  // Events older than this are deleted; 0 keeps them whatever their age (--event-max-age).
  std::chrono::milliseconds max_age = std::chrono::hours(24 * 30);
  // At most this many events are kept; 0 means no count limit (--event-max-rows).
  int64_t max_rows = 1'000'000;
  // How often a prune runs.
  std::chrono::milliseconds interval = std::chrono::minutes(5);
  // Rows deleted per transaction: a large backlog never holds the database for long.
  int64_t batch = 10'000;
};

// Parses a --event-max-age value: N followed by d, h, m or s ("30d", "12h"), or "0" (no
// age limit).
Result<std::chrono::milliseconds> parse_retention_age(const std::string& text);

class EventRetention {
 public:
  EventRetention(store::Store& store, ClockPtr clock, EventRetentionConfig config);
  ~EventRetention();
  EventRetention(const EventRetention&) = delete;
  EventRetention& operator=(const EventRetention&) = delete;

  // Prunes when one is due on the clock (the first call always is), in batches until the
  // limits hold. Returns how many events it deleted (0 when not due).
  Result<int64_t> tick();

  // A thread that calls tick() every interval until stop().
  void start();
  void stop();

 private:
  store::Store& store_;
  ClockPtr clock_;
  EventRetentionConfig config_;
  bool ran_ = false;
  Clock::TimePoint next_{};

  // Declared last: stopped (joined) before the members its passes use are destroyed.
  PeriodicThread thread_;
};

}  // namespace strata::manager
