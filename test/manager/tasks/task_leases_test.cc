// Leases of in-process tasks on a ManualClock over SQLite in memory: a task nobody renews
// for a lease is failed by the sweep; a renewed one, one this manager runs, a controller
// task of the same age and a task renewed between the sweep's read and its write are not.
#include "strata/manager/tasks/task_leases.h"

#include <gtest/gtest.h>

#include <map>
#include <set>

#include "strata/manager/tasks/task_tracker.h"

namespace strata::manager {
namespace {

using namespace std::chrono_literals;

class TaskLeasesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    clock_->advance(std::chrono::hours(24 * 365 * 50));  // a wall time well after 1970
    auto s = store::open_store("sqlite::memory:", store::StoreOptions{clock_, 1});
    ASSERT_TRUE(s) << s.error().to_string();
    store_ = std::move(*s);
    cfg_.renew_interval = 60s;
    cfg_.lease = 5min;
  }
  store::TaskRecord make(TaskKind kind, const std::string& state = "running") {
    TaskTracker tasks(*store_);
    auto t = tasks.create(kind, "vm", "vm-1", "working");
    EXPECT_TRUE(t) << t.error().to_string();
    if (state != "pending") t = tasks.update(t->id, state, 40, "working");
    return *t;
  }
  store::TaskRecord get(const std::string& id) { return *store_->get_task(id); }

  std::shared_ptr<ManualClock> clock_ = std::make_shared<ManualClock>();
  store::StorePtr store_;
  RunningTasks running_;
  TaskLeaseConfig cfg_;
};

TEST(InProcessTaskKinds, TheWorkerKindsAreInAndTheControllerKindsOut) {
  for (const char* k :
       {"vm.import", "backup.create", "backup.verify", "backup.restore", "backup.sync",
        "vm.snapshot.create", "vm.clone", "vm.disk.resize", "host.fence"})
    EXPECT_TRUE(is_in_process_task_kind(k)) << k;
  for (const char* k : {"vm.create", "vm.start", "vm.stop", "vm.delete", "vm.migrate",
                        "host.evacuate", "vm.snapshot", ""})
    EXPECT_FALSE(is_in_process_task_kind(k)) << k;
}

TEST(RunningTasksGuard, RegistersForItsLifeAndMovesOwnership) {
  RunningTasks running;
  {
    auto g = RunningTasks::enter(&running, TaskKind::vm_clone, "t1");
    EXPECT_TRUE(running.contains("t1"));
    auto moved = std::move(g);
    EXPECT_TRUE(running.contains("t1"));
    {
      auto twice = RunningTasks::enter(&running, TaskKind::vm_clone,
                                       "t1");  // a second holder of the same id
    }
    EXPECT_TRUE(running.contains("t1")) << "the first guard still holds it";
  }
  EXPECT_FALSE(running.contains("t1"));
  EXPECT_TRUE(running.ids().empty());
  // An exception unwinding through the work unregisters too.
  try {
    auto g = RunningTasks::enter(&running, TaskKind::vm_clone, "t2");
    throw std::runtime_error("boom");
  } catch (const std::runtime_error&) {
  }
  EXPECT_FALSE(running.contains("t2"));
  auto none = RunningTasks::enter(nullptr, TaskKind::vm_clone, "t3");  // no registry: nothing to do
}

TEST_F(TaskLeasesTest, AStaleInProcessTaskIsFailedWithTheMessage) {
  TaskLeases leases(*store_, clock_, running_, cfg_);
  auto running = make(TaskKind::vm_import);
  auto pending = make(TaskKind::backup_create, "pending");
  clock_->advance(4min);
  ASSERT_TRUE(leases.sweep());
  EXPECT_EQ(get(running.id).state, "running") << "not a lease old yet";
  clock_->advance(1min + 1ms);
  auto failed = leases.sweep();
  ASSERT_TRUE(failed) << failed.error().to_string();
  EXPECT_EQ(failed->size(), 2u);
  for (const auto& id : {running.id, pending.id}) {
    auto t = get(id);
    EXPECT_EQ(t.state, "failed");
    EXPECT_EQ(t.message, kStaleTaskMessage);
    EXPECT_EQ(t.message, "the manager running this task stopped");
  }
}

TEST_F(TaskLeasesTest, ARenewedTaskIsNotFailed) {
  TaskLeases leases(*store_, clock_, running_, cfg_);
  auto t = make(TaskKind::backup_restore);
  auto guard = RunningTasks::enter(&running_, TaskKind::backup_restore, t.id);
  for (int minute = 0; minute < 10; ++minute) {
    clock_->advance(60s);
    EXPECT_EQ(leases.renew(), 1);
  }
  EXPECT_EQ(get(t.id).updated_ms,
            std::chrono::duration_cast<std::chrono::milliseconds>(clock_->wall().time_since_epoch())
                .count());
  EXPECT_EQ(get(t.id).message, "working") << "a renewal changes nothing but the time";
  // Renewed by another manager (a shared store): this one's registry does not hold it, the
  // lease's age alone keeps it alive.
  RunningTasks other;
  TaskLeases peer(*store_, clock_, other, cfg_);
  auto swept = peer.sweep();
  ASSERT_TRUE(swept);
  EXPECT_TRUE(swept->empty());
  EXPECT_EQ(get(t.id).state, "running");
}

