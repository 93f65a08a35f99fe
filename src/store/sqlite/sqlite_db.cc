// SQLite driver: connection setup (WAL, busy_timeout, foreign keys), a per-SQL prepared
// statement cache, parameter binding, error-code mapping, the mutex-guarded writer lease
// and the pool of read connections.
#include "store/sqlite/sqlite_db.h"

#include <sqlite3.h>

#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

namespace strata::store::sqlite {

namespace {

struct StmtDeleter {
  void operator()(sqlite3_stmt* s) const { sqlite3_finalize(s); }
};
struct DbDeleter {
  void operator()(sqlite3* db) const { sqlite3_close_v2(db); }
};
using StmtPtr = std::unique_ptr<sqlite3_stmt, StmtDeleter>;
using DbPtr = std::unique_ptr<sqlite3, DbDeleter>;

// "$1" -> "?1": the store writes PostgreSQL-style placeholders; SQLite numbers "?NNN".
std::string to_sqlite_placeholders(const std::string& sql) {
  std::string out = sql;
  for (size_t i = 0; i + 1 < out.size(); ++i) {
    if (out[i] == '$' && out[i + 1] >= '0' && out[i + 1] <= '9') out[i] = '?';
  }
  return out;
}

Error map_error(sqlite3* db, int rc, const std::string& what) {
  int ext = sqlite3_extended_errcode(db);
  std::string msg = what + ": " + sqlite3_errmsg(db);
  ErrorCode code = ErrorCode::internal;
  switch (ext) {
    case SQLITE_CONSTRAINT_UNIQUE:
    case SQLITE_CONSTRAINT_PRIMARYKEY:
      code = ErrorCode::already_exists;
      break;
    case SQLITE_CONSTRAINT_FOREIGNKEY:
    case SQLITE_CONSTRAINT_TRIGGER:  // ON DELETE RESTRICT reports this (we define no triggers)
      code = ErrorCode::failed_precondition;
      break;
    case SQLITE_CONSTRAINT_NOTNULL:
    case SQLITE_CONSTRAINT_CHECK:
      code = ErrorCode::invalid_argument;
      break;
    default:
      if ((rc & 0xff) == SQLITE_FULL) {
        // Nothing was committed (SQLite rolls the statement back); the database stays
        // intact and works again once space is freed: a server-side "try later".
        code = ErrorCode::unavailable;
        msg = what + ": the database's disk is full (free space in the data folder): " +
              sqlite3_errmsg(db);
        break;
      }
      if ((rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED) code = ErrorCode::unavailable;
      break;
  }
  return Error{code, std::move(msg), {}};
}

class SqliteConnection final : public sql::SqlConnection {
 public:
  explicit SqliteConnection(DbPtr db) : db_(std::move(db)) {}

  Result<sql::SqlRows> query(const std::string& sql, const sql::SqlParams& params) override {
    sql::SqlRows rows;
    auto st = run(sql, params, &rows);
    if (!st) return tl::unexpected(st.error());
    return rows;
  }

  Result<int64_t> exec(const std::string& sql, const sql::SqlParams& params) override {
    auto st = run(sql, params, nullptr);
    if (!st) return tl::unexpected(st.error());
    return static_cast<int64_t>(sqlite3_changes64(db_.get()));
  }

  Status begin() override { return simple("BEGIN IMMEDIATE"); }
  Status commit() override { return simple("COMMIT"); }
  Status rollback() override { return simple("ROLLBACK"); }

  Status simple(const std::string& sql) {
    auto r = exec(sql, {});
    if (!r) return tl::unexpected(r.error());
    return {};
  }

 private:
  Result<sqlite3_stmt*> prepare(const std::string& sql) {
    auto it = cache_.find(sql);
    if (it != cache_.end()) return it->second.get();
    std::string text = to_sqlite_placeholders(sql);
    sqlite3_stmt* raw = nullptr;
    int rc =
        sqlite3_prepare_v2(db_.get(), text.c_str(), static_cast<int>(text.size()), &raw, nullptr);
    StmtPtr stmt(raw);
    if (rc != SQLITE_OK) return tl::unexpected(map_error(db_.get(), rc, "prepare"));
    sqlite3_stmt* p = stmt.get();
    cache_.emplace(sql, std::move(stmt));
    return p;
  }

  Status run(const std::string& sql, const sql::SqlParams& params, sql::SqlRows* rows) {
    auto prepared = prepare(sql);
    if (!prepared) return tl::unexpected(prepared.error());
    sqlite3_stmt* s = *prepared;
    struct Reset {
      sqlite3_stmt* s;
      ~Reset() {
        sqlite3_reset(s);
        sqlite3_clear_bindings(s);
      }
    } reset{s};
    if (static_cast<int>(params.size()) != sqlite3_bind_parameter_count(s)) {
      return internal_error("statement expects " + std::to_string(sqlite3_bind_parameter_count(s)) +
                            " parameters, got " + std::to_string(params.size()));
    }
    for (size_t i = 0; i < params.size(); ++i) {
      int idx = static_cast<int>(i + 1);
      int rc = SQLITE_OK;
      if (std::holds_alternative<int64_t>(params[i])) {
        rc = sqlite3_bind_int64(s, idx, std::get<int64_t>(params[i]));
      } else if (std::holds_alternative<std::string>(params[i])) {
        const auto& str = std::get<std::string>(params[i]);
        rc = sqlite3_bind_text64(s, idx, str.data(), str.size(), SQLITE_TRANSIENT, SQLITE_UTF8);
      } else {
        rc = sqlite3_bind_null(s, idx);
      }
      if (rc != SQLITE_OK) return tl::unexpected(map_error(db_.get(), rc, "bind"));
    }
    for (;;) {
      int rc = sqlite3_step(s);
      if (rc == SQLITE_DONE) return {};
      if (rc != SQLITE_ROW) return tl::unexpected(map_error(db_.get(), rc, "step"));
      if (!rows) continue;
      sql::SqlRow row;
      int n = sqlite3_column_count(s);
      row.cols.reserve(n);
      for (int c = 0; c < n; ++c) {
        if (sqlite3_column_type(s, c) == SQLITE_NULL) {
          row.cols.emplace_back(std::nullopt);
        } else {
          const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(s, c));
          row.cols.emplace_back(std::string(text, sqlite3_column_bytes(s, c)));
        }
      }
      rows->push_back(std::move(row));
    }
  }

  // Statements are finalized before the handle closes (members destroy in reverse order).
  DbPtr db_;
  std::unordered_map<std::string, StmtPtr> cache_;
};

class SqliteDatabase final : public sql::SqlDatabase {
 public:
  SqliteDatabase(std::unique_ptr<SqliteConnection> writer,
                 std::vector<std::unique_ptr<SqliteConnection>> readers)
      : writer_(std::move(writer)), readers_(std::move(readers)) {
    for (auto& r : readers_) free_readers_.push_back(r.get());
  }

