// The Store implemented once over SqlDatabase: all record logic (CAS updates, paging,
// label selection, bounded metrics, ordered events) in portable SQL with $N parameters.
// A top-level SqlStore leases a connection per call; the one handed to a transaction
// function runs everything on the connection holding that transaction.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>

#include "store/sql/sql_db.h"
#include "strata/store/store.h"

namespace strata::store::sql {

class SqlStore final : public Store {
 public:
  SqlStore(std::shared_ptr<SqlDatabase> db, ClockPtr clock, SqlConnection* tx = nullptr)
      : db_(std::move(db)), clock_(std::move(clock)), tx_(tx) {}

  std::string backend() const override { return db_->backend(); }
  Status ping() override;
  Result<int64_t> schema_version() override;
  Status transaction(const std::function<Status(Store& tx)>& fn) override;
  Status transaction_retrying(const std::function<Status(Store& tx)>& fn,
                              int attempts) override;

  Result<HostRecord> create_host(const HostRecord& host) override;
  Result<HostRecord> get_host(const std::string& id) override;
  Result<HostRecord> get_host_by_name(const std::string& name) override;
  Result<std::vector<HostRecord>> list_hosts(const HostListOptions& options) override;
  Result<std::vector<std::pair<std::string, int64_t>>> list_host_versions() override;
  Result<std::vector<std::pair<std::string, int64_t>>> list_vm_versions(
      const std::string& host_id) override;
  Result<HostRecord> update_host(const HostRecord& host) override;
  Result<HostRecord> touch_host_heartbeat(const std::string& id, int64_t heartbeat_ms,
                                          const std::string& state) override;
  Status delete_host(const std::string& id, std::optional<int64_t> expected_version) override;

  Result<VmRecord> create_vm(const VmRecord& vm) override;
  Result<VmRecord> get_vm(const std::string& id) override;
  Result<VmRecord> get_vm_by_name(const std::string& name) override;
  Result<std::vector<VmRecord>> list_vms(const VmListOptions& options) override;
  Result<VmRecord> update_vm(const VmRecord& vm) override;
  Status delete_vm(const std::string& id, std::optional<int64_t> expected_version) override;

  Result<StoreSummary> summarize(int recent) override;

  Result<TaskRecord> create_task(const TaskRecord& task) override;
  Result<TaskRecord> get_task(const std::string& id) override;
  Result<std::vector<TaskRecord>> list_tasks(const TaskListOptions& options) override;
  Result<TaskRecord> update_task(const TaskRecord& task) override;
  Status delete_task(const std::string& id, std::optional<int64_t> expected_version) override;

  Result<EventRecord> append_event(const EventRecord& event) override;
  Result<std::vector<EventRecord>> list_events(int64_t after_seq, int limit) override;
  Result<std::vector<EventRecord>> list_target_events(const std::string& target,
                                                      int64_t before_seq, int limit) override;
  Result<int64_t> last_event_seq() override;
  Result<int64_t> prune_events(int64_t before_ms, int64_t keep_last, int64_t batch) override;

  Result<TokenRecord> create_token(const TokenRecord& token) override;
  Result<TokenRecord> get_token(const std::string& id) override;
  Result<TokenRecord> get_token_by_hash(const std::string& secret_hash) override;
  Result<std::vector<TokenRecord>> list_tokens(const ListOptions& options) override;
  Result<TokenRecord> revoke_token(const std::string& id) override;
  Status delete_token(const std::string& id) override;

  Result<JoinTokenRecord> create_join_token(const JoinTokenRecord& token) override;
  Result<JoinTokenRecord> get_join_token_by_hash(const std::string& secret_hash) override;
  Result<std::vector<JoinTokenRecord>> list_join_tokens() override;
  Result<JoinTokenRecord> consume_join_token(const std::string& secret_hash,
                                             const std::string& host_id, int64_t now_ms) override;
  Status delete_join_token(const std::string& id) override;

