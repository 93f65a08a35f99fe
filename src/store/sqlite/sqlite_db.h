// SQLite backend: one writer connection (WAL, busy_timeout, foreign keys on) guarded by a
// mutex, a pool of read-only connections for reads outside transactions, prepared
// statements cached per SQL text, values always bound.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "store/sql/sql_db.h"

namespace strata::store::sqlite {

// The read connections a file database gets by default (reads run beside the writer and
// each other; the API's GETs no longer wait behind a commit's fsync).
inline constexpr int kDefaultReadConnections = 4;

// path: a file path or ":memory:" (an in-memory database has no read connections: it is
// private to the connection that opened it).
Result<std::shared_ptr<sql::SqlDatabase>> open_sqlite_database(
    const std::string& path, int read_connections = kDefaultReadConnections);

// The group commit's counters of a database open_sqlite_database made (zeros for another,
// or one without group commit): commits that wrote, how many of them are known durable,
// and the write-ahead log's syncs. For tests and metrics.
struct WalSyncStats {
  uint64_t commits = 0;
  uint64_t synced = 0;
  uint64_t syncs = 0;
};
WalSyncStats wal_sync_stats(const sql::SqlDatabase& db);

// Numbered schema migrations for SQLite (migrations.cc).
const std::vector<sql::Migration>& sqlite_migrations();

}  // namespace strata::store::sqlite
