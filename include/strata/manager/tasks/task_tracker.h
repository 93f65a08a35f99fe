// Long-running operations as store TaskRecords: created by API handlers (202 + task),
// advanced by controllers, or run by the manager's own workers (in-process tasks, whose
// leases are renewed: running_tasks.h, task_leases.h). Updates retry compare-and-swap
// conflicts, since a task has one writer at a time but the API (or a lease renewal) may
// read-modify it concurrently.
#pragma once

#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "strata/common/error.h"
#include "strata/manager/tasks/task_kinds.h"
#include "strata/store/store.h"

namespace strata::manager {

class TaskTracker {
 public:
  explicit TaskTracker(store::Store& store) : store_(store) {}

  // A new pending task of a kind of the table (task_kinds.h).
  Result<store::TaskRecord> create(TaskKind kind, const std::string& target_kind,
                                   const std::string& target_id, const std::string& message = {});
  // Sets state/progress/message (and result when given). Terminal states are final:
  // updating a succeeded/failed task is a no-op returning the stored record.
  Result<store::TaskRecord> update(const std::string& id, const std::string& state,
                                   int progress, const std::string& message,
                                   const std::optional<nlohmann::json>& result = std::nullopt);
  Result<store::TaskRecord> succeed(const std::string& id, const std::string& message = "done");
  Result<store::TaskRecord> fail(const std::string& id, const std::string& message);

 private:
  store::Store& store_;
};

bool task_is_terminal(const std::string& state);
// Marks a task succeeded inside the caller's transaction `tx`, so the fact it reports (a VM
// record deleted, say) and its task commit together; a terminal task is left as it is.
Status succeed_task_in(store::Store& tx, const std::string& id, const std::string& message);
// Likewise: a new pending task, and a task failed, inside the caller's transaction.
Result<store::TaskRecord> create_task_in(store::Store& tx, TaskKind kind,
                                         const std::string& target_kind,
                                         const std::string& target_id,
                                         const std::string& message = {});
Status fail_task_in(store::Store& tx, const std::string& id, const std::string& message);
nlohmann::json to_json(const store::TaskRecord& t);

}  // namespace strata::manager
