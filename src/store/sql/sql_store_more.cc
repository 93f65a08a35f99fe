// SqlStore, part 2: tasks, the event log, API tokens, join tokens and bounded host
// metrics.
#include "store/sql/codec.h"
#include "store/sql/paging.h"
#include "store/sql/sql_store.h"

namespace strata::store::sql {

namespace {
template <class T, class Decode>
Result<T> first_or(Result<SqlRows> rows, Decode decode, const std::string& what) {
  if (!rows) return tl::unexpected(rows.error());
  if (rows->empty()) return not_found(what + " not found");
  return decode(rows->front());
}
SqlValue opt_int(const std::optional<int64_t>& v) { return v ? SqlValue(*v) : SqlValue(nullptr); }
}  // namespace

// ---- dashboard summary ----

Result<StoreSummary> SqlStore::summarize(int recent) {
  if (recent < 0) return invalid_argument("recent", "must be >= 0");
  const std::string state = db_->json_member_sql("status", "state");
  return with_conn(
      [&](SqlConnection& c) -> Result<StoreSummary> {
        StoreSummary s;
        // One pass over vms: per observed state, how many, how many being deleted and
        // how many without a host.
        auto vms = c.query("SELECT COALESCE(" + state + ", ''), COUNT(*), "
                           "SUM(CASE WHEN deletion_requested <> 0 THEN 1 ELSE 0 END), "
                           "SUM(CASE WHEN host_id IS NULL THEN 1 ELSE 0 END) "
                           "FROM vms GROUP BY 1",
                           {});
        if (!vms) return tl::unexpected(vms.error().wrap("summarize vms"));
        for (const auto& row : *vms) {
          int64_t n = row.int64(1);
          s.vms += n;
          s.vms_by_state[row.text(0)] += n;
          s.vms_deleting += row.int64(2);
          s.vms_unplaced += row.int64(3);
        }
        auto tasks = c.query("SELECT state, COUNT(*) FROM tasks GROUP BY state", {});
        if (!tasks) return tl::unexpected(tasks.error().wrap("summarize tasks"));
        for (const auto& row : *tasks) s.tasks_by_state[row.text(0)] = row.int64(1);
        if (recent == 0) return s;
        auto newest = [&](const std::string& where, std::vector<TaskRecord>& out) -> Status {
          auto rows = c.query(std::string("SELECT ") + kTaskCols + " FROM tasks" + where +
                                  " ORDER BY id DESC LIMIT $1",
                              {int64_t{recent}});
          if (!rows) return tl::unexpected(rows.error().wrap("summarize tasks"));
          for (const auto& row : *rows) {
            auto t = decode_task(row);
            if (!t) return tl::unexpected(t.error());
            out.push_back(std::move(*t));
          }
          return {};
        };
        if (auto st = newest("", s.recent_tasks); !st) return tl::unexpected(st.error());
        if (auto st = newest(" WHERE state = 'failed'", s.failed_tasks); !st)
          return tl::unexpected(st.error());
        return s;
      },
      true);
}

// ---- tasks ----

Result<TaskRecord> SqlStore::create_task(const TaskRecord& in) {
  if (auto st = validate_task(in); !st) return tl::unexpected(st.error());
  TaskRecord t = in;
  int64_t now = now_ms();
  if (t.id.empty()) t.id = new_uuid_v7(now);
  t.resource_version = 1;
  t.created_ms = t.updated_ms = now;
  t.result = json_or_empty_object(t.result);
  auto r = with_conn([&](SqlConnection& c) {
    return c.exec(
        "INSERT INTO tasks (id, resource_version, created_ms, updated_ms, kind, target_kind, "
        "target_id, state, progress, message, result) VALUES "
        "($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        {t.id, t.resource_version, t.created_ms, t.updated_ms, t.kind, t.target_kind, t.target_id,
         t.state, int64_t{t.progress}, t.message, t.result});
  });
  if (!r) return tl::unexpected(r.error().wrap("create task " + t.kind));
  return t;
}

