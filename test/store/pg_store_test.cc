// Runs the Store contract suite on a real PostgreSQL 15 (a throwaway cluster for the
// whole binary, a fresh database per test), plus PostgreSQL-only checks (reconnect
// after a server restart, the driver's prepared-statement cache, the pool under
// concurrent use). Label: pg. Skips with the reason when no cluster can start.
#include <sys/stat.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>
#include <vector>

#include "pg_cluster.h"
#include "store/postgres/pg_db.h"
#include "store_contract.h"

namespace strata::store::testing {
namespace {

class PgBackend final : public TestBackend {
 public:
  std::string name() const override { return "postgres"; }
  Result<std::string> fresh_url() override {
    if (!started_) {
      started_ = true;
      auto c = PgCluster::start();
      if (c) {
        cluster_ = std::move(*c);
      } else {
        error_ = c.error();
      }
    }
    if (!cluster_) return tl::unexpected(error_);
    return cluster_->create_database();
  }
  PgCluster* cluster() { return cluster_.get(); }
  void stop() { cluster_.reset(); }

 private:
  bool started_ = false;
  std::unique_ptr<PgCluster> cluster_;
  Error error_;
};

PgBackend* backend() {
  static PgBackend b;
  return &b;
}

// Stops and removes the cluster at the end of the run (before static destruction).
class StopCluster : public ::testing::Environment {
 public:
  void TearDown() override { backend()->stop(); }
};
const auto* const kStop = ::testing::AddGlobalTestEnvironment(new StopCluster);  // gtest owns it

INSTANTIATE_TEST_SUITE_P(Postgres, StoreContractTest, ::testing::Values(backend()), backend_name);

class PgStoreTest : public StoreContractTest {};

TEST_P(PgStoreTest, RecoversAfterServerRestart) {
  for (int i = 0; i < 4; ++i) {  // fill the pool with connections
    STORE_ASSERT_OK(store_->create_host(host_named("h" + std::to_string(i))));
  }
  ASSERT_TRUE(backend()->cluster()->restart());
  // Reads retry once on a fresh connection: they succeed straight away.
  auto h = store_->get_host_by_name("h1");
  STORE_ASSERT_OK(h);
  // A write on a connection that lost the server may fail once with unavailable (it is
  // not retried: it might have committed); after that every connection was checked.
  for (int i = 0; i < 3; ++i) {
    auto w = store_->create_host(host_named("after-" + std::to_string(i)));
    if (!w) {
      EXPECT_EQ(w.error().code, ErrorCode::unavailable) << w.error().to_string();
    }
  }
  for (int i = 0; i < 10; ++i) {
    STORE_ASSERT_OK(store_->create_host(host_named("later-" + std::to_string(i))));
  }
  STORE_ASSERT_OK(store_->ping());
}

TEST_P(PgStoreTest, UnreachableServerIsUnavailable) {
  auto s = open_store("postgresql://strata@/nodb?host=/nonexistent-strata-dir&port=1");
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code, ErrorCode::unavailable) << s.error().to_string();
}

// stratad --db-password-file and PGPASSFILE: a role that must give a password connects
// with the one passed beside the URL (what the flag reads from its owner-only file) or
// with libpq's PGPASSFILE, and without either is refused. No password is on a command line.
TEST_P(PgStoreTest, PasswordFromTheFlagOrPgpassfileNeverTheUrl) {
  ASSERT_TRUE(backend()->cluster()->add_password_role("pwuser", "s3cretpw42"));
  std::string url = url_;
  auto at = url.find("strata@");
  ASSERT_NE(at, std::string::npos) << url;
  url.replace(at, 7, "pwuser@");
  std::string dir = "/tmp/strata-pgpass-" + std::to_string(::getpid());
  std::filesystem::create_directories(dir);
  const char* old_env = std::getenv("PGPASSFILE");
  std::string saved = old_env ? old_env : "";
  ::setenv("PGPASSFILE", (dir + "/none").c_str(), 1);  // neither ~/.pgpass nor another
  auto without = open_store(url);
  EXPECT_FALSE(without) << "connected without a password";
  StoreOptions o;
  auto with_flag = open_store(url, o, "s3cretpw42");
  ASSERT_TRUE(with_flag) << with_flag.error().to_string();
  STORE_ASSERT_OK((*with_flag)->ping());
  auto wrong = open_store(url, o, "wrong");
  EXPECT_FALSE(wrong);
  std::string pgpass = dir + "/pgpass";
  std::ofstream(pgpass) << "*:*:*:pwuser:s3cretpw42\n";
  ::chmod(pgpass.c_str(), 0600);  // libpq ignores a looser one
  ::setenv("PGPASSFILE", pgpass.c_str(), 1);
  auto with_file = open_store(url);
  EXPECT_TRUE(with_file) << with_file.error().to_string();
  if (old_env) ::setenv("PGPASSFILE", saved.c_str(), 1);
  else ::unsetenv("PGPASSFILE");
  std::filesystem::remove_all(dir);
  EXPECT_FALSE(url_has_password(url));
  EXPECT_TRUE(url_has_password("postgresql://pwuser:s3cretpw42@/db"));
}

// The driver prepares each distinct statement once per connection (PQprepare, then
// PQexecPrepared): the server parses and plans it once, not on every call.
TEST_P(PgStoreTest, PreparesARepeatedStatementOncePerConnection) {
  auto db = postgres::open_pg_database(url_, 1);
  STORE_ASSERT_OK(db);
  auto lease = (*db)->acquire();
  STORE_ASSERT_OK(lease);
  sql::SqlConnection& c = **lease;
  STORE_ASSERT_OK(c.exec("CREATE TABLE t (id BIGINT PRIMARY KEY, v TEXT)", {}));
  const std::string insert = "INSERT INTO t (id, v) VALUES ($1, $2)";
  // One text run with a NULL and with a value in the same position (two parameter type
  // lists, so two statements).
  STORE_ASSERT_OK(c.exec(insert, {int64_t{1}, nullptr}));
  STORE_ASSERT_OK(c.exec(insert, {int64_t{2}, std::string("two")}));
  STORE_ASSERT_OK(c.exec(insert, {int64_t{3}, std::string("three")}));
  const std::string select = "SELECT v FROM t WHERE id = $1";
  for (int64_t id = 1; id <= 3; ++id) {
    auto rows = c.query(select, {id});
    STORE_ASSERT_OK(rows);
    ASSERT_EQ(rows->size(), 1u);
    EXPECT_EQ(rows->front().opt_text(0),
              id == 1 ? std::nullopt : std::optional<std::string>(id == 2 ? "two" : "three"));
  }
  auto count = [&](const std::string& text) -> int64_t {
    auto r = c.query("SELECT count(*) FROM pg_prepared_statements WHERE statement = $1", {text});
    return r && !r->empty() ? r->front().int64(0) : -1;
  };
  EXPECT_EQ(count(select), 1);
  EXPECT_EQ(count(insert), 2);
  // A statement the server rejects is reported like before (and not cached).
  auto bad = c.query("SELECT nosuch FROM t WHERE id = $1", {int64_t{1}});
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, ErrorCode::internal) << bad.error().to_string();
  EXPECT_NE(bad.error().message.find("nosuch"), std::string::npos) << bad.error().to_string();
  auto dup = c.exec(insert, {int64_t{2}, std::string("again")});
  ASSERT_FALSE(dup);
  EXPECT_EQ(dup.error().code, ErrorCode::already_exists) << dup.error().to_string();
}

