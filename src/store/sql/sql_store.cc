// SqlStore, part 1: plumbing (ping, schema version, transactions, CAS helpers), hosts
// and VMs. Tasks, events, tokens and metrics are in sql_store_more.cc.
#include "store/sql/sql_store.h"

#include <cctype>
#include <chrono>
#include <algorithm>
#include <functional>
#include <random>
#include <thread>

#include <nlohmann/json.hpp>

#include "store/sql/codec.h"
#include "store/sql/paging.h"

namespace strata::store::sql {

namespace {

template <class T>
Result<T> first_or_not_found(Result<SqlRows> rows, Result<T> (*decode)(const SqlRow&),
                             const std::string& what) {
  if (!rows) return tl::unexpected(rows.error());
  if (rows->empty()) return not_found(what + " not found");
  return decode(rows->front());
}

// Jitter for transaction_retrying's pause (one generator per thread: no lock, no sharing).
std::minstd_rand& retry_rng() {
  thread_local std::minstd_rand rng(std::random_device{}());
  return rng;
}

std::string cols_from(const char* cols, const std::string& where) {
  return std::string("SELECT ") + cols + where;
}

// A unique violation on hosts says which value is taken (both databases name the column or
// its index in the message: "hosts.address" / "hosts_address").
Error host_unique_error(Error e, const HostRecord& h) {
  if (e.code != ErrorCode::already_exists) return e;
  if (e.message.find("address") != std::string::npos)
    return Error{ErrorCode::already_exists,
                 "another host is already enrolled with address " + h.address, "address"};
  if (e.message.find("name") != std::string::npos)
    return Error{ErrorCode::already_exists, "a host named " + h.name + " already exists", "name"};
  return e;
}

}  // namespace

int64_t SqlStore::now_ms() const {
  auto wall = clock_ ? clock_->wall() : std::chrono::system_clock::now();
  return std::chrono::duration_cast<std::chrono::milliseconds>(wall.time_since_epoch()).count();
}

Status SqlStore::ping() {
  return with_conn(
      [](SqlConnection& c) -> Status {
        auto r = c.query("SELECT 1", {});
        if (!r) return tl::unexpected(r.error());
        return {};
      },
      true);
}

Result<int64_t> SqlStore::schema_version() {
  return with_conn(
      [](SqlConnection& c) -> Result<int64_t> {
        auto r = c.query("SELECT COALESCE(MAX(version), 0) FROM schema_migrations", {});
        if (!r) return tl::unexpected(r.error());
        return r->empty() ? 0 : r->front().int64(0);
      },
      true);
}

namespace {

// The connection as seen by a transaction function. PostgreSQL aborts a transaction at
// its first failed statement (and a later COMMIT quietly rolls back); SQLite does not.
// To give both one meaning, the first failed statement poisons the transaction: later
// statements fail, and the transaction returns that first error even if fn swallowed it.
class PoisoningConnection final : public SqlConnection {
 public:
  explicit PoisoningConnection(SqlConnection& c) : c_(c) {}
  Result<SqlRows> query(const std::string& sql, const SqlParams& params) override {
    if (first_error_) return tl::unexpected(aborted());
    return note(c_.query(sql, params));
  }
  Result<int64_t> exec(const std::string& sql, const SqlParams& params) override {
    if (first_error_) return tl::unexpected(aborted());
    return note(c_.exec(sql, params));
  }
  Status begin() override { return {}; }  // the owner handles the real transaction
  Status commit() override { return {}; }
  Status rollback() override { return {}; }
  const std::optional<Error>& first_error() const { return first_error_; }

