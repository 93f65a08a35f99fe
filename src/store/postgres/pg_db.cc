// PostgreSQL driver: libpq connections, typed parameter binding, a per-connection cache of
// named prepared statements (PQprepare once, PQexecPrepared after), SQLSTATE -> ErrorCode
// mapping, and a bounded pool that re-validates and resets connections after any of them
// saw the server go away.
#include "store/postgres/pg_db.h"

#include <libpq-fe.h>

#include <cctype>
#include <charconv>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <unordered_map>

namespace strata::store::postgres {

namespace {

constexpr Oid kInt8Oid = 20;
constexpr Oid kTextOid = 25;
// Prepared statements kept per connection. The store's statements are a fixed set (a few
// dozen texts, times the WHERE variants of the list filters); past this bound a statement
// is sent unnamed (parsed and planned every time, as before) rather than growing the
// server's per-session memory without limit.
constexpr size_t kMaxPrepared = 256;

// Statements worth preparing: the store's parameterized DML/queries. Not DDL (migrations run
// once) nor transaction control.
bool cacheable(const std::string& sql) {
  auto starts = [&](const char* kw) {
    size_t n = std::strlen(kw);
    if (sql.size() < n) return false;
    for (size_t i = 0; i < n; ++i) {
      if (std::toupper(static_cast<unsigned char>(sql[i])) != kw[i]) return false;
    }
    return true;
  };
  return starts("SELECT") || starts("INSERT") || starts("UPDATE") || starts("DELETE") ||
         starts("WITH");
}

struct ConnDeleter {
  void operator()(PGconn* c) const { PQfinish(c); }
};
struct ResultDeleter {
  void operator()(PGresult* r) const { PQclear(r); }
};
using ConnPtr = std::unique_ptr<PGconn, ConnDeleter>;
using PgResultPtr = std::unique_ptr<PGresult, ResultDeleter>;

void ignore_notice(void*, const char*) {}  // "relation already exists, skipping" etc.

ErrorCode code_for_sqlstate(const char* state) {
  if (!state) return ErrorCode::unavailable;  // no server answer at all
  std::string s(state);
  if (s == "23505") return ErrorCode::already_exists;
  if (s == "23503") return ErrorCode::failed_precondition;
  if (s == "23502" || s == "23514" || s.rfind("22", 0) == 0) return ErrorCode::invalid_argument;
  if (s == "40001" || s == "40P01") return ErrorCode::conflict;
  if (s.rfind("08", 0) == 0 || s.rfind("57P", 0) == 0 || s == "53300") {
    return ErrorCode::unavailable;
  }
  return ErrorCode::internal;
}

// `password` (from --db-password-file) comes after dbname, so it wins over one in the URL;
// empty leaves libpq's own sources (the URL, PGPASSFILE / ~/.pgpass).
ConnPtr connect(const std::string& conninfo, const std::string& password, std::string* err) {
  const char* keys[] = {"connect_timeout", "application_name", "dbname", "password", nullptr};
  const char* vals[] = {"10", "stratad", conninfo.c_str(), password.c_str(), nullptr};
  if (password.empty()) keys[3] = vals[3] = nullptr;
  ConnPtr c(PQconnectdbParams(keys, vals, /*expand_dbname=*/1));
  if (!c || PQstatus(c.get()) != CONNECTION_OK) {
    *err = c ? PQerrorMessage(c.get()) : "out of memory";
    while (!err->empty() && err->back() == '\n') err->pop_back();
    return nullptr;
  }
  PQsetNoticeProcessor(c.get(), ignore_notice, nullptr);
  return c;
}

class PgConnection final : public sql::SqlConnection {
 public:
  explicit PgConnection(ConnPtr c) : conn_(std::move(c)) {}

  Result<sql::SqlRows> query(const std::string& sql, const sql::SqlParams& params) override {
    auto res = run(sql, params);
    if (!res) return tl::unexpected(res.error());
    PGresult* r = res->get();
    sql::SqlRows rows;
    int n = PQntuples(r), m = PQnfields(r);
    rows.reserve(n);
    for (int i = 0; i < n; ++i) {
      sql::SqlRow row;
      row.cols.reserve(m);
      for (int j = 0; j < m; ++j) {
        if (PQgetisnull(r, i, j)) {
          row.cols.emplace_back(std::nullopt);
        } else {
          row.cols.emplace_back(std::string(PQgetvalue(r, i, j), PQgetlength(r, i, j)));
        }
      }
      rows.push_back(std::move(row));
    }
    return rows;
  }

