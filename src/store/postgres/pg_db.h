// PostgreSQL backend (libpq): a small connection pool, statements sent with
// PQexecParams (values bound, typed int8/text), SQLSTATE-based error mapping, and
// reconnection of connections that lost the server.
#pragma once

#include <memory>
#include <string>

#include "store/sql/sql_db.h"

namespace strata::store::postgres {

// conninfo: a libpq URI ("postgresql://...") or key=value string. Connects once to
// check the server is reachable. `password` non-empty overrides one in conninfo (read from
// a file by the caller, so it is never on a command line).
Result<std::shared_ptr<sql::SqlDatabase>> open_pg_database(const std::string& conninfo,
                                                           int pool_size,
                                                           const std::string& password = {});

// Numbered schema migrations for PostgreSQL (migrations.cc).
const std::vector<sql::Migration>& pg_migrations();

}  // namespace strata::store::postgres