Result<TaskRecord> SqlStore::get_task(const std::string& id) {
  return with_conn(
      [&](SqlConnection& c) {
        return first_or<TaskRecord>(
            c.query(std::string("SELECT ") + kTaskCols + " FROM tasks WHERE id = $1", {id}),
            decode_task, "task " + id);
      },
      true);
}

Result<std::vector<TaskRecord>> SqlStore::list_tasks(const TaskListOptions& o) {
  std::vector<std::string> conds;
  SqlParams params;
  if (o.target_id) {
    params.emplace_back(*o.target_id);
    conds.push_back("target_id = " + placeholder(params.size()));
  }
  if (o.state) {
    params.emplace_back(*o.state);
    conds.push_back("state = " + placeholder(params.size()));
  }
  return with_conn(
      [&](SqlConnection& c) {
        return select_paged<TaskRecord>(c, kTaskCols, "tasks", conds, params, o.after_id, o.limit,
                                        Labels{}, decode_task, PageOrder{"id", 0, o.newest_first});
      },
      true);
}

Result<TaskRecord> SqlStore::update_task(const TaskRecord& t) {
  if (auto st = validate_task(t); !st) return tl::unexpected(st.error());
  return with_conn([&](SqlConnection& c) -> Result<TaskRecord> {
    auto rows = c.query(
        "UPDATE tasks SET kind = $1, target_kind = $2, target_id = $3, state = $4, "
        "progress = $5, message = $6, result = $7, updated_ms = $8, "
        "resource_version = resource_version + 1 "
        "WHERE id = $9 AND resource_version = $10 RETURNING " +
            std::string(kTaskCols),
        {t.kind, t.target_kind, t.target_id, t.state, int64_t{t.progress}, t.message,
         json_or_empty_object(t.result), now_ms(), t.id, t.resource_version});
    if (!rows) return tl::unexpected(rows.error().wrap("update task " + t.id));
    if (rows->empty()) {
      return tl::unexpected(version_miss(c, "tasks", "task", t.id, t.resource_version));
    }
    return decode_task(rows->front());
  });
}

Status SqlStore::delete_task(const std::string& id, std::optional<int64_t> expected_version) {
  return delete_versioned("tasks", "task", id, expected_version);
}

// ---- events ----

Result<EventRecord> SqlStore::append_event(const EventRecord& in) {
  EventRecord e = in;
  if (e.action.empty()) return invalid_argument("action", "event action is required");
  if (e.time_ms == 0) e.time_ms = now_ms();
  return with_tx([&](SqlConnection& c) -> Result<EventRecord> {
    if (auto lock = db_->event_append_lock_sql(); !lock.empty()) {
      if (auto r = c.query(lock, {}); !r) return tl::unexpected(r.error());
    }
    auto rows = c.query(
        "INSERT INTO events (time_ms, actor, action, target, result, message) "
        "VALUES ($1, $2, $3, $4, $5, $6) RETURNING seq",
        {e.time_ms, e.actor, e.action, e.target, e.result, e.message});
    if (!rows) return tl::unexpected(rows.error().wrap("append event"));
    if (rows->empty()) return internal_error("append event: no seq returned");
    e.seq = rows->front().int64(0);
    return e;
  });
}

Result<std::vector<EventRecord>> SqlStore::list_events(int64_t after_seq, int limit) {
  if (limit < 0) return invalid_argument("limit", "must be >= 0");
  return with_conn(
      [&](SqlConnection& c) -> Result<std::vector<EventRecord>> {
        std::string sql =
            std::string("SELECT ") + kEventCols + " FROM events WHERE seq > $1 ORDER BY seq";
        SqlParams p{after_seq};
        if (limit > 0) {
          sql += " LIMIT $2";
          p.emplace_back(int64_t{limit});
        }
        auto rows = c.query(sql, p);
        if (!rows) return tl::unexpected(rows.error());
        std::vector<EventRecord> out;
        out.reserve(rows->size());
        for (const auto& r : *rows) out.push_back(decode_event(r));
        return out;
      },
      true);
}

