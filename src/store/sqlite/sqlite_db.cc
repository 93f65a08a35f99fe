// SQLite driver: connection setup (WAL, busy_timeout, foreign keys), a per-SQL prepared
// statement cache, parameter binding, error-code mapping, the mutex-guarded writer lease
// and the pool of read connections.
#include "store/sqlite/sqlite_db.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
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

  // Rows written by this connection since it opened (grows with every INSERT, UPDATE and
  // DELETE, committed or not): tells whether a lease wrote anything.
  int64_t total_changes() const { return sqlite3_total_changes64(db_.get()); }

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

// The commit this thread made last and has not waited for yet (group commit: durable()),
// and the database it was made in.
thread_local const void* t_unsynced_db = nullptr;
thread_local uint64_t t_unsynced_seq = 0;

class SqliteDatabase final : public sql::SqlDatabase {
 public:
  // wal_path: the write-ahead log that durable() syncs (group commit); "" when commits
  // sync themselves (synchronous=FULL), or need not (in memory, or the bench's NORMAL).
  SqliteDatabase(std::unique_ptr<SqliteConnection> writer,
                 std::vector<std::unique_ptr<SqliteConnection>> readers, std::string wal_path)
      : writer_(std::move(writer)), readers_(std::move(readers)), wal_path_(std::move(wal_path)) {
    for (auto& r : readers_) free_readers_.push_back(r.get());
  }
  ~SqliteDatabase() override {
    if (wal_fd_ >= 0) ::close(wal_fd_);
  }

  std::string backend() const override { return "sqlite"; }

  Result<sql::Lease> acquire() override {
    if (auto st = refuse_inside_own_transaction(); !st) return tl::unexpected(st.error());
    mu_.lock();
    owner_.store(std::this_thread::get_id());
    const int64_t changes = writer_->total_changes();
    return sql::Lease(writer_.get(), [this, changes] {
      // Still under mu_: the commit order is the order of committed_.
      if (!wal_path_.empty() && writer_->total_changes() != changes) {
        t_unsynced_db = this;
        t_unsynced_seq = ++committed_;
      }
      owner_.store(std::thread::id());
      mu_.unlock();
    });
  }

  // Group commit: the writer commits with synchronous=NORMAL (WAL frames written, not
  // synced) and lets go of the connection; then each writer waits here until the -wal
  // file has been fdatasync'ed after its commit. One thread syncs at a time, for every
  // commit made before it started (its `upto`), and the others wait for a sync that
  // covers theirs: N concurrent commits cost about one fsync instead of N, and the next
  // transaction runs while the log syncs. Callers return only once durable, as with FULL;
  // a reader may see a commit a few milliseconds before it is durable.
  WalSyncStats stats() {
    std::lock_guard lock(sync_mu_);
    return {committed_.load(), synced_, syncs_};
  }

  Status durable() override {
    if (t_unsynced_db != this || t_unsynced_seq == 0) return {};
    const uint64_t want = std::exchange(t_unsynced_seq, 0);
    t_unsynced_db = nullptr;
    std::unique_lock lock(sync_mu_);
    while (synced_ < want) {
      if (syncing_) {
        sync_cv_.wait(lock);
        continue;
      }
      syncing_ = true;
      const uint64_t upto = committed_.load();
      lock.unlock();
      Status st = sync_wal();
      lock.lock();
      syncing_ = false;
      ++syncs_;
      if (st) synced_ = std::max(synced_, upto);
      sync_cv_.notify_all();
      if (!st) return st;
    }
    return {};
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

  // Only the thread that set syncing_ (under sync_mu_) touches wal_fd_.
  Status sync_wal() {
    if (wal_fd_ < 0) {
      wal_fd_ = ::open(wal_path_.c_str(), O_RDONLY | O_CLOEXEC);
      if (wal_fd_ < 0)
        return unavailable("open the write-ahead log " + wal_path_ + ": " + std::strerror(errno));
    }
    if (::fdatasync(wal_fd_) != 0)
      return unavailable("sync the write-ahead log " + wal_path_ + ": " + std::strerror(errno));
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
  // Group commit. committed_: commits that wrote, counted under mu_. sync_mu_ guards
  // synced_ (every commit up to it is durable) and syncing_ (a sync is running); never
  // held while mu_ is, or across the sync itself. Taken after mu_ was let go (durable()).
  const std::string wal_path_;
  std::atomic<uint64_t> committed_{0};
  std::mutex sync_mu_;
  std::condition_variable sync_cv_;
  uint64_t synced_ = 0;
  uint64_t syncs_ = 0;
  bool syncing_ = false;
  int wal_fd_ = -1;
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
  // Durability: every acknowledged write survives a power cut. By default a group commit:
  // synchronous=NORMAL (with WAL, a COMMIT writes the log without syncing it) and the
  // store syncs the log after each write, once for all commits made meanwhile
  // (SqliteDatabase::durable). STRATA_SQLITE_SYNCHRONOUS=full (SQLite syncs each COMMIT
  // itself) and =normal (nothing synced: not durable) exist only so `scripts/bench api`
  // can compare them in the same run; they are not settings.
  const bool in_memory = path == ":memory:" || path.rfind("file::memory:", 0) == 0;
  const char* sync = "PRAGMA synchronous=NORMAL";
  bool group = !in_memory;
  if (const char* env = std::getenv("STRATA_SQLITE_SYNCHRONOUS"); env && *env) {
    std::string v = env;
    if (v == "full") {
      sync = "PRAGMA synchronous=FULL";
      group = false;
    } else if (v == "normal") {
      group = false;
    } else if (v != "group") {
      return invalid_argument("STRATA_SQLITE_SYNCHRONOUS",
                              "must be group, full or normal, not " + v);
    }
  }
  for (const char* pragma : {"PRAGMA journal_mode=WAL", "PRAGMA foreign_keys=ON", sync}) {
    if (auto r = conn->query(pragma, {}); !r) return tl::unexpected(r.error().wrap(pragma));
  }
  // Read connections, on the same file in WAL mode: they read beside the writer (each
  // statement sees the transactions committed before it started) and can write nothing
  // (query_only). An in-memory database is private to its connection: it gets none.
  std::vector<std::unique_ptr<SqliteConnection>> readers;
  for (int i = 0; !in_memory && i < read_connections; ++i) {
    auto h = open_handle(path);
    if (!h) return tl::unexpected(h.error().wrap("read connection"));
    auto r = std::make_unique<SqliteConnection>(std::move(*h));
    if (auto q = r->query("PRAGMA query_only=ON", {}); !q)
      return tl::unexpected(q.error().wrap("PRAGMA query_only=ON"));
    readers.push_back(std::move(r));
  }
  return std::shared_ptr<sql::SqlDatabase>(
      std::make_shared<SqliteDatabase>(std::move(conn), std::move(readers),
                                       group ? path + "-wal" : std::string()));
}

WalSyncStats wal_sync_stats(const sql::SqlDatabase& db) {
  auto* s = dynamic_cast<const SqliteDatabase*>(&db);
  return s ? const_cast<SqliteDatabase*>(s)->stats() : WalSyncStats{};
}

}  // namespace strata::store::sqlite
