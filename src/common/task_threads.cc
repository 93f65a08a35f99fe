// TaskThreads (see task_threads.h).
#include "strata/common/task_threads.h"

namespace strata {

TaskThreads::~TaskThreads() {
  std::lock_guard lk(mu_);
  for (auto& w : workers_)
    if (w.thread.joinable()) w.thread.join();
}

void TaskThreads::start(std::function<void()> fn) {
  auto done = std::make_shared<std::atomic<bool>>(false);
  std::lock_guard lk(mu_);
  for (auto it = workers_.begin(); it != workers_.end();) {
    if (it->done->load()) {
      it->thread.join();
      it = workers_.erase(it);
    } else {
      ++it;
    }
  }
  workers_.push_back(Worker{std::thread([fn = std::move(fn), done] {
                              fn();
                              done->store(true);
                            }),
                            done});
}

}  // namespace strata