  Result<int64_t> exec(const std::string& sql, const sql::SqlParams& params) override {
    auto res = run(sql, params);
    if (!res) return tl::unexpected(res.error());
    const char* n = PQcmdTuples(res->get());  // "" for statements without a count
    int64_t count = 0;
    if (n) std::from_chars(n, n + std::strlen(n), count);
    return count;
  }

  Status begin() override { return simple("BEGIN"); }
  Status commit() override {
    auto r = run("COMMIT", {});
    if (!r) return tl::unexpected(r.error());
    // COMMIT of an aborted transaction "succeeds" with status ROLLBACK: say so.
    if (std::strcmp(PQcmdStatus(r->get()), "ROLLBACK") == 0) {
      return make_error(ErrorCode::conflict, "postgres: transaction was rolled back");
    }
    return {};
  }
  Status rollback() override { return simple("ROLLBACK"); }

  // True after a statement failed because the connection (not the SQL) broke.
  bool lost() const { return lost_ || PQstatus(conn_.get()) != CONNECTION_OK; }

  // Makes the connection usable again: cheap check, PQreset when it fails.
  bool revalidate() {
    if (PQstatus(conn_.get()) == CONNECTION_OK) {
      PgResultPtr r(PQexec(conn_.get(), "SELECT 1"));
      if (r && PQresultStatus(r.get()) == PGRES_TUPLES_OK) {
        lost_ = false;
        return true;
      }
    }
    PQreset(conn_.get());
    prepared_.clear();  // a new session: the server forgot the old one's statements
    lost_ = PQstatus(conn_.get()) != CONNECTION_OK;
    if (!lost_) PQsetNoticeProcessor(conn_.get(), ignore_notice, nullptr);
    return !lost_;
  }

  uint64_t epoch = 0;  // pool epoch this connection was last validated at

 private:
  Status simple(const char* sql) {
    auto r = run(sql, {});
    if (!r) return tl::unexpected(r.error());
    return {};
  }

  Result<PgResultPtr> run(const std::string& sql, const sql::SqlParams& params) {
    std::vector<Oid> types(params.size(), 0);
    std::vector<std::string> text(params.size());
    std::vector<const char*> values(params.size(), nullptr);
    // The cache key is the text plus the parameter types: a prepared statement's types are
    // fixed, and the same text may be run with NULL (untyped) or a value in one position.
    std::string key;
    const bool cache = cacheable(sql);
    if (cache) {
      key.reserve(sql.size() + params.size() + 1);
      key.append(sql).push_back('\0');
    }
    for (size_t i = 0; i < params.size(); ++i) {
      if (std::holds_alternative<int64_t>(params[i])) {
        types[i] = kInt8Oid;
        text[i] = std::to_string(std::get<int64_t>(params[i]));
        values[i] = text[i].c_str();
        if (cache) key += 'i';
      } else if (std::holds_alternative<std::string>(params[i])) {
        types[i] = kTextOid;
        values[i] = std::get<std::string>(params[i]).c_str();
        if (cache) key += 't';
      } else if (cache) {
        key += 'n';
      }
    }
    const int n = static_cast<int>(params.size());
    PgResultPtr r;  // after a failed PQprepare: its answer (the SQL's error, as if executed)
    const std::string* name = cache ? prepare(key, sql, n, types.data(), &r) : nullptr;
    if (name) {
      r.reset(PQexecPrepared(conn_.get(), name->c_str(), n, values.data(), nullptr, nullptr, 0));
    } else if (!r) {  // not cacheable, the cache is full, or PQprepare got no answer at all
      r.reset(PQexecParams(conn_.get(), sql.c_str(), n, types.data(), values.data(), nullptr,
                           nullptr, 0));
    }
    ExecStatusType st = r ? PQresultStatus(r.get()) : PGRES_FATAL_ERROR;
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) return r;
    const char* state = r ? PQresultErrorField(r.get(), PG_DIAG_SQLSTATE) : nullptr;
    // "cached plan must not change result type": a table changed under a prepared
    // statement (another manager migrated the schema). Forget it: the next call prepares
    // it again. (The server keeps the old one until the session ends; names are not reused.)
    if (name && state && std::strcmp(state, "0A000") == 0) prepared_.erase(key);
    std::string msg = r ? PQresultErrorMessage(r.get()) : "";
    if (msg.empty()) msg = PQerrorMessage(conn_.get());
    while (!msg.empty() && msg.back() == '\n') msg.pop_back();
    ErrorCode code = code_for_sqlstate(state);
    if (PQstatus(conn_.get()) != CONNECTION_OK) {
      lost_ = true;
      code = ErrorCode::unavailable;
    }
    return make_error(code, "postgres: " + msg);
  }

