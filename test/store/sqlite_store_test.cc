// Runs the Store contract suite on SQLite (a fresh database file per test), plus
// SQLite-only checks. Label: unit.
#include <sqlite3.h>
#include <stdlib.h>

#include <atomic>
#include <cstdio>
#include <vector>
#include <filesystem>
#include <future>
#include <optional>
#include <thread>
#include <tuple>

#include "common/tiny_tmpfs.h"
#include "store/sql/sql_store.h"
#include "store/sqlite/sqlite_db.h"
#include "store_contract.h"

namespace strata::store::testing {
namespace {

class SqliteBackend final : public TestBackend {
 public:
  SqliteBackend() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "strata-sqlite-XXXXXX").string();
    if (mkdtemp(tmpl.data())) dir_ = tmpl;
  }
  ~SqliteBackend() override {
    std::error_code ec;
    if (!dir_.empty()) std::filesystem::remove_all(dir_, ec);
  }
  std::string name() const override { return "sqlite"; }
  Result<std::string> fresh_url() override {
    if (dir_.empty()) return internal_error("mkdtemp failed");
    return "sqlite:" + dir_ + "/db" + std::to_string(++n_) + ".sqlite";
  }

 private:
  std::string dir_;
  int n_ = 0;
};

SqliteBackend* backend() {
  static SqliteBackend b;
  return &b;
}

INSTANTIATE_TEST_SUITE_P(Sqlite, StoreContractTest, ::testing::Values(backend()), backend_name);

TEST(SqliteStore, InMemoryDatabaseWorks) {
  auto s = open_store("sqlite::memory:");
  ASSERT_TRUE(s) << s.error().to_string();
  EXPECT_EQ((*s)->backend(), "sqlite");
  auto h = (*s)->create_host(host_named("mem"));
  ASSERT_TRUE(h) << h.error().to_string();
  EXPECT_EQ((*s)->get_host_by_name("mem")->id, h->id);
}

TEST(SqliteStore, UsingTheOuterStoreInsideATransactionFailsInsteadOfDeadlocking) {
  auto s = open_store("sqlite::memory:");
  ASSERT_TRUE(s);
  Store& outer = **s;
  auto st = outer.transaction([&](Store&) -> Status {
    auto r = outer.get_host_by_name("x");
    if (!r && r.error().code == ErrorCode::failed_precondition) return {};
    return make_error(ErrorCode::internal, "outer store did not refuse");
  });
  EXPECT_TRUE(st) << st.error().to_string();
}

// Reads outside a transaction run on the read connections: they do not wait for a write
// transaction that holds the writer (as the API's GETs must not wait for the controller's
// fsynced commits), see only committed data, and see a commit as soon as it returns.
TEST(SqliteStore, ReadsGoOnBesideAnOpenWriteTransaction) {
  auto s = open_store(*backend()->fresh_url());
  ASSERT_TRUE(s) << s.error().to_string();
  Store& store = **s;
  ASSERT_TRUE(store.create_host(host_named("committed")));
  std::promise<void> inside;
  std::promise<void> release;
  auto released = release.get_future();
  std::thread writer([&] {
    auto st = store.transaction([&](Store& tx) -> Status {
      auto h = tx.create_host(host_named("pending"));
      if (!h) return tl::unexpected(h.error());
      inside.set_value();
      // Bounded only so that a broken read path fails the test instead of hanging it.
      released.wait_for(std::chrono::seconds(60));
      return {};
    });
    EXPECT_TRUE(st) << st.error().to_string();
  });
  inside.get_future().wait();
  auto read = std::async(std::launch::async, [&] {
    auto committed = store.get_host_by_name("committed");
    auto pending = store.get_host_by_name("pending");
    auto list = store.list_hosts({});
    return std::make_tuple(committed.has_value(),
                           pending ? std::optional<ErrorCode>() : pending.error().code,
                           list ? list->size() : size_t{999});
  });
  const bool answered = read.wait_for(std::chrono::seconds(30)) == std::future_status::ready;
  release.set_value();
  writer.join();
  ASSERT_TRUE(answered) << "a read waited for the write transaction";
  auto [committed, pending_code, listed] = read.get();
  EXPECT_TRUE(committed);
  EXPECT_EQ(pending_code, std::optional<ErrorCode>(ErrorCode::not_found))
      << "an uncommitted row was visible";
  EXPECT_EQ(listed, 1u);
  // Committed: the very next read, on any connection, sees it.
  for (int i = 0; i < 2 * sqlite::kDefaultReadConnections; ++i)
    EXPECT_TRUE(store.get_host_by_name("pending")) << "read " << i;
}