  std::string backend() const override { return "sqlite"; }

  Result<sql::Lease> acquire() override {
    if (auto st = refuse_inside_own_transaction(); !st) return tl::unexpected(st.error());
    mu_.lock();
    owner_.store(std::this_thread::get_id());
    return sql::Lease(writer_.get(), [this] {
      owner_.store(std::thread::id());
      mu_.unlock();
    });
  }

  Result<sql::Lease> acquire_read() override {
    if (readers_.empty()) return acquire();  // ":memory:": one database, one connection
    // Refused as acquire() does: a read from the outer store inside a transaction would
    // not see the transaction's own writes.
    if (auto st = refuse_inside_own_transaction(); !st) return tl::unexpected(st.error());
    std::unique_lock lock(read_mu_);
    read_cv_.wait(lock, [&] { return !free_readers_.empty(); });
    SqliteConnection* c = free_readers_.back();
    free_readers_.pop_back();
    return sql::Lease(c, [this, c] {
      {
        std::lock_guard l(read_mu_);
        free_readers_.push_back(c);
      }
      read_cv_.notify_one();
    });
  }

  std::string event_append_lock_sql() const override { return {}; }  // one writer anyway
  std::string migration_lock_sql() const override { return {}; }     // BEGIN IMMEDIATE
  const std::vector<sql::Migration>& migrations() const override { return sqlite_migrations(); }
  // JSON1: json_valid guards json_type/json_extract, which fail on malformed text.
  std::string json_member_sql(const std::string& column, const std::string& key) const override {
    return "CASE WHEN json_valid(" + column + ") AND json_type(" + column + ", '$." + key +
           "') = 'text' THEN json_extract(" + column + ", '$." + key + "') END";
  }

