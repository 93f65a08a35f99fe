// Lease renewal and the stale-task sweep (see task_leases.h).
#include "strata/manager/tasks/task_leases.h"

#include "strata/common/log.h"
#include "strata/manager/tasks/task_tracker.h"

namespace strata::manager {

Result<std::vector<store::TaskRecord>> find_stale_tasks(store::Store& store, int64_t now_ms,
                                                        std::chrono::milliseconds lease) {
  const int64_t before_ms = now_ms - lease.count();
  std::vector<store::TaskRecord> out;
  for (const char* state : {"pending", "running"}) {
    store::TaskListOptions o;
    o.state = state;
    auto tasks = store.list_tasks(o);
    if (!tasks) return tl::unexpected(tasks.error());
    for (auto& t : *tasks)
      if (is_in_process_task_kind(t.kind) && !task_is_terminal(t.state) && t.updated_ms < before_ms)
        out.push_back(std::move(t));
  }
  return out;
}

std::vector<store::TaskRecord> fail_stale_tasks(store::Store& store,
                                                const std::vector<store::TaskRecord>& stale) {
  auto log = logger("manager.tasks");
  std::vector<store::TaskRecord> failed;
  for (const auto& read : stale) {
    store::TaskRecord t = read;  // the version read: a renewal since makes this a conflict
    t.state = "failed";
    t.progress = 100;
    t.message = kStaleTaskMessage;
    auto u = store.update_task(t);
    if (!u) {
      if (u.error().code != ErrorCode::conflict && u.error().code != ErrorCode::not_found)
        log->warn("stale task not failed task={} kind={} error={}", t.id, t.kind,
                  u.error().to_string());
      continue;  // renewed, ended or deleted meanwhile: alive or done, not ours to fail
    }
    log->warn("stale task failed task={} kind={} target={}/{} last_update_ms={}", t.id, t.kind,
              t.target_kind, t.target_id, read.updated_ms);
    failed.push_back(std::move(*u));
  }
  return failed;
}

TaskLeases::TaskLeases(store::Store& store, ClockPtr clock, RunningTasks& running,
                       TaskLeaseConfig config,
                       std::function<void(const store::TaskRecord&)> on_failed)
    : store_(store),
      clock_(clock ? std::move(clock) : system_clock()),
      running_(running),
      config_(config),
      on_failed_(std::move(on_failed)),
      thread_(clock_, config_.renew_interval, [this] {
        renew();
        (void)sweep();
      }) {}

TaskLeases::~TaskLeases() { stop(); }

int64_t TaskLeases::now_ms() const {
  return std::chrono::duration_cast<std::chrono::milliseconds>(clock_->wall().time_since_epoch())
      .count();
}

int TaskLeases::renew() {
  int renewed = 0;
  for (const auto& id : running_.ids()) {  // copied: no store call under the registry's lock
    auto t = store_.get_task(id);
    if (!t || task_is_terminal(t->state)) continue;
    auto u = store_.update_task(*t);  // unchanged but for updated_ms (the store's clock)
    if (u) {
      ++renewed;
    } else if (u.error().code != ErrorCode::conflict) {
      logger("manager.tasks")
          ->warn("task lease not renewed task={} error={}", id, u.error().to_string());
    }
  }
  return renewed;
}

Result<std::vector<store::TaskRecord>> TaskLeases::sweep() {
  auto stale = find_stale_tasks(store_, now_ms(), config_.lease);
  if (!stale) {
    logger("manager.tasks")->warn("stale task sweep failed error={}", stale.error().to_string());
    return tl::unexpected(stale.error());
  }
  std::erase_if(*stale, [&](const store::TaskRecord& t) { return running_.contains(t.id); });
  auto failed = fail_stale_tasks(store_, *stale);
  if (on_failed_)
    for (const auto& t : failed) on_failed_(t);
  return failed;
}

void TaskLeases::start() { thread_.start(); }

void TaskLeases::stop() { thread_.stop(); }

}  // namespace strata::manager
