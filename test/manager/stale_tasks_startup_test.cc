// A manager killed mid-operation (kill -9) leaves its in-process tasks pending or running in
// the store. The next start fails those whose lease ran out, before the API serves, and
// leaves controller-driven tasks and recently renewed ones (a live peer's, on a shared
// store) as they are.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "strata/manager/manager.h"
#include "strata/manager/tasks/task_leases.h"
#include "strata/store/store.h"

namespace strata::manager {
namespace {

namespace fs = std::filesystem;

TEST(StaleTasksAtStartup, APreviousProcesssInProcessTasksAreFailed) {
  std::string dir = (fs::temp_directory_path() / "strata-stale-tasks-XXXXXX").string();
  ASSERT_TRUE(::mkdtemp(dir.data()));
  const std::string url = "sqlite:" + dir + "/strata.db";

  // "The previous process": its tasks written straight into the store, an hour ago (and
  // one renewed a moment ago, as a live peer's would be).
  auto past = std::make_shared<ManualClock>();
  past->advance(std::chrono::duration_cast<Clock::Duration>(
      std::chrono::system_clock::now().time_since_epoch() - std::chrono::hours(1)));
  std::string import_id, backup_id, start_id, peer_id;
  {
    auto s = store::open_store(url, store::StoreOptions{past, 1});
    ASSERT_TRUE(s) << s.error().to_string();
    auto make = [&](const std::string& kind, const std::string& state) {
      store::TaskRecord t;
      t.kind = kind;
      t.target_kind = "vm";
      t.target_id = "web";
      t.message = "working";
      auto c = (*s)->create_task(t);
      EXPECT_TRUE(c) << c.error().to_string();
      if (state != "pending") {
        c->state = state;
        c = (*s)->update_task(*c);
      }
      return c->id;
    };
    import_id = make("vm.import", "running");
    backup_id = make("backup.create", "pending");
    start_id = make("vm.start", "running");  // a controller's: resumed, never swept
    past->advance(std::chrono::hours(1));    // now
    peer_id = make("backup.verify", "running");
  }

  ManagerConfig cfg;
  cfg.data_dir = dir;
  cfg.listen = "127.0.0.1:0";
  cfg.http_threads = 1;
  auto m = start_manager(cfg);
  ASSERT_TRUE(m) << m.error().to_string();
  (*m)->stop();
  m->reset();

  auto s = store::open_store(url, store::StoreOptions{past, 1});
  ASSERT_TRUE(s) << s.error().to_string();
  for (const auto& id : {import_id, backup_id}) {
    auto t = (*s)->get_task(id);
    ASSERT_TRUE(t);
    EXPECT_EQ(t->state, "failed") << t->kind;
    EXPECT_EQ(t->message, "the manager running this task stopped") << t->kind;
  }
  EXPECT_EQ((*s)->get_task(start_id)->state, "running") << "controller tasks are not swept";
  EXPECT_EQ((*s)->get_task(peer_id)->state, "running") << "a renewed task is alive";
  size_t stale_events = 0;
  auto events = (*s)->list_events(0, 0);
  ASSERT_TRUE(events);
  for (const auto& e : *events) stale_events += e.action == "task.stale";
  EXPECT_EQ(stale_events, 2u);
  s->reset();
  fs::remove_all(dir);
}

}  // namespace
}  // namespace strata::manager