 private:
  template <class T>
  Result<T> note(Result<T> r) {
    if (!r) first_error_ = r.error();
    return r;
  }
  Error aborted() const {
    return Error{ErrorCode::failed_precondition,
                 "transaction aborted by an earlier error: " + first_error_->message,
                 {}};
  }
  SqlConnection& c_;
  std::optional<Error> first_error_;
};

}  // namespace

Status SqlStore::transaction(const std::function<Status(Store& tx)>& fn) {
  if (tx_) return fn(*this);
  return with_tx([&](SqlConnection& c) -> Status {
    PoisoningConnection guarded(c);
    SqlStore inner(db_, clock_, &guarded);
    Status st = fn(inner);
    if (st && guarded.first_error()) return tl::unexpected(*guarded.first_error());
    return st;
  });
}

Status SqlStore::transaction_retrying(const std::function<Status(Store& tx)>& fn,
                                      int attempts) {
  if (tx_) return fn(*this);
  Status st;
  for (int run = 1;; ++run) {
    st = transaction(fn);
    if (st || st.error().code != ErrorCode::conflict || run >= attempts) return st;
    // The writer that won is committed by now; a growing, jittered pause keeps two
    // losers from colliding again in lock step.
    std::this_thread::sleep_for(std::chrono::microseconds(
        (200 << std::min(run, 5)) + std::uniform_int_distribution<int>(0, 500)(retry_rng())));
  }
}

Error SqlStore::version_miss(SqlConnection& c, const std::string& table, const std::string& kind,
                             const std::string& id, int64_t expected) {
  auto rows = c.query("SELECT resource_version FROM " + table + " WHERE id = $1", {id});
  if (!rows) return rows.error();
  if (rows->empty()) return Error{ErrorCode::not_found, kind + " " + id + " not found", {}};
  return Error{ErrorCode::conflict,
               kind + " " + id + ": resource_version " + std::to_string(expected) +
                   " does not match stored " + std::to_string(rows->front().int64(0)),
               "resource_version"};
}

Status SqlStore::delete_versioned(const std::string& table, const std::string& kind,
                                  const std::string& id, std::optional<int64_t> expected) {
  return with_conn([&](SqlConnection& c) -> Status {
    Result<int64_t> n =
        expected ? c.exec("DELETE FROM " + table + " WHERE id = $1 AND resource_version = $2",
                          {id, *expected})
                 : c.exec("DELETE FROM " + table + " WHERE id = $1", {id});
    if (!n) return tl::unexpected(n.error());
    if (*n > 0) return {};
    if (!expected) return not_found(kind + " " + id + " not found");
    return tl::unexpected(version_miss(c, table, kind, id, *expected));
  });
}

// ---- hosts ----

Result<HostRecord> SqlStore::create_host(const HostRecord& in) {
  if (auto st = validate_host(in); !st) return tl::unexpected(st.error());
  HostRecord h = in;
  int64_t now = now_ms();
  if (h.id.empty()) h.id = new_uuid_v7(now);
  h.resource_version = 1;
  h.created_ms = h.updated_ms = now;
  h.inventory = json_or_empty_object(h.inventory);
  auto r = with_conn([&](SqlConnection& c) {
    return c.exec(
        "INSERT INTO hosts (id, resource_version, created_ms, updated_ms, name, address, state, "
        "labels, accelerator, inventory, last_heartbeat_ms, cpu_threads, memory_mib, "
        "cert_fingerprint, cluster) VALUES "
        "($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
        {h.id, h.resource_version, h.created_ms, h.updated_ms, h.name, h.address, h.state,
         encode_labels(h.labels), h.accelerator, h.inventory, h.last_heartbeat_ms, h.cpu_threads,
         h.memory_mib, h.cert_fingerprint, h.cluster});
  });
  if (!r) return tl::unexpected(host_unique_error(r.error(), h).wrap("create host " + h.name));
  return h;
}

Result<HostRecord> SqlStore::get_host(const std::string& id) {
  return with_conn(
      [&](SqlConnection& c) {
        return first_or_not_found<HostRecord>(
            c.query(cols_from(kHostCols, " FROM hosts WHERE id = $1"), {id}), decode_host,
            "host " + id);
      },
      true);
}

Result<HostRecord> SqlStore::get_host_by_name(const std::string& name) {
  return with_conn(
      [&](SqlConnection& c) {
        return first_or_not_found<HostRecord>(
            c.query(cols_from(kHostCols, " FROM hosts WHERE name = $1"), {name}), decode_host,
            "host named " + name);
      },
      true);
}

Result<std::vector<HostRecord>> SqlStore::list_hosts(const HostListOptions& o) {
  std::vector<std::string> conds;
  SqlParams params;
  if (o.state) {
    params.emplace_back(*o.state);
    conds.push_back("state = " + placeholder(params.size()));
  }
  if (!o.name_contains.empty())
    conds.push_back(name_contains_condition("LOWER(name)", o.name_contains, params));
  return with_conn(
      [&](SqlConnection& c) {
        return select_paged<HostRecord>(c, kHostCols, "hosts", conds, params, o.after_id, o.limit,
                                        o.label_selector, decode_host);
      },
      true);
}

Result<std::vector<std::pair<std::string, int64_t>>> SqlStore::list_host_versions() {
  using Versions = std::vector<std::pair<std::string, int64_t>>;
  return with_conn(
      [&](SqlConnection& c) -> Result<Versions> {
        auto rows = c.query("SELECT id, resource_version FROM hosts ORDER BY id", {});
        if (!rows) return tl::unexpected(rows.error());
        Versions out;
        out.reserve(rows->size());
        for (const auto& r : *rows) out.emplace_back(r.text(0), r.int64(1));
        return out;
      },
      true);
}

Result<std::vector<std::pair<std::string, int64_t>>> SqlStore::list_vm_versions(
    const std::string& host_id) {
  using Versions = std::vector<std::pair<std::string, int64_t>>;
  return with_conn(
      [&](SqlConnection& c) -> Result<Versions> {
        auto rows = c.query("SELECT id, resource_version FROM vms WHERE host_id = $1 ORDER BY id",
                            {host_id});
        if (!rows) return tl::unexpected(rows.error());
        Versions out;
        out.reserve(rows->size());
        for (const auto& r : *rows) out.emplace_back(r.text(0), r.int64(1));
        return out;
      },
      true);
}

Result<HostRecord> SqlStore::update_host(const HostRecord& h) {
  if (auto st = validate_host(h); !st) return tl::unexpected(st.error());
  return with_conn([&](SqlConnection& c) -> Result<HostRecord> {
    auto rows = c.query(
        "UPDATE hosts SET name = $1, address = $2, state = $3, labels = $4, accelerator = $5, "
        "inventory = $6, last_heartbeat_ms = $7, cpu_threads = $8, memory_mib = $9, "
        "updated_ms = $10, cert_fingerprint = $11, cluster = $12, "
        "resource_version = resource_version + 1 "
        "WHERE id = $13 AND resource_version = $14 RETURNING " +
            std::string(kHostCols),
        {h.name, h.address, h.state, encode_labels(h.labels), h.accelerator,
         json_or_empty_object(h.inventory), h.last_heartbeat_ms, h.cpu_threads, h.memory_mib,
         now_ms(), h.cert_fingerprint, h.cluster, h.id, h.resource_version});
    if (!rows) return tl::unexpected(host_unique_error(rows.error(), h).wrap("update host " + h.id));
    if (rows->empty())
      return tl::unexpected(version_miss(c, "hosts", "host", h.id, h.resource_version));
    return decode_host(rows->front());
  });
}

Result<HostRecord> SqlStore::touch_host_heartbeat(const std::string& id, int64_t heartbeat_ms,
                                                  const std::string& state) {
  if (auto st = validate_host_state(state); !st) return tl::unexpected(st.error());
  return with_conn([&](SqlConnection& c) -> Result<HostRecord> {
    return first_or_not_found<HostRecord>(
        c.query("UPDATE hosts SET last_heartbeat_ms = $1, state = $2, updated_ms = $3, "
                "resource_version = resource_version + 1 WHERE id = $4 RETURNING " +
                    std::string(kHostCols),
                {heartbeat_ms, state, now_ms(), id}),
        decode_host, "host " + id);
  });
}

Status SqlStore::delete_host(const std::string& id, std::optional<int64_t> expected_version) {
  auto st = delete_versioned("hosts", "host", id, expected_version);
  if (!st && st.error().code == ErrorCode::failed_precondition) {
    return make_error(ErrorCode::failed_precondition, "host " + id + " still has VMs placed on it");
  }
  return st;
}

// ---- VMs ----

Result<VmRecord> SqlStore::create_vm(const VmRecord& in) {
  if (auto st = validate_vm(in); !st) return tl::unexpected(st.error());
  VmRecord v = in;
  int64_t now = now_ms();
  if (v.id.empty()) v.id = new_uuid_v7(now);
  v.resource_version = 1;
  v.created_ms = v.updated_ms = now;
  v.spec = json_or_empty_object(v.spec);
  v.status = json_or_empty_object(v.status);
  if (v.deletion_requested && v.deletion_requested_ms == 0) v.deletion_requested_ms = now;
  if (!v.deletion_requested) v.deletion_requested_ms = 0;
  auto r = with_conn([&](SqlConnection& c) {
    return c.exec(
        "INSERT INTO vms (id, resource_version, created_ms, updated_ms, name, spec, "
        "desired_state, host_id, status, labels, deletion_requested, deletion_requested_ms) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        {v.id, v.resource_version, v.created_ms, v.updated_ms, v.name, v.spec, v.desired_state,
         v.host_id ? SqlValue(*v.host_id) : SqlValue(nullptr), v.status, encode_labels(v.labels),
         int64_t{v.deletion_requested ? 1 : 0}, v.deletion_requested_ms});
  });
  if (!r) {
    Error e = r.error().wrap("create vm " + v.name);
    if (e.code == ErrorCode::failed_precondition) e.field = "host_id";
    return tl::unexpected(e);
  }
  return v;
}