Result<std::vector<EventRecord>> SqlStore::list_target_events(const std::string& target,
                                                              int64_t before_seq, int limit) {
  if (limit <= 0) return invalid_argument("limit", "must be > 0");
  return with_conn(
      [&](SqlConnection& c) -> Result<std::vector<EventRecord>> {
        std::string sql = std::string("SELECT ") + kEventCols + " FROM events WHERE target = $1";
        SqlParams p{target};
        if (before_seq > 0) {
          sql += " AND seq < $2 ORDER BY seq DESC LIMIT $3";
          p.emplace_back(before_seq);
        } else {
          sql += " ORDER BY seq DESC LIMIT $2";
        }
        p.emplace_back(int64_t{limit});
        auto rows = c.query(sql, p);
        if (!rows) return tl::unexpected(rows.error());
        std::vector<EventRecord> out;
        out.reserve(rows->size());
        for (const auto& r : *rows) out.push_back(decode_event(r));
        return out;
      },
      true);
}

Result<int64_t> SqlStore::last_event_seq() {
  return with_conn(
      [](SqlConnection& c) -> Result<int64_t> {
        auto r = c.query("SELECT COALESCE(MAX(seq), 0) FROM events", {});
        if (!r) return tl::unexpected(r.error());
        return r->empty() ? 0 : r->front().int64(0);
      },
      true);
}

Result<int64_t> SqlStore::prune_events(int64_t before_ms, int64_t keep_last, int64_t batch) {
  if (before_ms < 0 || keep_last < 0 || batch < 1)
    return invalid_argument("batch", "prune_events: negative limit or batch < 1");
  if (before_ms == 0 && keep_last == 0) return int64_t{0};
  return with_tx([&](SqlConnection& c) -> Result<int64_t> {
    // Events are deleted as a prefix of seq order, so each limit is one seq: the first
    // event new enough to keep, and the keep_last-th newest. Everything below either goes
    // (the larger bound wins). Both lookups walk the primary key from one end and stop
    // early once the table is pruned.
    std::optional<int64_t> bound;
    auto keep_from = [&](const std::optional<int64_t>& seq) {
      if (seq && (!bound || *seq > *bound)) bound = seq;
    };
    if (before_ms > 0) {
      auto r = c.query("SELECT seq FROM events WHERE time_ms >= $1 ORDER BY seq LIMIT 1",
                       {before_ms});
      if (!r) return tl::unexpected(r.error());
      if (!r->empty()) {
        keep_from(r->front().int64(0));
      } else {
        auto last = c.query("SELECT COALESCE(MAX(seq), 0) + 1 FROM events", {});
        if (!last) return tl::unexpected(last.error());
        keep_from(last->front().int64(0));
      }
    }
    if (keep_last > 0) {
      auto r = c.query("SELECT seq FROM events ORDER BY seq DESC LIMIT 1 OFFSET $1",
                       {keep_last - 1});
      if (!r) return tl::unexpected(r.error());
      if (!r->empty()) keep_from(r->front().int64(0));
    }
    if (!bound) return int64_t{0};
    return c.exec(
        "DELETE FROM events WHERE seq IN "
        "(SELECT seq FROM events WHERE seq < $1 ORDER BY seq LIMIT $2)",
        {*bound, batch});
  });
}

// ---- API tokens ----

Result<TokenRecord> SqlStore::create_token(const TokenRecord& in) {
  if (auto st = validate_token(in); !st) return tl::unexpected(st.error());
  TokenRecord t = in;
  int64_t now = now_ms();
  if (t.id.empty()) t.id = new_uuid_v7(now);
  t.resource_version = 1;
  t.created_ms = t.updated_ms = now;
  auto r = with_conn([&](SqlConnection& c) {
    return c.exec(
        "INSERT INTO api_tokens (id, resource_version, created_ms, updated_ms, name, role, "
        "secret_hash, expires_ms, revoked) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        {t.id, t.resource_version, t.created_ms, t.updated_ms, t.name, t.role, t.secret_hash,
         opt_int(t.expires_ms), int64_t{t.revoked ? 1 : 0}});
  });
  if (!r) return tl::unexpected(r.error().wrap("create token " + t.name));
  return t;
}

