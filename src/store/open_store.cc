// open_store(): picks the backend from the URL, opens it, applies pending migrations.
#include <chrono>

#include "store/postgres/pg_db.h"
#include "store/sql/sql_store.h"
#include "store/sqlite/sqlite_db.h"
#include "strata/store/store.h"

namespace strata::store {

namespace {
bool starts_with(const std::string& s, const char* prefix) { return s.rfind(prefix, 0) == 0; }
}  // namespace

Result<StorePtr> open_store(const std::string& url, const StoreOptions& options) {
  return open_store(url, options, std::string());
}

Result<StorePtr> open_store(const std::string& url, const StoreOptions& options,
                            const std::string& db_password) {
  ClockPtr clock = options.clock ? options.clock : system_clock();
  Result<std::shared_ptr<sql::SqlDatabase>> db = tl::unexpected(Error{});
  if (starts_with(url, "sqlite:")) {
    db = sqlite::open_sqlite_database(url.substr(7));
  } else if (starts_with(url, "postgres://") || starts_with(url, "postgresql://")) {
    db = postgres::open_pg_database(url, options.pool_size, db_password);
  } else if (starts_with(url, "postgres:")) {
    db = postgres::open_pg_database(url.substr(9), options.pool_size, db_password);
  } else {
    return invalid_argument("url", "store URL must start with sqlite: or postgres(ql)://");
  }
  if (!db) return tl::unexpected(db.error());
  int64_t now =
      std::chrono::duration_cast<std::chrono::milliseconds>(clock->wall().time_since_epoch())
          .count();
  if (auto st = sql::apply_migrations(**db, now); !st) {
    return tl::unexpected(st.error().wrap("schema migration"));
  }
  return StorePtr(std::make_unique<sql::SqlStore>(std::move(*db), std::move(clock)));
}

bool url_has_password(const std::string& url) {
  if (starts_with(url, "postgres://") || starts_with(url, "postgresql://")) {
    std::string rest = url.substr(url.find("://") + 3);
    auto at = rest.find('@');
    auto slash = rest.find('/');
    if (at != std::string::npos && (slash == std::string::npos || at < slash) &&
        rest.substr(0, at).find(':') != std::string::npos)
      return true;
    auto q = rest.find('?');
    return q != std::string::npos && rest.find("password=", q) != std::string::npos;
  }
  if (starts_with(url, "postgres:")) return url.find("password") != std::string::npos;
  return false;
}

Result<StorePtr> open_store(const std::string& url) { return open_store(url, StoreOptions{}); }

}  // namespace strata::store
