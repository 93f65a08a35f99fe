// One reader of the event log for every live event stream (SSE). A thread of its own
// listens to EventLog appends, reads the new events from the store once, renders each SSE
// frame once and hands it to every subscriber (a queue push, never blocking). A new
// subscriber that resumes from an older sequence number is first caught up from the store
// in pages, each page only once its queue drained (ready()), then joins the live feed with
// no gap and no duplicate.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "strata/manager/events/event_log.h"

namespace strata::manager {

class EventSubscriber {
 public:
  virtual ~EventSubscriber() = default;
  // One event and its SSE frame; false when the subscriber is gone (it is then dropped).
  virtual bool deliver(const store::EventRecord& e, const std::string& sse_frame) = 0;
  // false once gone (dropped at the next pass).
  virtual bool alive() = 0;
  // While catching up: whether it can take another page now.
  virtual bool ready() = 0;
};

class EventFanout {
 public:
  explicit EventFanout(EventLog& log, int page = 500);
  ~EventFanout();
  EventFanout(const EventFanout&) = delete;
  EventFanout& operator=(const EventFanout&) = delete;

  // Delivers every event with seq > after, in order, until the subscriber is gone.
  void subscribe(std::shared_ptr<EventSubscriber> s, int64_t after);
  // Something changed for a subscriber (its queue drained, it closed): look again.
  void wake();
  // Ends the thread and drops every subscriber. Idempotent.
  void stop();

  size_t subscribers() const { return count_; }
  // Store reads made so far (live reads and catch-up pages): for tests.
  uint64_t store_reads() const { return reads_; }

 private:
  struct Sub {
    std::shared_ptr<EventSubscriber> s;
    int64_t cursor = 0;  // last seq delivered (or the resume point)
    bool live = false;
    bool gone = false;
  };
  void run();
  void read_live();
  bool catch_up();  // true: some subscriber has more pages

  EventLog& log_;
  const int page_;
  int listener_ = 0;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  bool new_events_ = false;
  bool woken_ = false;
  std::vector<Sub> incoming_;
  std::vector<Sub> subs_;  // the fan-out thread only
  int64_t seq_ = 0;        // the last event read by the live feed (fan-out thread only)
  std::atomic<size_t> count_{0};
  std::atomic<uint64_t> reads_{0};
  std::thread thread_;
};

}  // namespace strata::manager
