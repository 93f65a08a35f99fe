// The in-process task kinds and the registry of those running here (see running_tasks.h).
#include "strata/manager/tasks/running_tasks.h"

#include <algorithm>

namespace strata::manager {

bool is_in_process_task_kind(std::string_view kind) {
  return std::find(kInProcessTaskKinds.begin(), kInProcessTaskKinds.end(), kind) !=
         kInProcessTaskKinds.end();
}

RunningTasks::Guard::Guard(RunningTasks* registry, std::string id)
    : registry_(registry), id_(std::move(id)) {
  if (registry_) registry_->add(id_);
}

RunningTasks::Guard::~Guard() { release(); }

RunningTasks::Guard::Guard(Guard&& o) noexcept : registry_(o.registry_), id_(std::move(o.id_)) {
  o.registry_ = nullptr;
}

RunningTasks::Guard& RunningTasks::Guard::operator=(Guard&& o) noexcept {
  if (this != &o) {
    release();
    registry_ = o.registry_;
    id_ = std::move(o.id_);
    o.registry_ = nullptr;
  }
  return *this;
}

void RunningTasks::Guard::release() {
  if (registry_) registry_->remove(id_);
  registry_ = nullptr;
}

void RunningTasks::add(const std::string& id) {
  std::lock_guard lk(mu_);
  ++count_[id];
}

void RunningTasks::remove(const std::string& id) {
  std::lock_guard lk(mu_);
  auto it = count_.find(id);
  if (it != count_.end() && --it->second <= 0) count_.erase(it);
}

std::vector<std::string> RunningTasks::ids() const {
  std::lock_guard lk(mu_);
  std::vector<std::string> out;
  out.reserve(count_.size());
  for (const auto& [id, n] : count_) out.push_back(id);
  return out;
}

bool RunningTasks::contains(const std::string& id) const {
  std::lock_guard lk(mu_);
  return count_.count(id) > 0;
}

}  // namespace strata::manager