  Result<ImageRecord> create_image(const ImageRecord& image) override;
  Result<ImageRecord> get_image(const std::string& id) override;
  Result<ImageRecord> get_image_by_name(const std::string& name) override;
  Result<std::vector<ImageRecord>> list_images(const ImageListOptions& options) override;
  Result<ImageRecord> update_image(const ImageRecord& image) override;
  Status delete_image(const std::string& id, std::optional<int64_t> expected_version) override;

  Result<ClusterRecord> create_cluster(const ClusterRecord& cluster) override;
  Result<ClusterRecord> get_cluster_by_name(const std::string& name) override;
  Result<std::vector<ClusterRecord>> list_clusters() override;
  Result<ClusterRecord> update_cluster(const ClusterRecord& cluster) override;
  Status delete_cluster(const std::string& id, std::optional<int64_t> expected_version) override;

  Result<BackupScheduleRecord> create_backup_schedule(const BackupScheduleRecord& s) override;
  Result<BackupScheduleRecord> get_backup_schedule_by_name(const std::string& name) override;
  Result<std::vector<BackupScheduleRecord>> list_backup_schedules() override;
  Result<BackupScheduleRecord> update_backup_schedule(const BackupScheduleRecord& s) override;
  Status delete_backup_schedule(const std::string& id,
                                std::optional<int64_t> expected_version) override;

  Status append_host_metric(const HostMetricSample& sample, int keep_last) override;
  Result<std::vector<HostMetricSample>> list_host_metrics(const std::string& host_id,
                                                          int limit) override;

 private:
  int64_t now_ms() const;

  // Runs f(connection): on the transaction's connection, or on a leased one. Reads pass
  // read=true: f only SELECTs, so it may run on a read connection (SqlDatabase::
  // acquire_read), with one retry on a fresh connection when the first one turned out dead.
  // A write returns once durable (SqlDatabase::durable, after the lease went, so the next
  // writer runs during the sync).
  template <class F>
  auto with_conn(F&& f, bool read = false) -> std::invoke_result_t<F&, SqlConnection&> {
    using R = std::invoke_result_t<F&, SqlConnection&>;
    if (tx_) return f(*tx_);
    for (int attempt = 0;; ++attempt) {
      std::optional<R> r;
      {
        auto lease = read ? db_->acquire_read() : db_->acquire();
        if (!lease) return tl::unexpected(lease.error());
        r.emplace(f(**lease));
      }
      if (!read) {
        auto st = db_->durable();
        if (*r && !st) return tl::unexpected(st.error());
        return std::move(*r);
      }
      if (*r || attempt > 0 || r->error().code != ErrorCode::unavailable) return std::move(*r);
    }
  }

  // Runs f(connection) inside a transaction (joins the current one if any).
  template <class F>
  auto with_tx(F&& f) -> std::invoke_result_t<F&, SqlConnection&> {
    using R = std::invoke_result_t<F&, SqlConnection&>;
    if (tx_) return f(*tx_);
    R r = [&]() -> R {
      auto lease = db_->acquire();
      if (!lease) return tl::unexpected(lease.error());
      SqlConnection& c = **lease;
      if (auto st = c.begin(); !st) return tl::unexpected(st.error());
      auto out = f(c);
      if (!out) {
        (void)c.rollback();
        return out;
      }
      if (auto st = c.commit(); !st) return tl::unexpected(st.error());
      return out;
    }();
    auto st = db_->durable();  // the lease is gone: the next writer runs during the sync
    if (r && !st) return tl::unexpected(st.error());
    return r;
  }

  // After an UPDATE/DELETE ... WHERE id AND resource_version matched nothing: not_found
  // or conflict, by looking at the stored version.
  Error version_miss(SqlConnection& c, const std::string& table, const std::string& kind,
                     const std::string& id, int64_t expected);
  Status delete_versioned(const std::string& table, const std::string& kind, const std::string& id,
                          std::optional<int64_t> expected_version);

  std::shared_ptr<SqlDatabase> db_;
  ClockPtr clock_;
  SqlConnection* tx_;  // not owned; set only for the store handed to a transaction fn
};

}  // namespace strata::store::sql
