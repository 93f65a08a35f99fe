// One thread per long operation (a snapshot delete can take hours, so a fixed pool would
// hold the others back): started on demand, reaped as later ones start, joined at
// destruction. For services that run each task's work off the caller's thread.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace strata {

class TaskThreads {
 public:
  TaskThreads() = default;
  // Joins every thread still running. The work must not start() on this object.
  ~TaskThreads();
  TaskThreads(const TaskThreads&) = delete;
  TaskThreads& operator=(const TaskThreads&) = delete;

  // Runs `fn` on a new thread (joining the finished ones first).
  void start(std::function<void()> fn);

 private:
  struct Worker {
    std::thread thread;
    std::shared_ptr<std::atomic<bool>> done;
  };
  std::mutex mu_;  // guards workers_; held while joining (finished threads join at once)
  std::vector<Worker> workers_;
};

}  // namespace strata