// The read connections cannot write (PRAGMA query_only), whatever a caller asks.
TEST(SqliteStore, ReadConnectionsCannotWrite) {
  auto db = sqlite::open_sqlite_database(backend()->fresh_url()->substr(7));
  ASSERT_TRUE(db) << db.error().to_string();
  ASSERT_TRUE(sql::apply_migrations(**db, 1));
  auto lease = (*db)->acquire_read();
  ASSERT_TRUE(lease) << lease.error().to_string();
  auto r = (*lease)->exec("DELETE FROM hosts", {});
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("readonly"), std::string::npos) << r.error().to_string();
}

// As on ":memory:" (below): a read through the outer store inside a transaction is refused,
// not answered from a read connection that cannot see the transaction's own writes.
TEST(SqliteStore, OuterStoreReadInsideATransactionIsRefusedOnAFileToo) {
  auto s = open_store(*backend()->fresh_url());
  ASSERT_TRUE(s);
  Store& outer = **s;
  auto st = outer.transaction([&](Store& tx) -> Status {
    if (auto h = tx.create_host(host_named("x")); !h) return tl::unexpected(h.error());
    auto r = outer.get_host_by_name("x");
    if (!r && r.error().code == ErrorCode::failed_precondition) return {};
    return make_error(ErrorCode::internal, "outer store did not refuse");
  });
  EXPECT_TRUE(st) << st.error().to_string();
}

TEST(SqliteStore, ReadConnectionCountIsChecked) {
  auto db = sqlite::open_sqlite_database(backend()->fresh_url()->substr(7), 65);
  ASSERT_FALSE(db);
  EXPECT_EQ(db.error().code, ErrorCode::invalid_argument);
}

