// Internal driver layer under the SQL store: a connection that runs parameterized
// statements ($1..$N placeholders, values bound, never spliced into SQL text), a
// database that leases connections (SQLite: one guarded writer plus a pool of read-only
// connections; PostgreSQL: a pool), and the per-backend migration list. SqlStore holds all store logic once.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "strata/common/error.h"

namespace strata::store::sql {

using SqlValue = std::variant<std::nullptr_t, int64_t, std::string>;
using SqlParams = std::vector<SqlValue>;

struct SqlRow {
  std::vector<std::optional<std::string>> cols;
  // Accessors; columns hold text (integers as decimal text).
  const std::string& text(size_t i) const;
  std::optional<std::string> opt_text(size_t i) const { return cols.at(i); }
  int64_t int64(size_t i) const;  // NULL or malformed -> 0
  std::optional<int64_t> opt_int64(size_t i) const;
};
using SqlRows = std::vector<SqlRow>;

// Errors map as: unique violation -> already_exists, foreign key -> failed_precondition,
// not-null/check -> invalid_argument, connection lost -> unavailable.
class SqlConnection {
 public:
  virtual ~SqlConnection() = default;
  virtual Result<SqlRows> query(const std::string& sql, const SqlParams& params) = 0;
  // Returns the number of rows changed.
  virtual Result<int64_t> exec(const std::string& sql, const SqlParams& params) = 0;
  virtual Status begin() = 0;
  virtual Status commit() = 0;
  virtual Status rollback() = 0;
};

// A leased connection; returns itself to its database when destroyed.
class Lease {
 public:
  Lease(SqlConnection* conn, std::function<void()> release)
      : conn_(conn), release_(std::move(release)) {}
  Lease(Lease&& other) noexcept
      : conn_(std::exchange(other.conn_, nullptr)), release_(std::move(other.release_)) {
    other.release_ = nullptr;
  }
  Lease& operator=(Lease&&) = delete;
  Lease(const Lease&) = delete;
  Lease& operator=(const Lease&) = delete;
  ~Lease() {
    if (release_) release_();
  }
  SqlConnection& operator*() const { return *conn_; }
  SqlConnection* operator->() const { return conn_; }

 private:
  SqlConnection* conn_;  // not owned: the database owns its connections
  std::function<void()> release_;
};

struct Migration {
  int64_t version;
  std::string name;
  std::vector<std::string> statements;  // run in order, inside one transaction
};

class SqlDatabase {
 public:
  virtual ~SqlDatabase() = default;
  virtual std::string backend() const = 0;
  virtual Result<Lease> acquire() = 0;
  // A connection for one read outside any transaction (autocommit SELECTs only). SQLite
  // hands out one of its read-only connections, so reads do not wait behind the writer's
  // fsync (WAL: a reader sees every transaction committed before its statement started);
  // a backend whose connections are all alike answers acquire().
  virtual Result<Lease> acquire_read() { return acquire(); }
  // Called by the store after each write lease of this thread was released (a transaction
  // or an autocommit write): returns once what it committed is durable. SQLite commits
  // without a sync and syncs its write-ahead log here, once for every commit made before
  // (a group commit); a backend whose COMMIT is durable answers at once.
  virtual Status durable() { return {}; }
  // Statement run first inside a transaction that appends events (serializes appends so
  // seq order equals commit order); empty when the backend needs none.
  virtual std::string event_append_lock_sql() const = 0;
  // Statement run first inside the migration transaction (keeps two starting managers
  // from migrating at once); empty when the backend needs none.
  virtual std::string migration_lock_sql() const = 0;
  virtual const std::vector<Migration>& migrations() const = 0;
  // SQL text of a JSON text column's top-level string member `key` (NULL when the
  // text is not a JSON object or lacks it; never an error on malformed text).
  // `column` and `key` are trusted identifiers, not user input.
  virtual std::string json_member_sql(const std::string& column, const std::string& key) const = 0;
};

// Applies pending migrations (creates schema_migrations when missing). Idempotent.
Status apply_migrations(SqlDatabase& db, int64_t now_ms);

}  // namespace strata::store::sql