  // The name of key's prepared statement, preparing it on first use. nullptr when it is
  // not prepared: the cache is full, or PQprepare failed (its result, if any, in *failed).
  const std::string* prepare(const std::string& key, const std::string& sql, int n,
                             const Oid* types, PgResultPtr* failed) {
    if (auto it = prepared_.find(key); it != prepared_.end()) return &it->second;
    if (prepared_.size() >= kMaxPrepared) return nullptr;
    std::string name = "strata_" + std::to_string(++next_statement_);
    PgResultPtr r(PQprepare(conn_.get(), name.c_str(), sql.c_str(), n, types));
    if (!r || PQresultStatus(r.get()) != PGRES_COMMAND_OK) {
      *failed = std::move(r);
      return nullptr;
    }
    return &prepared_.emplace(key, std::move(name)).first->second;
  }

  ConnPtr conn_;
  bool lost_ = false;
  // Statement cache: key (SQL text, NUL, one letter per parameter type) -> statement name.
  // No lock: a connection is used by one thread at a time (it is leased).
  std::unordered_map<std::string, std::string> prepared_;
  uint64_t next_statement_ = 0;
};

class PgDatabase final : public sql::SqlDatabase {
 public:
  PgDatabase(std::string conninfo, std::string password, int pool_size,
             std::unique_ptr<PgConnection> first)
      : conninfo_(std::move(conninfo)),
        password_(std::move(password)),
        max_(pool_size < 1 ? 1 : pool_size) {
    idle_.push_back(first.get());
    all_.push_back(std::move(first));
  }

  std::string backend() const override { return "postgres"; }

  Result<sql::Lease> acquire() override {
    std::unique_lock lock(mu_);
    if (!cv_.wait_for(lock, std::chrono::seconds(30), [&] {
          return !idle_.empty() || static_cast<int>(all_.size()) + opening_ < max_;
        })) {
      return unavailable("postgres: no free connection in the pool after 30 s");
    }
    PgConnection* conn = nullptr;
    if (!idle_.empty()) {
      conn = idle_.back();
      idle_.pop_back();
      uint64_t epoch = epoch_;
      lock.unlock();
      if (conn->epoch < epoch || conn->lost()) {
        if (!conn->revalidate()) {
          release(conn);
          return unavailable("postgres: lost the server and cannot reconnect");
        }
      }
      conn->epoch = epoch;
    } else {
      ++opening_;  // counts toward the pool size while connecting without the lock
      uint64_t epoch = epoch_;
      lock.unlock();
      std::string err;
      ConnPtr c = connect(conninfo_, password_, &err);
      lock.lock();
      --opening_;
      if (!c) {
        cv_.notify_one();
        return unavailable("postgres: connect: " + err);
      }
      all_.push_back(std::make_unique<PgConnection>(std::move(c)));
      conn = all_.back().get();
      conn->epoch = epoch;
    }
    return sql::Lease(conn, [this, conn] { release(conn); });
  }

  std::string event_append_lock_sql() const override {
    return "SELECT pg_advisory_xact_lock(7311001)";
  }
  std::string migration_lock_sql() const override {
    return "SELECT pg_advisory_xact_lock(7311002)";
  }
  const std::vector<sql::Migration>& migrations() const override { return pg_migrations(); }
  // strata_json_member (migration 6): a cast that fails is NULL, not an error.
  std::string json_member_sql(const std::string& column, const std::string& key) const override {
    return "strata_json_member(" + column + ", '" + key + "')";
  }

 private:
  void release(PgConnection* conn) {
    std::lock_guard lock(mu_);
    if (conn->lost()) ++epoch_;  // the server went away: check every idle connection
    idle_.push_back(conn);
    cv_.notify_one();
  }

  const std::string conninfo_;
  const std::string password_;
  const int max_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::unique_ptr<PgConnection>> all_;  // owns every connection
  std::vector<PgConnection*> idle_;                 // not owned: entries of all_
  int opening_ = 0;
  uint64_t epoch_ = 0;
};

}  // namespace

Result<std::shared_ptr<sql::SqlDatabase>> open_pg_database(const std::string& conninfo,
                                                           int pool_size,
                                                           const std::string& password) {
  std::string err;
  ConnPtr c = connect(conninfo, password, &err);
  if (!c) return unavailable("postgres: connect: " + err);
  return std::shared_ptr<sql::SqlDatabase>(std::make_shared<PgDatabase>(
      conninfo, password, pool_size, std::make_unique<PgConnection>(std::move(c))));
}

}  // namespace strata::store::postgres
