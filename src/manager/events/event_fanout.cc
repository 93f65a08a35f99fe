// The SSE fan-out: one thread, one store read per batch of new events for all streams.
#include "strata/manager/events/event_fanout.h"

#include "strata/common/log.h"

namespace strata::manager {

EventFanout::EventFanout(EventLog& log, int page) : log_(log), page_(std::max(1, page)) {
  if (auto last = log_.last_seq()) seq_ = *last;
  listener_ = log_.add_listener([this] {
    {
      std::lock_guard lock(mu_);
      new_events_ = true;
    }
    cv_.notify_one();
  });
  thread_ = std::thread([this] { run(); });
}

EventFanout::~EventFanout() { stop(); }

void EventFanout::stop() {
  {
    std::lock_guard lock(mu_);
    if (stop_ && !thread_.joinable()) return;
    stop_ = true;
  }
  cv_.notify_one();
  if (thread_.joinable()) thread_.join();
  log_.remove_listener(listener_);
  std::lock_guard lock(mu_);
  incoming_.clear();
  subs_.clear();
  count_ = 0;
}

void EventFanout::subscribe(std::shared_ptr<EventSubscriber> s, int64_t after) {
  {
    std::lock_guard lock(mu_);
    if (stop_) return;
    incoming_.push_back(Sub{std::move(s), after, false, false});
    ++count_;
  }
  cv_.notify_one();
}

void EventFanout::wake() {
  {
    std::lock_guard lock(mu_);
    woken_ = true;
  }
  cv_.notify_one();
}

void EventFanout::run() {
  std::unique_lock lock(mu_);
  while (!stop_) {
    cv_.wait(lock, [&] { return stop_ || new_events_ || woken_ || !incoming_.empty(); });
    if (stop_) break;
    bool fresh = new_events_;
    new_events_ = woken_ = false;
    for (auto& in : incoming_) subs_.push_back(std::move(in));
    incoming_.clear();
    lock.unlock();
    // Newcomers already at the live position join the live read below (no read of their own).
    for (auto& s : subs_)
      if (!s.live && s.cursor >= seq_) s.live = true;
    if (fresh) read_live();
    bool more = catch_up();
    size_t before = subs_.size();
    std::erase_if(subs_, [](Sub& s) { return s.gone || !s.s->alive(); });
    lock.lock();
    count_ -= before - subs_.size();
    if (more) woken_ = true;  // more pages: another pass (ready() paces it)
  }
}

void EventFanout::read_live() {
  for (;;) {
    auto page = log_.list(seq_, page_);
    ++reads_;
    if (!page) {
      logger("manager.events")->warn("event fan-out read failed error={}",
                                     page.error().to_string());
      return;  // the next append retries
    }
    for (const auto& e : *page) {
      std::string frame = sse_frame(e);
      for (auto& s : subs_) {
        if (!s.live || s.gone || e.seq <= s.cursor) continue;
        if (s.s->deliver(e, frame))
          s.cursor = e.seq;
        else
          s.gone = true;
      }
      seq_ = std::max(seq_, e.seq);
    }
    if (static_cast<int>(page->size()) < page_) return;
  }
}

// A subscriber behind the live feed reads its own pages (one per pass, when it is ready),
// then goes live once it reached what the live feed has read.
bool EventFanout::catch_up() {
  bool more = false;
  for (auto& s : subs_) {
    if (s.live || s.gone) continue;
    if (s.cursor >= seq_) {
      s.live = true;
      continue;
    }
    if (!s.s->alive()) {
      s.gone = true;
      continue;
    }
    if (!s.s->ready()) continue;
    auto page = log_.list(s.cursor, page_);
    ++reads_;
    if (!page) {
      s.gone = true;
      continue;
    }
    for (const auto& e : *page) {
      if (!s.s->deliver(e, sse_frame(e))) {
        s.gone = true;
        break;
      }
      s.cursor = e.seq;
    }
    // A short page: nothing older is left (events may have been pruned in between).
    if (!s.gone && (s.cursor >= seq_ || static_cast<int>(page->size()) < page_)) {
      s.cursor = std::max(s.cursor, seq_);
      s.live = true;
    } else if (!s.gone) {
      more = true;
    }
  }
  return more;
}

}  // namespace strata::manager