Result<VmRecord> SqlStore::get_vm(const std::string& id) {
  return with_conn(
      [&](SqlConnection& c) {
        return first_or_not_found<VmRecord>(
            c.query(cols_from(kVmCols, " FROM vms WHERE id = $1"), {id}), decode_vm, "vm " + id);
      },
      true);
}

Result<VmRecord> SqlStore::get_vm_by_name(const std::string& name) {
  return with_conn(
      [&](SqlConnection& c) {
        return first_or_not_found<VmRecord>(
            c.query(cols_from(kVmCols, " FROM vms WHERE name = $1"), {name}), decode_vm,
            "vm named " + name);
      },
      true);
}

Result<std::vector<VmRecord>> SqlStore::list_vms(const VmListOptions& o) {
  std::vector<std::string> conds;
  SqlParams params;
  if (o.host_id) {
    params.emplace_back(*o.host_id);
    conds.push_back("host_id = " + placeholder(params.size()));
  }
  if (!o.name_contains.empty())
    conds.push_back(name_contains_condition("name", o.name_contains, params));
  PageOrder order;
  std::string after = o.after_id;
  if (o.order != VmListOptions::Order::id) {
    order.column = "name";
    order.index = 4;  // kVmCols: id, resource_version, created_ms, updated_ms, name, ...
    order.descending = o.order == VmListOptions::Order::name_desc;
    after = o.after_name;
  }
  std::function<bool(const VmRecord&)> keep;
  if (o.state)
    keep = [&state = *o.state](const VmRecord& v) {
      auto j = nlohmann::json::parse(v.status, nullptr, false);
      return j.is_object() && j.value("state", std::string()) == state;
    };
  return with_conn(
      [&](SqlConnection& c) {
        return select_paged<VmRecord>(c, kVmCols, "vms", conds, params, after, o.limit,
                                      o.label_selector, decode_vm, order, keep);
      },
      true);
}