 private:
  // The writer is held by a transaction on this very thread: waiting for it would
  // deadlock, so say what went wrong instead.
  Status refuse_inside_own_transaction() const {
    if (owner_.load() == std::this_thread::get_id()) {
      return make_error(ErrorCode::failed_precondition,
                        "store used from inside its own transaction: use the tx store");
    }
    return {};
  }

  // mu_ guards the writer connection: held for the whole lease (a statement or a
  // transaction); owner_ names the holding thread (read without mu_, hence atomic).
  std::mutex mu_;
  std::atomic<std::thread::id> owner_{};
  std::unique_ptr<SqliteConnection> writer_;
  // read_mu_ guards free_readers_ only (never held while a statement runs); a reader is
  // leased to one thread at a time. Never take mu_ while holding read_mu_ or the reverse.
  std::mutex read_mu_;
  std::condition_variable read_cv_;
  std::vector<std::unique_ptr<SqliteConnection>> readers_;
  std::vector<SqliteConnection*> free_readers_;
};

}  // namespace

namespace {

Result<DbPtr> open_handle(const std::string& path) {
  sqlite3* raw = nullptr;
  int rc =
      sqlite3_open_v2(path.c_str(), &raw,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  DbPtr db(raw);
  if (rc != SQLITE_OK) {
    return unavailable("open sqlite " + path + ": " +
                       (raw ? sqlite3_errmsg(raw) : sqlite3_errstr(rc)));
  }
  sqlite3_extended_result_codes(db.get(), 1);
  sqlite3_busy_timeout(db.get(), 5000);
  return db;
}

}  // namespace

Result<std::shared_ptr<sql::SqlDatabase>> open_sqlite_database(const std::string& path,
                                                               int read_connections) {
  if (path.empty()) return invalid_argument("url", "sqlite path is empty");
  if (read_connections < 0 || read_connections > 64)
    return invalid_argument("read_connections", "must be 0..64");
  auto db = open_handle(path);
  if (!db) return tl::unexpected(db.error());
  auto conn = std::make_unique<SqliteConnection>(std::move(*db));
  // synchronous=FULL: with WAL, NORMAL does not fsync the WAL at each commit, so a power
  // cut can lose transactions the API already acknowledged. FULL syncs every commit (cost
  // measured in docs/internals/store.md). STRATA_SQLITE_SYNCHRONOUS=normal exists only so
  // `scripts/bench api` can measure that cost in the same run; it is not a setting.
  const char* sync = "PRAGMA synchronous=FULL";
  if (const char* env = std::getenv("STRATA_SQLITE_SYNCHRONOUS"); env && *env) {
    std::string v = env;
    if (v == "normal")
      sync = "PRAGMA synchronous=NORMAL";
    else if (v != "full")
      return invalid_argument("STRATA_SQLITE_SYNCHRONOUS", "must be full or normal, not " + v);
  }
  for (const char* pragma : {"PRAGMA journal_mode=WAL", "PRAGMA foreign_keys=ON", sync}) {
    if (auto r = conn->query(pragma, {}); !r) return tl::unexpected(r.error().wrap(pragma));
  }
  // Read connections, on the same file in WAL mode: they read beside the writer (each
  // statement sees the transactions committed before it started) and can write nothing
  // (query_only). An in-memory database is private to its connection: it gets none.
  std::vector<std::unique_ptr<SqliteConnection>> readers;
  const bool in_memory = path == ":memory:" || path.rfind("file::memory:", 0) == 0;
  for (int i = 0; !in_memory && i < read_connections; ++i) {
    auto h = open_handle(path);
    if (!h) return tl::unexpected(h.error().wrap("read connection"));
    auto r = std::make_unique<SqliteConnection>(std::move(*h));
    if (auto q = r->query("PRAGMA query_only=ON", {}); !q)
      return tl::unexpected(q.error().wrap("PRAGMA query_only=ON"));
    readers.push_back(std::move(r));
  }
  return std::shared_ptr<sql::SqlDatabase>(
      std::make_shared<SqliteDatabase>(std::move(conn), std::move(readers)));
}

}  // namespace strata::store::sqlite
