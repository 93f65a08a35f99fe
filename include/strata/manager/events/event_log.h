// The audit/event log: every mutating request and every controller/agent transition is
// appended to the store's event table (actor, action, target, result, message). Readers
// page with list(); live readers block in wait_after() until something newer lands, or
// listen (the SSE fan-out, event_fanout.h).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "strata/common/error.h"
#include "strata/store/store.h"

namespace strata::manager {

class EventLog {
 public:
  explicit EventLog(store::Store& store);

  // Appends and wakes live readers. Failures are logged and returned; callers on a request
  // path usually ignore them (the request already happened).
  Result<store::EventRecord> append(std::string actor, std::string action, std::string target,
                                    std::string result, std::string message = {});

  // For an event that commits with other writes: appended through the caller's
  // transaction `tx` (nobody is woken: it may still roll back); after the commit, call
  // published() with the stored event to wake live readers and listeners.
  static Result<store::EventRecord> append_in(store::Store& tx, std::string actor,
                                              std::string action, std::string target,
                                              std::string result, std::string message = {});
  void published(const store::EventRecord& stored);

  Result<std::vector<store::EventRecord>> list(int64_t after_seq, int limit);
  Result<int64_t> last_seq();

  // Events after `after_seq`; waits up to `timeout` for at least one. Empty on timeout.
  Result<std::vector<store::EventRecord>> wait_after(int64_t after_seq, int limit,
                                                     std::chrono::milliseconds timeout);
  // Wakes every waiter (shutdown).
  void wake_all();

  // Called (on the appending thread, after the commit) after every append; must be quick
  // and must not call back into the log. The SSE fan-out reads new events once for every
  // stream. Returns an id for remove_listener().
  int add_listener(std::function<void()> fn);
  void remove_listener(int id);

 private:
  store::Store& store_;
  std::mutex mu_;
  std::condition_variable cv_;
  int64_t latest_seq_ = 0;
  uint64_t generation_ = 0;
  std::mutex listeners_mu_;
  std::vector<std::pair<int, std::function<void()>>> listeners_;
  int next_listener_ = 1;
};

nlohmann::json to_json(const store::EventRecord& e);

// One SSE frame: "id: <seq>\nevent: <action>\ndata: <json>\n\n".
std::string sse_frame(const store::EventRecord& e);

}  // namespace strata::manager
