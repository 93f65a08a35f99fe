// Keyset paging shared by the list operations: records ordered by id, `id > after_id`,
// LIMIT (or by another unique column, ascending or descending, `col > cursor` / `col <
// cursor`). A label selector and a predicate on the decoded record are applied after
// decoding (labels and status are JSON columns), so with either rows are read in batches
// until the page is full.
#pragma once

#include <cctype>
#include <functional>
#include <string>
#include <vector>

#include "store/sql/codec.h"
#include "store/sql/sql_db.h"

namespace strata::store::sql {

inline std::string placeholder(size_t n) { return "$" + std::to_string(n); }

// `column LIKE '%needle%'` with LIKE's wildcards in the needle escaped and the needle
// lowercased, its parameter appended to `params`. SQLite's LIKE ignores ASCII case,
// PostgreSQL's does not: pass "name" when the names are lowercase by validation (VMs),
// "LOWER(name)" when the store does not promise that (hosts, images).
inline std::string name_contains_condition(const std::string& column, const std::string& needle,
                                           SqlParams& params) {
  std::string pattern = "%";
  for (char ch : needle) {
    char low = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    if (low == '%' || low == '_' || low == '\\') pattern += '\\';
    pattern += low;
  }
  pattern += '%';
  params.emplace_back(pattern);
  return column + " LIKE " + placeholder(params.size()) + " ESCAPE '\\'";
}

// The key a page is ordered by: a unique column and its index in `cols`.
struct PageOrder {
  std::string column = "id";
  size_t index = 0;  // id is the first column of every paged list
  bool descending = false;
};

template <class T, class Decode>
Result<std::vector<T>> select_paged(SqlConnection& c, const std::string& cols,
                                    const std::string& table, std::vector<std::string> conds,
                                    SqlParams params, const std::string& after, int limit,
                                    const Labels& selector, Decode decode,
                                    const PageOrder& order = {},
                                    const std::function<bool(const T&)>& keep = {}) {
  if (limit < 0) return invalid_argument("limit", "must be >= 0");
  const bool filter = !selector.empty() || static_cast<bool>(keep);
  constexpr int kBatch = 500;
  std::vector<T> out;
  std::string cursor = after;
  for (;;) {
    SqlParams p = params;
    std::vector<std::string> where = conds;
    if (!cursor.empty()) {
      p.emplace_back(cursor);
      where.push_back(order.column + (order.descending ? " < " : " > ") + placeholder(p.size()));
    }
    std::string sql = "SELECT " + cols + " FROM " + table;
    for (size_t i = 0; i < where.size(); ++i) sql += (i == 0 ? " WHERE " : " AND ") + where[i];
    sql += " ORDER BY " + order.column + (order.descending ? " DESC" : "");
    int want = filter ? kBatch : limit;
    if (want > 0) {
      p.emplace_back(static_cast<int64_t>(want));
      sql += " LIMIT " + placeholder(p.size());
    }
    auto rows = c.query(sql, p);
    if (!rows) return tl::unexpected(rows.error());
    for (const auto& row : *rows) {
      auto rec = decode(row);
      if (!rec) return tl::unexpected(rec.error());
      if constexpr (requires { rec->labels; }) {
        if (!selector.empty() && !labels_match(rec->labels, selector)) continue;
      }
      if (keep && !keep(*rec)) continue;
      out.push_back(std::move(*rec));
      if (limit > 0 && static_cast<int>(out.size()) == limit) return out;
    }
    if (!filter || static_cast<int>(rows->size()) < want) return out;
    cursor = rows->back().text(order.index);
  }
}

}  // namespace strata::store::sql
