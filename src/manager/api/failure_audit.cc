// Bounded audit of failed unauthenticated requests (see failure_audit.h).
#include "strata/manager/api/failure_audit.h"

#include <fmt/format.h>

#include <algorithm>
#include <vector>

#include "strata/manager/events/event_log.h"

namespace strata::manager {

namespace {

// The shared slot of the addresses past max_addresses (not a valid address).
const std::string kOthers = "*";

std::string from(const std::string& address) {
  if (address == kOthers) return "other addresses";
  return address.empty() ? std::string("unknown addresses") : address;
}

}  // namespace

namespace {

Clock::Duration tick_of(std::chrono::milliseconds window) {
  return std::max<Clock::Duration>(window / 4, std::chrono::milliseconds(1));
}

}  // namespace

FailureAudit::FailureAudit(EventLog* events, ClockPtr clock, FailureAuditConfig config)
    : events_(events),
      clock_(clock ? std::move(clock) : system_clock()),
      config_(config),
      timer_(clock_, tick_of(config_.window), [this] { flush_due(); }) {
  timer_.start();
}

FailureAudit::~FailureAudit() {
  timer_.stop();
  flush();
}

void FailureAudit::close_window(std::vector<Pending>& out) {
  auto secs = std::chrono::duration_cast<std::chrono::seconds>(config_.window).count();
  for (const auto& [address, t] : tallies_) {
    if (t.unlogged == 0) continue;
    out.push_back(Pending{
        t.action, t.target, "error",
        fmt::format("{} more failed attempts from {} within {} s, not logged one by one "
                    "(last: {}: {})",
                    t.unlogged, from(address), secs, t.result, t.message)});
  }
  tallies_.clear();
  open_ = false;
}

void FailureAudit::record(const std::string& address, const std::string& action,
                          const std::string& target, const std::string& result,
                          const std::string& message) {
  std::vector<Pending> out;
  {
    std::lock_guard lock(mu_);
    auto now = clock_->now();
    if (open_ && now - window_start_ >= config_.window) close_window(out);
    if (!open_) {
      open_ = true;
      window_start_ = now;
    }
    std::string key = address;
    if (key == kOthers || (!tallies_.count(key) && tallies_.size() >= config_.max_addresses))
      key = kOthers;
    auto [it, first] = tallies_.try_emplace(key);
    if (first) {
      std::string suffix = address.empty() ? "" : fmt::format(" (client {})", address);
      if (key == kOthers)
        suffix += fmt::format("; further failures from more than {} addresses are counted "
                              "together",
                              config_.max_addresses);
      out.push_back(Pending{action, target, result, message + suffix});
    } else {
      Tally& t = it->second;
      ++t.unlogged;
      t.action = action;
      t.target = target;
      t.result = result;
      t.message = message;
    }
  }
  write(out);
}

void FailureAudit::flush_due() {
  std::vector<Pending> out;
  {
    std::lock_guard lock(mu_);
    if (!open_ || clock_->now() - window_start_ < config_.window) return;
    close_window(out);
  }
  write(out);
}

void FailureAudit::flush() {
  std::vector<Pending> out;
  {
    std::lock_guard lock(mu_);
    if (open_) close_window(out);
  }
  write(out);
}

void FailureAudit::write(const std::vector<Pending>& events) {
  if (!events_) return;
  for (const auto& e : events)
    (void)events_->append("anonymous", e.action, e.target, e.result, e.message);
}

}  // namespace strata::manager