Result<TokenRecord> SqlStore::get_token(const std::string& id) {
  return with_conn(
      [&](SqlConnection& c) {
        return first_or<TokenRecord>(
            c.query(std::string("SELECT ") + kTokenCols + " FROM api_tokens WHERE id = $1", {id}),
            decode_token, "token " + id);
      },
      true);
}

Result<TokenRecord> SqlStore::get_token_by_hash(const std::string& secret_hash) {
  return with_conn(
      [&](SqlConnection& c) {
        return first_or<TokenRecord>(
            c.query(std::string("SELECT ") + kTokenCols + " FROM api_tokens WHERE secret_hash = $1",
                    {secret_hash}),
            decode_token, "token");  // never echo the hash
      },
      true);
}

Result<std::vector<TokenRecord>> SqlStore::list_tokens(const ListOptions& o) {
  return with_conn(
      [&](SqlConnection& c) {
        return select_paged<TokenRecord>(
            c, kTokenCols, "api_tokens", {}, {}, o.after_id, o.limit, Labels{},
            [](const SqlRow& r) -> Result<TokenRecord> { return decode_token(r); });
      },
      true);
}

Result<TokenRecord> SqlStore::revoke_token(const std::string& id) {
  return with_conn([&](SqlConnection& c) {
    return first_or<TokenRecord>(
        c.query("UPDATE api_tokens SET revoked = 1, updated_ms = $1, "
                "resource_version = resource_version + 1 WHERE id = $2 RETURNING " +
                    std::string(kTokenCols),
                {now_ms(), id}),
        decode_token, "token " + id);
  });
}

Status SqlStore::delete_token(const std::string& id) {
  return delete_versioned("api_tokens", "token", id, std::nullopt);
}

// ---- join tokens ----

Result<JoinTokenRecord> SqlStore::create_join_token(const JoinTokenRecord& in) {
  if (auto st = validate_secret_hash(in.secret_hash); !st) return tl::unexpected(st.error());
  JoinTokenRecord t = in;
  t.created_ms = now_ms();
  if (t.id.empty()) t.id = new_uuid_v7(t.created_ms);
  if (!t.used_by_host) t.used_ms = 0;
  auto r = with_conn([&](SqlConnection& c) {
    return c.exec(
        "INSERT INTO join_tokens (id, created_ms, secret_hash, expires_ms, used_by_host, used_ms) "
        "VALUES ($1, $2, $3, $4, $5, $6)",
        {t.id, t.created_ms, t.secret_hash, opt_int(t.expires_ms),
         t.used_by_host ? SqlValue(*t.used_by_host) : SqlValue(nullptr), t.used_ms});
  });
  if (!r) return tl::unexpected(r.error().wrap("create join token"));
  return t;
}

Result<JoinTokenRecord> SqlStore::get_join_token_by_hash(const std::string& secret_hash) {
  return with_conn(
      [&](SqlConnection& c) {
        return first_or<JoinTokenRecord>(c.query(std::string("SELECT ") + kJoinTokenCols +
                                                     " FROM join_tokens WHERE secret_hash = $1",
                                                 {secret_hash}),
                                         decode_join_token, "join token");
      },
      true);
}

Result<std::vector<JoinTokenRecord>> SqlStore::list_join_tokens() {
  return with_conn(
      [&](SqlConnection& c) -> Result<std::vector<JoinTokenRecord>> {
        auto rows =
            c.query(std::string("SELECT ") + kJoinTokenCols + " FROM join_tokens ORDER BY id", {});
        if (!rows) return tl::unexpected(rows.error());
        std::vector<JoinTokenRecord> out;
        for (const auto& r : *rows) out.push_back(decode_join_token(r));
        return out;
      },
      true);
}

