// A small fixed pool of worker threads with a bounded queue, for slow work (a process
// run, hashing a large file, calls to many hosts) that must not hold an I/O thread.
// submit() never blocks: a full queue is refused, so a flood of slow requests is
// answered "busy" instead of queueing without bound.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace strata {

class WorkPool {
 public:
  WorkPool(size_t threads, size_t max_queued);
  // Runs what is queued, then joins the threads.
  ~WorkPool();
  WorkPool(const WorkPool&) = delete;
  WorkPool& operator=(const WorkPool&) = delete;

  // Queues `job`; false (job not run) when max_queued jobs already wait or the pool stops.
  bool submit(std::function<void()> job);

 private:
  void run();

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;
  size_t max_queued_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace strata
