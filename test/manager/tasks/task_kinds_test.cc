// The table of task kinds (task_kinds.h): the in-process list the sweep reads is derived
// from it, tasks are created under its names, and each kind has one owner. That a worker
// cannot hold a lease with a controller kind is checked by compiling
// (manager_task_kinds_compile, task_kinds_compile.cmake).
#include "strata/manager/tasks/task_kinds.h"

#include <gtest/gtest.h>

#include <set>
#include <string>

#include "strata/common/clock.h"
#include "strata/manager/tasks/running_tasks.h"
#include "strata/manager/tasks/task_tracker.h"

namespace strata::manager {
namespace {

TEST(TaskKinds, TheSweptListIsExactlyTheTablesInProcessKinds) {
  size_t in_process = 0;
  std::set<std::string_view> names;
  for (const auto& k : kTaskKinds) {
    EXPECT_TRUE(names.insert(k.name).second) << k.name << " twice";
    EXPECT_FALSE(k.runner.empty()) << k.name << ": say what advances it";
    EXPECT_EQ(is_in_process_task_kind(k.name), k.owner == TaskOwner::in_process) << k.name;
    EXPECT_EQ(is_in_process(k.kind), k.owner == TaskOwner::in_process) << k.name;
    in_process += k.owner == TaskOwner::in_process;
  }
  EXPECT_EQ(kInProcessTaskKinds.size(), in_process);
  for (auto name : kInProcessTaskKinds) EXPECT_TRUE(names.contains(name)) << name;
  // Kinds a restarted manager's controllers resume must never be swept.
  for (auto k :
       {TaskKind::vm_create, TaskKind::vm_start, TaskKind::vm_migrate, TaskKind::host_evacuate})
    EXPECT_FALSE(is_in_process_task_kind(task_kind_name(k))) << task_kind_name(k);
}

TEST(TaskKinds, TasksAreCreatedUnderTheTablesNames) {
  auto clock = std::make_shared<ManualClock>();
  auto s = store::open_store("sqlite::memory:", store::StoreOptions{clock, 1});
  ASSERT_TRUE(s) << s.error().to_string();
  TaskTracker tasks(**s);
  for (const auto& k : kTaskKinds) {
    auto t = tasks.create(k.kind, "vm", "vm-1");
    ASSERT_TRUE(t) << t.error().to_string();
    EXPECT_EQ(t->kind, k.name);
  }
}

TEST(TaskKinds, AnInProcessKindNamesItsEntry) {
  constexpr InProcessTaskKind k = TaskKind::backup_restore;
  static_assert(k.kind() == TaskKind::backup_restore);
  EXPECT_EQ(k.name(), "backup.restore");
  EXPECT_TRUE(is_in_process_task_kind(k.name()));
}

}  // namespace
}  // namespace strata::manager
