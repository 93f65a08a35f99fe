// In-process tasks: the task kinds whose work runs on this manager's own threads (a
// service worker, or the request that made it) instead of being advanced by a controller
// reconciling desired state, and the registry of those this process is running now.
// A task of such a kind is alive only while some manager runs it: if that process dies
// (kill -9) nothing else will ever end it, so the running manager renews each registered
// task's `updated_ms` (a lease) and a sweep fails the ones nobody renews (task_leases.h).
#pragma once

#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "strata/manager/tasks/task_kinds.h"

namespace strata::manager {

// Whether a task of this kind (TaskRecord::kind) is one the sweep may fail: in
// kInProcessTaskKinds (task_kinds.h, derived from the table of every kind).
bool is_in_process_task_kind(std::string_view kind);

// The in-process tasks this manager runs now (by task id). Each one registers through a
// Guard held for as long as its work runs, so an early return or an exception cannot
// leave it registered (renewed forever) or take it out early.
class RunningTasks {
 public:
  class Guard {
   public:
    Guard() = default;
    ~Guard();
    Guard(Guard&& o) noexcept;
    Guard& operator=(Guard&& o) noexcept;
    Guard(const Guard&) = delete;
    Guard& operator=(const Guard&) = delete;

   private:
    friend class RunningTasks;
    Guard(RunningTasks* registry, std::string id);  // through enter() only
    void release();
    RunningTasks* registry_ = nullptr;
    std::string id_;
  };

  RunningTasks() = default;
  RunningTasks(const RunningTasks&) = delete;
  RunningTasks& operator=(const RunningTasks&) = delete;

  // Registers the task `id`, of kind `kind`, until the guard goes. `kind` must be an
  // in-process kind at compile time (InProcessTaskKind): a worker cannot hold a lease on a
  // kind the sweep would not fail, nor run a kind missing from the table. A null registry
  // (a service built without one, as in unit tests) gives a guard that does nothing.
  static Guard enter(RunningTasks* registry, InProcessTaskKind kind, std::string id) {
    (void)kind;
    return Guard(registry, std::move(id));
  }

  std::vector<std::string> ids() const;
  bool contains(const std::string& id) const;

 private:
  void add(const std::string& id);
  void remove(const std::string& id);

  // Lock rules: mu_ guards count_ and nothing else. It is a leaf lock: held only for a
  // map operation, never across a store call, an agent call or a callback, and no other
  // lock is taken under it. The renewal copies ids() and writes with it released.
  mutable std::mutex mu_;
  std::map<std::string, int> count_;  // id -> guards held (a retried id may register twice)
};

}  // namespace strata::manager