Result<JoinTokenRecord> SqlStore::consume_join_token(const std::string& secret_hash,
                                                     const std::string& host_id, int64_t now) {
  if (host_id.empty()) return invalid_argument("host_id", "host id is required");
  return with_conn([&](SqlConnection& c) -> Result<JoinTokenRecord> {
    auto rows = c.query(
        "UPDATE join_tokens SET used_by_host = $1, used_ms = $2 WHERE secret_hash = $3 AND "
        "used_by_host IS NULL AND (expires_ms IS NULL OR expires_ms > $2) RETURNING " +
            std::string(kJoinTokenCols),
        {host_id, now, secret_hash});
    if (!rows) return tl::unexpected(rows.error());
    if (!rows->empty()) return decode_join_token(rows->front());
    auto cur = c.query(
        std::string("SELECT ") + kJoinTokenCols + " FROM join_tokens WHERE secret_hash = $1",
        {secret_hash});
    if (!cur) return tl::unexpected(cur.error());
    if (cur->empty()) return not_found("join token not found");
    auto t = decode_join_token(cur->front());
    if (t.used_by_host) return make_error(ErrorCode::conflict, "join token already used");
    return make_error(ErrorCode::failed_precondition, "join token expired");
  });
}

Status SqlStore::delete_join_token(const std::string& id) {
  return with_conn([&](SqlConnection& c) -> Status {
    auto n = c.exec("DELETE FROM join_tokens WHERE id = $1", {id});
    if (!n) return tl::unexpected(n.error());
    if (*n == 0) return not_found("join token " + id + " not found");
    return {};
  });
}

// ---- host metrics ----

Status SqlStore::append_host_metric(const HostMetricSample& in, int keep_last) {
  if (keep_last < 1) return invalid_argument("keep_last", "must be >= 1");
  if (in.host_id.empty()) return invalid_argument("host_id", "host id is required");
  HostMetricSample s = in;
  if (s.time_ms == 0) s.time_ms = now_ms();
  return with_tx([&](SqlConnection& c) -> Status {
    auto ins = c.exec("INSERT INTO host_metrics (host_id, time_ms, data) VALUES ($1, $2, $3)",
                      {s.host_id, s.time_ms, json_or_empty_object(s.data)});
    if (!ins) {
      Error e = ins.error().wrap("append metric for host " + s.host_id);
      if (e.code == ErrorCode::failed_precondition) e.field = "host_id";
      return tl::unexpected(e);
    }
    auto del = c.exec(
        "DELETE FROM host_metrics WHERE host_id = $1 AND seq NOT IN (SELECT seq FROM "
        "host_metrics WHERE host_id = $1 ORDER BY time_ms DESC, seq DESC LIMIT $2)",
        {s.host_id, int64_t{keep_last}});
    if (!del) return tl::unexpected(del.error());
    return {};
  });
}

Result<std::vector<HostMetricSample>> SqlStore::list_host_metrics(const std::string& host_id,
                                                                  int limit) {
  if (limit < 0) return invalid_argument("limit", "must be >= 0");
  return with_conn(
      [&](SqlConnection& c) -> Result<std::vector<HostMetricSample>> {
        std::string inner =
            "SELECT seq, host_id, time_ms, data FROM host_metrics WHERE host_id = $1 "
            "ORDER BY time_ms DESC, seq DESC";
        SqlParams p{host_id};
        if (limit > 0) {
          inner += " LIMIT $2";
          p.emplace_back(int64_t{limit});
        }
        auto rows = c.query(std::string("SELECT ") + kMetricCols + " FROM (" + inner +
                                ") recent ORDER BY time_ms, seq",
                            p);
        if (!rows) return tl::unexpected(rows.error());
        std::vector<HostMetricSample> out;
        out.reserve(rows->size());
        for (const auto& r : *rows) out.push_back(decode_metric(r));
        return out;
      },
      true);
}

}  // namespace strata::store::sql