// A table changed under a prepared statement ("cached plan must not change result type"):
// at most one call fails, the next one prepares the statement again.
TEST_P(PgStoreTest, PreparedStatementSurvivesASchemaChange) {
  auto db = postgres::open_pg_database(url_, 1);
  STORE_ASSERT_OK(db);
  auto lease = (*db)->acquire();
  STORE_ASSERT_OK(lease);
  sql::SqlConnection& c = **lease;
  STORE_ASSERT_OK(c.exec("CREATE TABLE t (id BIGINT PRIMARY KEY, v TEXT)", {}));
  STORE_ASSERT_OK(c.exec("INSERT INTO t (id, v) VALUES (1, 'one')", {}));
  const std::string select = "SELECT * FROM t WHERE id = $1";
  STORE_ASSERT_OK(c.query(select, {int64_t{1}}));
  STORE_ASSERT_OK(c.exec("ALTER TABLE t ADD COLUMN w TEXT NOT NULL DEFAULT 'w'", {}));
  auto rows = c.query(select, {int64_t{1}});
  if (!rows) rows = c.query(select, {int64_t{1}});
  STORE_ASSERT_OK(rows);
  ASSERT_EQ(rows->size(), 1u);
  ASSERT_EQ(rows->front().cols.size(), 3u);
  EXPECT_EQ(rows->front().text(2), "w");
}

