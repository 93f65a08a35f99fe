// SQLite backend: one connection (WAL, busy_timeout, foreign keys on) guarded by a mutex,
// prepared statements cached per SQL text, values always bound.
#pragma once

#include <memory>
#include <string>

#include "store/sql/sql_db.h"

namespace strata::store::sqlite {

// path: a file path or ":memory:".
Result<std::shared_ptr<sql::SqlDatabase>> open_sqlite_database(const std::string& path);

// Numbered schema migrations for SQLite (migrations.cc).
const std::vector<sql::Migration>& sqlite_migrations();

}  // namespace strata::store::sqlite