Result<VmRecord> SqlStore::update_vm(const VmRecord& v) {
  if (auto st = validate_vm(v); !st) return tl::unexpected(st.error());
  int64_t now = now_ms();
  int64_t del_ms =
      v.deletion_requested ? (v.deletion_requested_ms ? v.deletion_requested_ms : now) : 0;
  return with_conn([&](SqlConnection& c) -> Result<VmRecord> {
    auto rows = c.query(
        "UPDATE vms SET name = $1, spec = $2, desired_state = $3, host_id = $4, status = $5, "
        "labels = $6, deletion_requested = $7, deletion_requested_ms = $8, updated_ms = $9, "
        "resource_version = resource_version + 1 "
        "WHERE id = $10 AND resource_version = $11 RETURNING " +
            std::string(kVmCols),
        {v.name, json_or_empty_object(v.spec), v.desired_state,
         v.host_id ? SqlValue(*v.host_id) : SqlValue(nullptr), json_or_empty_object(v.status),
         encode_labels(v.labels), int64_t{v.deletion_requested ? 1 : 0}, del_ms, now, v.id,
         v.resource_version});
    if (!rows) {
      Error e = rows.error().wrap("update vm " + v.id);
      if (e.code == ErrorCode::failed_precondition) e.field = "host_id";
      return tl::unexpected(e);
    }
    if (rows->empty())
      return tl::unexpected(version_miss(c, "vms", "vm", v.id, v.resource_version));
    return decode_vm(rows->front());
  });
}

Status SqlStore::delete_vm(const std::string& id, std::optional<int64_t> expected_version) {
  return delete_versioned("vms", "vm", id, expected_version);
}

}  // namespace strata::store::sql
