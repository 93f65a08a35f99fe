// TaskRecord creation and CAS-retried updates.
#include "strata/manager/tasks/task_tracker.h"

namespace strata::manager {

bool task_is_terminal(const std::string& state) {
  return state == "succeeded" || state == "failed";
}

Result<store::TaskRecord> TaskTracker::create(TaskKind kind, const std::string& target_kind,
                                              const std::string& target_id,
                                              const std::string& message) {
  return create_task_in(store_, kind, target_kind, target_id, message);
}

Result<store::TaskRecord> TaskTracker::update(const std::string& id, const std::string& state,
                                              int progress, const std::string& message,
                                              const std::optional<nlohmann::json>& result) {
  for (int attempt = 0; attempt < 5; ++attempt) {
    auto t = store_.get_task(id);
    if (!t) return t;
    if (task_is_terminal(t->state)) return t;
    t->state = state;
    t->progress = std::clamp(progress, 0, 100);
    t->message = message;
    if (result) t->result = result->dump();
    auto u = store_.update_task(*t);
    if (u || u.error().code != ErrorCode::conflict) return u;
  }
  return make_error(ErrorCode::conflict, "task " + id + " kept changing");
}

Result<store::TaskRecord> TaskTracker::succeed(const std::string& id, const std::string& message) {
  return update(id, "succeeded", 100, message);
}

namespace {

Status finish_task_in(store::Store& tx, const std::string& id, const std::string& state,
                      const std::string& message) {
  auto t = tx.get_task(id);
  if (!t) return t.error().code == ErrorCode::not_found ? Status{} : tl::unexpected(t.error());
  if (task_is_terminal(t->state)) return {};
  t->state = state;
  t->progress = 100;
  t->message = message;
  auto u = tx.update_task(*t);
  if (!u) return tl::unexpected(u.error());
  return {};
}

}  // namespace

Status succeed_task_in(store::Store& tx, const std::string& id, const std::string& message) {
  return finish_task_in(tx, id, "succeeded", message);
}

Status fail_task_in(store::Store& tx, const std::string& id, const std::string& message) {
  return finish_task_in(tx, id, "failed", message);
}

Result<store::TaskRecord> create_task_in(store::Store& tx, TaskKind kind,
                                         const std::string& target_kind,
                                         const std::string& target_id, const std::string& message) {
  store::TaskRecord t;
  t.kind = std::string(task_kind_name(kind));
  t.target_kind = target_kind;
  t.target_id = target_id;
  t.message = message;
  return tx.create_task(t);
}

Result<store::TaskRecord> TaskTracker::fail(const std::string& id, const std::string& message) {
  return update(id, "failed", 100, message);
}

nlohmann::json to_json(const store::TaskRecord& t) {
  nlohmann::json result = nlohmann::json::parse(t.result, nullptr, false);
  if (result.is_discarded()) result = nlohmann::json::object();
  return {{"id", t.id},
          {"kind", t.kind},
          {"target", t.target_kind + "/" + t.target_id},
          {"target_kind", t.target_kind},
          {"target_id", t.target_id},
          {"state", t.state},
          {"progress", t.progress},
          {"message", t.message},
          {"result", result},
          {"resource_version", t.resource_version},
          {"created_ms", t.created_ms},
          {"updated_ms", t.updated_ms}};
}

}  // namespace strata::manager