// Lookups by name and by host must use an index, or 10 000 VMs means full scans.
TEST(SqliteStore, NameAndHostLookupsUseIndexes) {
  std::string url = *backend()->fresh_url();
  auto s = open_store(url);
  ASSERT_TRUE(s) << s.error().to_string();
  sqlite3* raw = nullptr;
  ASSERT_EQ(sqlite3_open_v2(url.substr(7).c_str(), &raw, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
  std::unique_ptr<sqlite3, int (*)(sqlite3*)> db(raw, sqlite3_close);
  auto plan = [&](const char* sql) {
    sqlite3_stmt* st = nullptr;
    std::string out;
    if (sqlite3_prepare_v2(db.get(), sql, -1, &st, nullptr) != SQLITE_OK) return out;
    while (sqlite3_step(st) == SQLITE_ROW) {
      out += reinterpret_cast<const char*>(sqlite3_column_text(st, 3));
      out += "\n";
    }
    sqlite3_finalize(st);
    return out;
  };
  std::string by_host =
      plan("EXPLAIN QUERY PLAN SELECT id FROM vms WHERE host_id = ?1 ORDER BY id");
  EXPECT_NE(by_host.find("INDEX vms_host_id"), std::string::npos) << by_host;
  std::string by_name = plan("EXPLAIN QUERY PLAN SELECT id FROM vms WHERE name = ?1");
  EXPECT_NE(by_name.find("USING INDEX"), std::string::npos) << by_name;
  std::string page =
      plan("EXPLAIN QUERY PLAN SELECT id FROM vms WHERE id > ?1 ORDER BY id LIMIT 10");
  EXPECT_EQ(page.find("SCAN vms\n"), std::string::npos) << page;
  EXPECT_EQ(page.find("TEMP B-TREE"), std::string::npos) << page;
  // Keyset pages of a filtered list read the page from one index, in order (no sort of
  // every match): a host's VMs, a target's or a state's tasks.
  for (const char* sql :
       {"EXPLAIN QUERY PLAN SELECT id FROM vms WHERE host_id = ?1 AND id > ?2 ORDER BY id LIMIT ?3",
        "EXPLAIN QUERY PLAN SELECT id FROM tasks WHERE target_id = ?1 AND id > ?2 ORDER BY id "
        "LIMIT ?3",
        "EXPLAIN QUERY PLAN SELECT id FROM tasks WHERE state = ?1 AND id > ?2 ORDER BY id "
        "LIMIT ?3"}) {
    std::string p = plan(sql);
    EXPECT_NE(p.find("SEARCH"), std::string::npos) << sql << "\n" << p;
    EXPECT_NE(p.find("id>?"), std::string::npos) << sql << "\n" << p;
    EXPECT_EQ(p.find("TEMP B-TREE"), std::string::npos) << sql << "\n" << p;
  }
  // A host's VMs by name, both ways (the host page): the page from (host_id, name), no sort.
  for (const char* sql :
       {"EXPLAIN QUERY PLAN SELECT id FROM vms WHERE host_id = ?1 AND name > ?2 ORDER BY name "
        "LIMIT ?3",
        "EXPLAIN QUERY PLAN SELECT id FROM vms WHERE host_id = ?1 AND name < ?2 ORDER BY name "
        "DESC LIMIT ?3",
        "EXPLAIN QUERY PLAN SELECT id FROM vms WHERE host_id = ?1 ORDER BY name LIMIT ?2"}) {
    std::string p = plan(sql);
    EXPECT_NE(p.find("INDEX vms_host_id_name"), std::string::npos) << sql << "\n" << p;
    EXPECT_EQ(p.find("TEMP B-TREE"), std::string::npos) << sql << "\n" << p;
  }
}

TEST(OpenStore, RejectsUnknownUrls) {
  for (const char* url : {"mysql://x", "", "sqlite", "file:/tmp/x"}) {
    auto s = open_store(url);
    ASSERT_FALSE(s) << url;
    EXPECT_EQ(s.error().code, ErrorCode::invalid_argument) << url;
    EXPECT_EQ(s.error().field, "url");
  }
  auto empty_path = open_store("sqlite:");
  ASSERT_FALSE(empty_path);
  EXPECT_EQ(empty_path.error().code, ErrorCode::invalid_argument);
}

// stratad warns when --db carries a password (every local user reads it in ps).
TEST(OpenStore, UrlHasPasswordSpotsPasswordsOnly) {
  EXPECT_TRUE(url_has_password("postgres://u:pw@h/db"));
  EXPECT_TRUE(url_has_password("postgresql://u:pw@h:5432/db?sslmode=require"));
  EXPECT_TRUE(url_has_password("postgres://u@h/db?password=pw"));
  EXPECT_TRUE(url_has_password("postgres:host=/tmp user=u password=pw dbname=d"));
  EXPECT_FALSE(url_has_password("postgres://u@h/db"));
  EXPECT_FALSE(url_has_password("postgres://h:5432/db"));
  EXPECT_FALSE(url_has_password("postgres:host=/tmp user=u dbname=d"));
  EXPECT_FALSE(url_has_password("sqlite:/var/lib/strata/pw:x@y.db"));
}

TEST(OpenStore, UnreachableDirectoryIsAnError) {
  auto s = open_store("sqlite:/nonexistent-dir-strata/x/db.sqlite");
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code, ErrorCode::unavailable) << s.error().to_string();
}


// An acknowledged write must survive a power cut. COMMIT does not sync (WAL with
// synchronous=NORMAL); each write returns only once the write-ahead log was synced after it
// (group commit: one sync covers every commit made before it started).
TEST(SqliteStore, WritesAreDurableBeforeTheyReturnAndShareTheLogsSyncs) {
  const std::string path = backend()->fresh_url()->substr(7);
  auto db = sqlite::open_sqlite_database(path);
  ASSERT_TRUE(db) << db.error().to_string();
  {
    auto lease = (*db)->acquire();
    ASSERT_TRUE(lease);
    auto rows = (*lease)->query("PRAGMA synchronous", {});
    ASSERT_TRUE(rows) << rows.error().to_string();
    ASSERT_EQ(rows->size(), 1u);
    EXPECT_EQ(rows->at(0).int64(0), 1) << "1 = NORMAL: the store syncs the log itself";
  }
  ASSERT_TRUE(sql::apply_migrations(**db, 1));
  sql::SqlStore store(*db, system_clock(), nullptr);
  // One write alone: one sync, after it.
  const auto before = sqlite::wal_sync_stats(**db);
  ASSERT_TRUE(store.create_host(host_named("solo")));
  auto one = sqlite::wal_sync_stats(**db);
  EXPECT_EQ(one.commits, before.commits + 1);
  EXPECT_EQ(one.synced, one.commits) << "returned before its commit was synced";
  EXPECT_EQ(one.syncs, before.syncs + 1);
  // A read writes nothing and waits for no sync.
  ASSERT_TRUE(store.get_host_by_name("solo"));
  EXPECT_EQ(sqlite::wal_sync_stats(**db).syncs, one.syncs);
  // Many writers at once: each returns with its commit synced; never more syncs than
  // commits (how many fewer depends on the disk and the machine: printed, not asserted).
  constexpr int kThreads = 8, kEach = 25;
  std::vector<std::thread> threads;
  std::atomic<int> failed{0}, unsynced{0};
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) {
        // This write's commit comes after every commit counted before it started.
        const uint64_t earlier = sqlite::wal_sync_stats(**db).commits;
        if (!store.create_host(host_named("h" + std::to_string(t) + "-" + std::to_string(i))))
          ++failed;
        if (sqlite::wal_sync_stats(**db).synced < earlier + 1) ++unsynced;
      }
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(failed.load(), 0);
  EXPECT_EQ(unsynced.load(), 0);
  auto all = sqlite::wal_sync_stats(**db);
  EXPECT_EQ(all.commits, one.commits + kThreads * kEach);
  EXPECT_EQ(all.synced, all.commits);
  EXPECT_LE(all.syncs - one.syncs, static_cast<uint64_t>(kThreads * kEach));
  std::printf("group commit: %d commits from %d threads, %llu log syncs\n", kThreads * kEach,
              kThreads, static_cast<unsigned long long>(all.syncs - one.syncs));
  auto hosts = store.list_hosts({});
  ASSERT_TRUE(hosts);
  EXPECT_EQ(hosts->size(), 1u + kThreads * kEach);
  EXPECT_FALSE(store.create_host(host_named("solo"))) << "a refused write is still refused";
}