// The pool under concurrent use: more threads than connections, reads and CAS writes
// interleaved, every call answered (waits for a free connection, never fails for want of one).
TEST_P(PgStoreTest, PoolServesMoreThreadsThanConnections) {
  StoreOptions opts;
  opts.pool_size = 3;
  auto s = open_store(url_, opts);
  STORE_ASSERT_OK(s);
  Store& store = **s;
  auto host = store.create_host(host_named("pool-host"));
  STORE_ASSERT_OK(host);
  constexpr int kThreads = 8, kVmsPerThread = 15;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kVmsPerThread; ++i) {
        VmRecord v = vm_named("vm-" + std::to_string(t) + "-" + std::to_string(i));
        v.host_id = host->id;
        auto created = store.create_vm(v);
        if (!created) {
          ++failures;
          continue;
        }
        auto got = store.get_vm_by_name(v.name);
        if (!got || got->id != created->id) ++failures;
        created->labels["n"] = std::to_string(i);
        if (!store.update_vm(*created)) ++failures;
        auto token = store.get_token_by_hash("none");
        if (token || token.error().code != ErrorCode::not_found) ++failures;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  VmListOptions all;
  auto listed = store.list_vms(all);
  STORE_ASSERT_OK(listed);
  EXPECT_EQ(listed->size(), static_cast<size_t>(kThreads * kVmsPerThread));
  for (const auto& v : *listed) {
    EXPECT_EQ(v.resource_version, 2) << v.name;
    EXPECT_EQ(v.labels.count("n"), 1u) << v.name;
  }
}

// Keyset pages of a filtered list ("WHERE host_id = $1 AND id > $2 ORDER BY id LIMIT $3")
// read just the page from a (column, id) index, also in the generic plan a prepared
// statement may switch to (which cannot know the value is a host with few VMs).
TEST_P(PgStoreTest, FilteredPagesUseAnIndexInKeyOrderInGenericPlans) {
  auto db = postgres::open_pg_database(url_, 1);
  STORE_ASSERT_OK(db);
  auto lease = (*db)->acquire();
  STORE_ASSERT_OK(lease);
  sql::SqlConnection& c = **lease;
  STORE_ASSERT_OK(c.exec("SET plan_cache_mode = force_generic_plan", {}));
  STORE_ASSERT_OK(c.exec("SET enable_seqscan = off", {}));  // the tables are empty
  for (const auto& [table, column] : std::vector<std::pair<std::string, std::string>>{
           {"vms", "host_id"}, {"tasks", "target_id"}, {"tasks", "state"}}) {
    const std::string name = "plan_" + table + "_" + column;
    STORE_ASSERT_OK(c.exec("PREPARE " + name + "(text, text, int8) AS SELECT id FROM " + table +
                               " WHERE " + column + " = $1 AND id > $2 ORDER BY id LIMIT $3",
                           {}));
    auto rows = c.query("EXPLAIN EXECUTE " + name + "('x', '', 100)", {});
    STORE_ASSERT_OK(rows);
    std::string plan;
    for (const auto& r : *rows) plan += r.text(0) + "\n";
    EXPECT_NE(plan.find("Index Cond: ((" + column + " = $1) AND (id > $2))"), std::string::npos)
        << plan;
    EXPECT_EQ(plan.find("Sort"), std::string::npos) << plan;
  }
  // A host's VMs by name, both ways (the host page).
  for (const auto& [name, sql] : std::vector<std::pair<std::string, std::string>>{
           {"plan_host_name", "host_id = $1 AND name > $2 ORDER BY name LIMIT $3"},
           {"plan_host_name_desc", "host_id = $1 AND name < $2 ORDER BY name DESC LIMIT $3"}}) {
    STORE_ASSERT_OK(c.exec(
        "PREPARE " + name + "(text, text, int8) AS SELECT id FROM vms WHERE " + sql, {}));
    auto rows = c.query("EXPLAIN EXECUTE " + name + "('x', 'm', 100)", {});
    STORE_ASSERT_OK(rows);
    std::string plan;
    for (const auto& r : *rows) plan += r.text(0) + "\n";
    EXPECT_NE(plan.find("vms_host_id_name"), std::string::npos) << plan;
    EXPECT_EQ(plan.find("Sort"), std::string::npos) << plan;
  }
}

INSTANTIATE_TEST_SUITE_P(Postgres, PgStoreTest, ::testing::Values(backend()), backend_name);

}  // namespace
}  // namespace strata::store::testing
