// The manager's store interface: typed records with compare-and-swap updates, an
// append-only event log, API/join tokens and bounded host metrics. SQLite and
// PostgreSQL implement it (src/store/sqlite, src/store/postgres); open_store() picks one
// from a URL. Every method is thread-safe and returns errors as values:
//   invalid_argument     a field is missing/out of range (Error::field names it)
//   not_found            no record with that id/name/hash
//   already_exists       duplicate id or unique field (name, secret hash) on create/update
//   conflict             resource_version mismatch (compare-and-swap lost) -> HTTP 409
//   failed_precondition  referential rule broken (host_id names no host, host still has VMs)
//   unavailable          the database cannot be reached right now
//   internal             anything else
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "strata/common/clock.h"
#include "strata/common/error.h"
#include "strata/store/records.h"

namespace strata::store {

class Store {
 public:
  virtual ~Store() = default;

  // "sqlite" or "postgres".
  virtual std::string backend() const = 0;
  // Cheap round trip to the database (health checks).
  virtual Status ping() = 0;
  // Highest applied schema migration version.
  virtual Result<int64_t> schema_version() = 0;

  // Runs fn inside one database transaction; commits when fn returns success, rolls
  // back when it returns an error (which is passed through). Inside fn use ONLY the
  // `tx` store handed in (the outer store may block on the connection fn holds).
  // Calling tx.transaction() nests by simply running the inner fn in the same one.
  virtual Status transaction(const std::function<Status(Store& tx)>& fn) = 0;

  // transaction(), run again while it fails with `conflict`, up to `attempts` runs in all.
  // For a read-modify-write that names no version of its own: on PostgreSQL (READ
  // COMMITTED) a concurrent writer can move the row between fn's read and its
  // compare-and-swap update; the rerun reads the new row and applies the change to it.
  // A caller that does name a version (If-Match) gets its conflict again on every run,
  // so the answer is unchanged. Each run rolls back completely before the next, so fn
  // must rebuild everything from what it reads in `tx` (reset captured outputs at its
  // start). Inside a transaction (tx.transaction_retrying) fn runs once: the outer
  // transaction's earlier writes cannot be rolled back alone.
  virtual Status transaction_retrying(const std::function<Status(Store& tx)>& fn,
                                      int attempts = 5) = 0;

  // ---- hosts ----
  // create: assigns id (when empty), resource_version=1, timestamps; returns the stored record.
  virtual Result<HostRecord> create_host(const HostRecord& host) = 0;
  virtual Result<HostRecord> get_host(const std::string& id) = 0;
  virtual Result<HostRecord> get_host_by_name(const std::string& name) = 0;
  virtual Result<std::vector<HostRecord>> list_hosts(const HostListOptions& options) = 0;
  // Every host's id and resource_version, without the records (no inventories): for a
  // caller that keeps decoded hosts and fetches only those that changed (placement).
  virtual Result<std::vector<std::pair<std::string, int64_t>>> list_host_versions() = 0;
  // update: host.resource_version must equal the stored one (else conflict); writes all
  // mutable fields, bumps resource_version, returns the stored record.
  virtual Result<HostRecord> update_host(const HostRecord& host) = 0;
  // Heartbeat without compare-and-swap (agents report often; must not fight API edits):
  // sets last_heartbeat_ms and state, bumps resource_version.
  virtual Result<HostRecord> touch_host_heartbeat(const std::string& id, int64_t heartbeat_ms,
                                                  const std::string& state) = 0;
  // delete: failed_precondition while VMs are placed on it; expected_version optional CAS.
  // Its metrics samples go with it.
  virtual Status delete_host(const std::string& id, std::optional<int64_t> expected_version) = 0;

  // ---- VMs ----
  virtual Result<VmRecord> create_vm(const VmRecord& vm) = 0;
  virtual Result<VmRecord> get_vm(const std::string& id) = 0;
  virtual Result<VmRecord> get_vm_by_name(const std::string& name) = 0;
  virtual Result<std::vector<VmRecord>> list_vms(const VmListOptions& options) = 0;
  // The id and resource_version of every VM placed on `host_id`, without the records (no
  // specs): for a caller that keeps what it decoded and fetches only the VMs that changed
  // (the HA leases each heartbeat grants).
  virtual Result<std::vector<std::pair<std::string, int64_t>>> list_vm_versions(
      const std::string& host_id) = 0;
  virtual Result<VmRecord> update_vm(const VmRecord& vm) = 0;
  virtual Status delete_vm(const std::string& id, std::optional<int64_t> expected_version) = 0;

  // ---- dashboard summary ----
  // Counts of VMs and tasks by state and the `recent` newest tasks and failed tasks,
  // aggregated by the database (cost independent of what the caller would page through).
  virtual Result<StoreSummary> summarize(int recent) = 0;

  // ---- tasks ----
  virtual Result<TaskRecord> create_task(const TaskRecord& task) = 0;
  virtual Result<TaskRecord> get_task(const std::string& id) = 0;
  virtual Result<std::vector<TaskRecord>> list_tasks(const TaskListOptions& options) = 0;
  virtual Result<TaskRecord> update_task(const TaskRecord& task) = 0;
  virtual Status delete_task(const std::string& id, std::optional<int64_t> expected_version) = 0;

