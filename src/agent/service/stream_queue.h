// A bounded hand-off queue between a producer callback (hypervisor events, console bytes)
// and one gRPC streaming handler thread. Overflow closes the queue instead of blocking the
// producer: a client too slow to keep up is disconnected and resynchronises.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>

namespace strata::agent::service {

template <typename T>
class StreamQueue {
 public:
  explicit StreamQueue(size_t capacity) : capacity_(capacity) {}

  // Returns false (and closes the queue as overflowed) when full.
  bool push(T item) {
    bool accepted = false;
    {
      std::lock_guard lock(mu_);
      if (closed_) return false;
      if (items_.size() >= capacity_) {
        closed_ = true;
        overflowed_ = true;
      } else {
        items_.push_back(std::move(item));
        accepted = true;
      }
    }
    cv_.notify_all();
    return accepted;
  }

  void close() {
    {
      std::lock_guard lock(mu_);
      closed_ = true;
    }
    cv_.notify_all();
  }

  // Waits up to `timeout` for an item. nullopt on timeout or when closed and drained.
  std::optional<T> pop_for(std::chrono::milliseconds timeout) {
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, timeout, [&] { return !items_.empty() || closed_; });
    if (items_.empty()) return std::nullopt;
    T item = std::move(items_.front());
    items_.pop_front();
    return item;
  }

  bool closed() const {
    std::lock_guard lock(mu_);
    return closed_ && items_.empty();
  }
  bool overflowed() const {
    std::lock_guard lock(mu_);
    return overflowed_;
  }

 private:
  size_t capacity_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<T> items_;
  bool closed_ = false;
  bool overflowed_ = false;
};

}  // namespace strata::agent::service
