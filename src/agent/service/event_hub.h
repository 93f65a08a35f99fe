// Fans the hypervisor's single event callback out to every WatchEvents stream.
// Held by shared_ptr; the callback registered with the hypervisor keeps only a weak_ptr,
// because Hypervisor::watch has no unregister and may outlive the service.
#pragma once

#include <memory>
#include <mutex>
#include <vector>

#include "strata/agent/hypervisor.h"
#include "stream_queue.h"

namespace strata::agent::service {

class EventHub {
 public:
  using Queue = StreamQueue<VmEvent>;
  static constexpr size_t kQueueCapacity = 4096;

  std::shared_ptr<Queue> subscribe() {
    auto q = std::make_shared<Queue>(kQueueCapacity);
    std::lock_guard lock(mu_);
    if (closed_) q->close();
    subscribers_.push_back(q);
    return q;
  }

  void unsubscribe(const std::shared_ptr<Queue>& q) {
    std::lock_guard lock(mu_);
    std::erase(subscribers_, q);
  }

  void publish(const VmEvent& event) {
    std::lock_guard lock(mu_);
    for (auto& q : subscribers_) q->push(event);
  }

  void close_all() {
    std::lock_guard lock(mu_);
    closed_ = true;
    for (auto& q : subscribers_) q->close();
  }

 private:
  std::mutex mu_;
  bool closed_ = false;
  std::vector<std::shared_ptr<Queue>> subscribers_;
};

}  // namespace strata::agent::service
