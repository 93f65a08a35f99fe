// The audit trail of failed unauthenticated requests (host enrollment with a bad join
// token): anyone can cause them, so they are written in a bounded way. Per window (a
// minute by default) the first failure from each client address is written as it happens,
// for up to `max_addresses` addresses (failures from further addresses share one slot);
// the later failures of a window are counted, and one summary event per address ("N more
// failed attempts from ADDR") is written when the window has passed: at most
// 2 * (max_addresses + 1) events per window, whatever the traffic.
// The summaries are written by a timer on the injected clock (a PeriodicThread ticking every
// quarter window), so the last burst is summed up within 1.25 windows of its first failure
// even when no request follows it; the next request after a window also writes them.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "strata/common/clock.h"
#include "strata/common/periodic.h"

namespace strata::manager {

class EventLog;

struct FailureAuditConfig {
  std::chrono::milliseconds window{std::chrono::minutes(1)};
  size_t max_addresses = 64;
};

class FailureAudit {
 public:
  // Starts the summary timer.
  FailureAudit(EventLog* events, ClockPtr clock, FailureAuditConfig config = {});
  ~FailureAudit();  // stops the timer, writes what is still counted

  // One failed attempt of `action` on `target` from `address` ("" when unknown).
  void record(const std::string& address, const std::string& action, const std::string& target,
              const std::string& result, const std::string& message);
  // Writes the summaries of a window that has passed (cheap when none has).
  void flush_due();
  // Writes the summaries now.
  void flush();

 private:
  struct Tally {
    uint64_t unlogged = 0;
    std::string action, target, result, message;  // of the last failure counted
  };
  struct Pending {
    std::string action, target, result, message;
  };
  // Under mu_: the summaries of the current window, which is then closed.
  void close_window(std::vector<Pending>& out);
  void write(const std::vector<Pending>& events);

  EventLog* events_;
  ClockPtr clock_;
  FailureAuditConfig config_;
  std::mutex mu_;
  bool open_ = false;
  Clock::TimePoint window_start_{};
  std::map<std::string, Tally> tallies_;  // this window's addresses, plus kOthers
  // Calls flush_due() every quarter window. Declared last: started once the rest is built.
  PeriodicThread timer_;
};

}  // namespace strata::manager
