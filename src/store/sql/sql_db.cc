// Row accessors and the migration runner shared by both SQL backends.
#include "store/sql/sql_db.h"

#include <charconv>
#include <set>

namespace strata::store::sql {

namespace {
const std::string kEmpty;
}

const std::string& SqlRow::text(size_t i) const {
  const auto& c = cols.at(i);
  return c ? *c : kEmpty;
}

std::optional<int64_t> SqlRow::opt_int64(size_t i) const {
  const auto& c = cols.at(i);
  if (!c) return std::nullopt;
  int64_t v = 0;
  auto [p, ec] = std::from_chars(c->data(), c->data() + c->size(), v);
  if (ec != std::errc()) return std::nullopt;
  return v;
}

int64_t SqlRow::int64(size_t i) const { return opt_int64(i).value_or(0); }

Status apply_migrations(SqlDatabase& db, int64_t now_ms) {
  auto lease = db.acquire();
  if (!lease) return tl::unexpected(lease.error());
  SqlConnection& c = **lease;
  if (auto st = c.begin(); !st) return st;
  auto run = [&]() -> Status {
    if (auto lock = db.migration_lock_sql(); !lock.empty()) {
      if (auto r = c.query(lock, {}); !r) return tl::unexpected(r.error());
    }
    auto r = c.exec(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_ms BIGINT NOT NULL)",
        {});
    if (!r) return tl::unexpected(r.error());
    auto rows = c.query("SELECT version FROM schema_migrations", {});
    if (!rows) return tl::unexpected(rows.error());
    std::set<int64_t> applied;
    for (const auto& row : *rows) applied.insert(row.int64(0));
    for (const auto& m : db.migrations()) {
      if (applied.count(m.version)) continue;
      for (const auto& stmt : m.statements) {
        if (auto e = c.exec(stmt, {}); !e) {
          return tl::unexpected(
              e.error().wrap("migration " + std::to_string(m.version) + " " + m.name));
        }
      }
      auto ins =
          c.exec("INSERT INTO schema_migrations (version, name, applied_ms) VALUES ($1, $2, $3)",
                 {m.version, m.name, now_ms});
      if (!ins) return tl::unexpected(ins.error());
    }
    return {};
  };
  if (auto st = run(); !st) {
    (void)c.rollback();
    return st;
  }
  return c.commit();
}

}  // namespace strata::store::sql