// The comparison knob of scripts/bench api: FULL syncs in COMMIT (no group commit).
TEST(SqliteStore, TheBenchesFullModeSyncsEachCommitItself) {
  ::setenv("STRATA_SQLITE_SYNCHRONOUS", "full", 1);
  auto db = sqlite::open_sqlite_database(backend()->fresh_url()->substr(7));
  ::unsetenv("STRATA_SQLITE_SYNCHRONOUS");
  ASSERT_TRUE(db) << db.error().to_string();
  auto lease = (*db)->acquire();
  ASSERT_TRUE(lease);
  auto rows = (*lease)->query("PRAGMA synchronous", {});
  ASSERT_TRUE(rows);
  EXPECT_EQ(rows->at(0).int64(0), 2) << "2 = FULL";
  ::setenv("STRATA_SQLITE_SYNCHRONOUS", "sometimes", 1);
  auto bad = sqlite::open_sqlite_database(backend()->fresh_url()->substr(7));
  ::unsetenv("STRATA_SQLITE_SYNCHRONOUS");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().field, "STRATA_SQLITE_SYNCHRONOUS");
}

TEST(SqliteStore, FullDiskIsAClearErrorAndCorruptsNothing) {
  strata::testing::TinyTmpfs tiny(2 * 1024 * 1024);
  if (!tiny.mounted()) GTEST_SKIP() << "SKIPPED: " << tiny.why_not();
  const std::string url = "sqlite:" + tiny.path() + "/strata.db";
  {
    auto s = open_store(url);
    ASSERT_TRUE(s) << s.error().to_string();
    ASSERT_TRUE((*s)->create_host(host_named("before")));
    tiny.fill();
    Error last;
    bool failed = false;
    for (int i = 0; i < 2000 && !failed; ++i) {
      HostRecord h = host_named("h" + std::to_string(i));
      h.inventory = "{\"pad\":\"" + std::string(16 * 1024, 'p') + "\"}";
      auto r = (*s)->create_host(h);
      if (!r) {
        failed = true;
        last = r.error();
      }
    }
    ASSERT_TRUE(failed) << "the writes never hit the full disk";
    EXPECT_EQ(last.code, ErrorCode::unavailable) << last.to_string();
    EXPECT_NE(last.message.find("disk is full"), std::string::npos) << last.to_string();
    // Reads still work on the full disk.
    EXPECT_TRUE((*s)->get_host_by_name("before")) << "reads must keep working";
  }
  std::filesystem::remove(tiny.path() + "/filler");
  auto s = open_store(url);
  ASSERT_TRUE(s) << s.error().to_string();
  auto before = (*s)->get_host_by_name("before");
  ASSERT_TRUE(before) << before.error().to_string();
  auto check = (*s)->transaction([](Store&) -> Status { return {}; });
  EXPECT_TRUE(check);
  EXPECT_TRUE((*s)->create_host(host_named("after"))) << "writes work again once space is freed";
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open((tiny.path() + "/strata.db").c_str(), &db), SQLITE_OK);
  sqlite3_stmt* st = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, nullptr), SQLITE_OK);
  ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
  EXPECT_STREQ(reinterpret_cast<const char*>(sqlite3_column_text(st, 0)), "ok");
  sqlite3_finalize(st);
  sqlite3_close(db);
}

}  // namespace
}  // namespace strata::store::testing