  // ---- events (append-only) ----
  // Returns the stored event with its seq and time.
  virtual Result<EventRecord> append_event(const EventRecord& event) = 0;
  // Events with seq > after_seq, ascending, at most limit (0 = no limit).
  virtual Result<std::vector<EventRecord>> list_events(int64_t after_seq, int limit) = 0;
  // Events of one target ("vm/web-1"), newest first: seq < before_seq (0: from the
  // newest), at most limit (> 0). Served by the (target, seq) index.
  virtual Result<std::vector<EventRecord>> list_target_events(const std::string& target,
                                                              int64_t before_seq, int limit) = 0;
  // Highest seq so far (0 when empty): where a new stream starts.
  virtual Result<int64_t> last_event_seq() = 0;
  // Retention: deletes the oldest events (in seq order) that are older than before_ms
  // (0: no age limit) or beyond the newest keep_last (0: no count limit), at most `batch`
  // of them in one transaction. Returns how many it deleted (== batch: call again).
  virtual Result<int64_t> prune_events(int64_t before_ms, int64_t keep_last, int64_t batch) = 0;

  // ---- API tokens ----
  virtual Result<TokenRecord> create_token(const TokenRecord& token) = 0;
  virtual Result<TokenRecord> get_token(const std::string& id) = 0;
  virtual Result<TokenRecord> get_token_by_hash(const std::string& secret_hash) = 0;
  virtual Result<std::vector<TokenRecord>> list_tokens(const ListOptions& options) = 0;
  // Marks revoked (idempotent), bumps resource_version.
  virtual Result<TokenRecord> revoke_token(const std::string& id) = 0;
  virtual Status delete_token(const std::string& id) = 0;

  // ---- host join tokens ----
  virtual Result<JoinTokenRecord> create_join_token(const JoinTokenRecord& token) = 0;
  virtual Result<JoinTokenRecord> get_join_token_by_hash(const std::string& secret_hash) = 0;
  virtual Result<std::vector<JoinTokenRecord>> list_join_tokens() = 0;
  // Atomically marks the token used by host_id at now_ms. Errors: not_found (unknown
  // hash), conflict (already used), failed_precondition (expired at now_ms).
  virtual Result<JoinTokenRecord> consume_join_token(const std::string& secret_hash,
                                                     const std::string& host_id,
                                                     int64_t now_ms) = 0;
  virtual Status delete_join_token(const std::string& id) = 0;

  // ---- image catalog ----
  // create: already_exists on a duplicate name; invalid_argument on bad kind/format/sha256.
  virtual Result<ImageRecord> create_image(const ImageRecord& image) = 0;
  virtual Result<ImageRecord> get_image(const std::string& id) = 0;
  virtual Result<ImageRecord> get_image_by_name(const std::string& name) = 0;
  virtual Result<std::vector<ImageRecord>> list_images(const ImageListOptions& options) = 0;
  // CAS update of the mutable fields (state); bumps resource_version.
  virtual Result<ImageRecord> update_image(const ImageRecord& image) = 0;
  virtual Status delete_image(const std::string& id, std::optional<int64_t> expected_version) = 0;

  // ---- clusters ----
  // create: already_exists on a duplicate name.
  virtual Result<ClusterRecord> create_cluster(const ClusterRecord& cluster) = 0;
  virtual Result<ClusterRecord> get_cluster_by_name(const std::string& name) = 0;
  virtual Result<std::vector<ClusterRecord>> list_clusters() = 0;
  // CAS update of cpu_baseline, cpu_model, cpu_reason; bumps resource_version.
  virtual Result<ClusterRecord> update_cluster(const ClusterRecord& cluster) = 0;
  virtual Status delete_cluster(const std::string& id, std::optional<int64_t> expected_version) = 0;

  // ---- backup schedules ----
  // create: already_exists (field "name") on a duplicate name; listed by name.
  virtual Result<BackupScheduleRecord> create_backup_schedule(const BackupScheduleRecord& s) = 0;
  virtual Result<BackupScheduleRecord> get_backup_schedule_by_name(const std::string& name) = 0;
  virtual Result<std::vector<BackupScheduleRecord>> list_backup_schedules() = 0;
  // CAS update of spec and last_slot_ms; bumps resource_version.
  virtual Result<BackupScheduleRecord> update_backup_schedule(const BackupScheduleRecord& s) = 0;
  virtual Status delete_backup_schedule(const std::string& id,
                                        std::optional<int64_t> expected_version) = 0;

  // ---- host metrics history (bounded) ----
  // Appends one sample and, in the same transaction, deletes all but the newest
  // keep_last samples of that host. failed_precondition when the host does not exist.
  virtual Status append_host_metric(const HostMetricSample& sample, int keep_last) = 0;
  // The newest `limit` samples of a host (0 = all kept), oldest first.
  virtual Result<std::vector<HostMetricSample>> list_host_metrics(const std::string& host_id,
                                                                  int limit) = 0;
};
using StorePtr = std::unique_ptr<Store>;

struct StoreOptions {
  ClockPtr clock;     // timestamps; nullptr = system clock
  int pool_size = 4;  // PostgreSQL connections (SQLite uses one connection)
};

// Opens (creating when needed) the store named by url and applies pending schema
// migrations. URLs:
//   sqlite:/var/lib/strata/stratad.db   sqlite::memory:
//   postgres://user@host:5432/db        postgresql://user@/db?host=/run/pg&port=5433
//   (any libpq URI; "postgres:" + a libpq key=value conninfo also works:
//    "postgres:host=/tmp/pg port=5433 user=strata dbname=strata")
Result<StorePtr> open_store(const std::string& url, const StoreOptions& options);
Result<StorePtr> open_store(const std::string& url);
// The same with a PostgreSQL password (stratad --db-password-file) that overrides one in
// the URL. Empty: libpq's own sources (the URL, PGPASSFILE or ~/.pgpass).
Result<StorePtr> open_store(const std::string& url, const StoreOptions& options,
                            const std::string& db_password);

// True when a postgres URL/conninfo carries a password ("postgres://u:PW@h/db",
// "password=PW"): stratad warns, since a command line is visible to every local user.
bool url_has_password(const std::string& url);

}  // namespace strata::store