TEST_F(TaskLeasesTest, ATaskThisManagerRunsIsNotFailedEvenUnrenewed) {
  TaskLeases leases(*store_, clock_, running_, cfg_);
  auto t = make(TaskKind::vm_clone);
  auto guard = RunningTasks::enter(&running_, TaskKind::vm_clone, t.id);
  clock_->advance(10min);  // the store refused the renewals, say
  ASSERT_TRUE(leases.sweep());
  EXPECT_EQ(get(t.id).state, "running");
}

TEST_F(TaskLeasesTest, EndedTasksAreNeitherRenewedNorSwept) {
  TaskLeases leases(*store_, clock_, running_, cfg_);
  auto t = make(TaskKind::backup_verify);
  TaskTracker(*store_).succeed(t.id, "verified");
  auto guard = RunningTasks::enter(&running_, TaskKind::backup_verify, t.id);
  clock_->advance(10min);
  EXPECT_EQ(leases.renew(), 0);
  ASSERT_TRUE(leases.sweep());
  EXPECT_EQ(get(t.id).state, "succeeded");
  EXPECT_EQ(get(t.id).message, "verified");
}

// Every kind of the table: a task of each, left a lease old with nobody holding it, is
// failed by the sweep exactly when its kind is in-process (every kind a worker can hold a
// lease with: RunningTasks::enter takes only those), and never when a controller owns it.
TEST_F(TaskLeasesTest, EveryKindOfTheTableIsSweptExactlyWhenItIsInProcess) {
  TaskLeases leases(*store_, clock_, running_, cfg_);
  std::map<std::string, TaskKindInfo> by_id;
  for (const auto& k : kTaskKinds) by_id.emplace(make(k.kind).id, k);
  clock_->advance(1h);
  auto failed = leases.sweep();
  ASSERT_TRUE(failed);
  std::set<std::string> swept;
  for (const auto& t : *failed) swept.insert(t.id);
  size_t in_process = 0;
  for (const auto& [id, k] : by_id) {
    const bool worker = k.owner == TaskOwner::in_process;
    in_process += worker;
    EXPECT_EQ(swept.contains(id), worker) << k.name << " (" << k.runner << ")";
    EXPECT_EQ(get(id).state, worker ? "failed" : "running") << k.name;
  }
  EXPECT_EQ(swept.size(), in_process);
  EXPECT_GT(in_process, 0u);
}

TEST_F(TaskLeasesTest, AControllerTaskOfTheSameAgeIsNotSwept) {
  TaskLeases leases(*store_, clock_, running_, cfg_);
  auto start = make(TaskKind::vm_start);
  auto migrate = make(TaskKind::vm_migrate, "pending");
  auto evacuate = make(TaskKind::host_evacuate);
  auto import = make(TaskKind::vm_import);
  clock_->advance(1h);
  auto failed = leases.sweep();
  ASSERT_TRUE(failed);
  ASSERT_EQ(failed->size(), 1u);
  EXPECT_EQ(failed->front().id, import.id);
  EXPECT_EQ(get(start.id).state, "running");
  EXPECT_EQ(get(migrate.id).state, "pending");
  EXPECT_EQ(get(evacuate.id).state, "running");
}

TEST_F(TaskLeasesTest, ATaskRenewedBetweenTheSweepsReadAndItsWriteIsNotFailed) {
  auto t = make(TaskKind::backup_sync);
  auto other = make(TaskKind::backup_sync);
  clock_->advance(6min);
  auto stale = find_stale_tasks(
      *store_,
      std::chrono::duration_cast<std::chrono::milliseconds>(clock_->wall().time_since_epoch())
          .count(),
      cfg_.lease);
  ASSERT_TRUE(stale);
  ASSERT_EQ(stale->size(), 2u);
  // Its manager renews it now, after the sweep read it.
  auto guard = RunningTasks::enter(&running_, TaskKind::backup_sync, t.id);
  TaskLeases owner(*store_, clock_, running_, cfg_);
  ASSERT_EQ(owner.renew(), 1);
  auto failed = fail_stale_tasks(*store_, *stale);
  ASSERT_EQ(failed.size(), 1u);
  EXPECT_EQ(failed.front().id, other.id);
  EXPECT_EQ(get(t.id).state, "running") << "the renewal must win over the stale read";
  EXPECT_EQ(get(other.id).state, "failed");
}

TEST_F(TaskLeasesTest, TheSweepTellsWhatItFailed) {
  std::vector<std::string> told;
  TaskLeases leases(*store_, clock_, running_, cfg_,
                    [&](const store::TaskRecord& t) { told.push_back(t.id); });
  auto t = make(TaskKind::vm_clone);
  clock_->advance(6min);
  ASSERT_TRUE(leases.sweep());
  ASSERT_EQ(told.size(), 1u);
  EXPECT_EQ(told.front(), t.id);
  told.clear();
  ASSERT_TRUE(leases.sweep());
  EXPECT_TRUE(told.empty()) << "a failed task is not failed again";
}

}  // namespace
}  // namespace strata::manager
