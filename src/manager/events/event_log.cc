// Event log on the store with a condition variable for live (SSE) readers.
#include "strata/manager/events/event_log.h"

#include <fmt/format.h>

#include "strata/common/log.h"

namespace strata::manager {

EventLog::EventLog(store::Store& store) : store_(store) {
  if (auto s = store_.last_event_seq()) latest_seq_ = *s;
}

Result<store::EventRecord> EventLog::append(std::string actor, std::string action,
                                            std::string target, std::string result,
                                            std::string message) {
  store::EventRecord e;
  e.actor = std::move(actor);
  e.action = std::move(action);
  e.target = std::move(target);
  e.result = std::move(result);
  e.message = std::move(message);
  auto stored = store_.append_event(e);
  if (!stored) {
    logger("manager.events")->warn("event append failed action={} error={}", e.action,
                                   stored.error().to_string());
    return stored;
  }
  published(*stored);
  return stored;
}

Result<store::EventRecord> EventLog::append_in(store::Store& tx, std::string actor,
                                               std::string action, std::string target,
                                               std::string result, std::string message) {
  store::EventRecord e;
  e.actor = std::move(actor);
  e.action = std::move(action);
  e.target = std::move(target);
  e.result = std::move(result);
  e.message = std::move(message);
  return tx.append_event(e);
}

void EventLog::published(const store::EventRecord& stored) {
  {
    std::lock_guard lock(mu_);
    latest_seq_ = std::max(latest_seq_, stored.seq);
    ++generation_;
  }
  cv_.notify_all();
  {
    // Under the lock, so that no listener runs after remove_listener() returned.
    std::lock_guard lock(listeners_mu_);
    for (const auto& l : listeners_) l.second();
  }
}

int EventLog::add_listener(std::function<void()> fn) {
  std::lock_guard lock(listeners_mu_);
  int id = next_listener_++;
  listeners_.emplace_back(id, std::move(fn));
  return id;
}

void EventLog::remove_listener(int id) {
  std::lock_guard lock(listeners_mu_);
  std::erase_if(listeners_, [id](const auto& l) { return l.first == id; });
}

Result<std::vector<store::EventRecord>> EventLog::list(int64_t after_seq, int limit) {
  return store_.list_events(after_seq, limit);
}

Result<int64_t> EventLog::last_seq() { return store_.last_event_seq(); }

Result<std::vector<store::EventRecord>> EventLog::wait_after(int64_t after_seq, int limit,
                                                            std::chrono::milliseconds timeout) {
  {
    std::unique_lock lock(mu_);
    uint64_t gen = generation_;
    if (latest_seq_ <= after_seq)
      cv_.wait_for(lock, timeout, [&] { return generation_ != gen || latest_seq_ > after_seq; });
    if (latest_seq_ <= after_seq) return std::vector<store::EventRecord>{};
  }
  return store_.list_events(after_seq, limit);
}

void EventLog::wake_all() {
  {
    std::lock_guard lock(mu_);
    ++generation_;
  }
  cv_.notify_all();
}

nlohmann::json to_json(const store::EventRecord& e) {
  return {{"seq", e.seq},       {"time_ms", e.time_ms}, {"actor", e.actor},
          {"action", e.action}, {"target", e.target},   {"result", e.result},
          {"message", e.message}};
}

std::string sse_frame(const store::EventRecord& e) {
  return fmt::format("id: {}\nevent: {}\ndata: {}\n\n", e.seq, e.action, to_json(e).dump());
}

}  // namespace strata::manager
