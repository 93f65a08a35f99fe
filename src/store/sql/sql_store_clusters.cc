// SqlStore, part 4: clusters (name, CPU baseline setting and the baseline in force).
#include "store/sql/codec.h"
#include "store/sql/sql_store.h"

namespace strata::store::sql {

namespace {

constexpr const char* kClusterCols =
    "id, resource_version, created_ms, updated_ms, name, cpu_baseline, cpu_model, cpu_reason";

Result<ClusterRecord> decode_cluster(const SqlRow& r) {
  ClusterRecord c;
  c.id = r.text(0);
  c.resource_version = r.int64(1);
  c.created_ms = r.int64(2);
  c.updated_ms = r.int64(3);
  c.name = r.text(4);
  c.cpu_baseline = r.text(5);
  c.cpu_model = r.text(6);
  c.cpu_reason = r.text(7);
  return c;
}

Status validate_cluster(const ClusterRecord& c) {
  if (c.name.empty()) return invalid_argument("name", "cluster name is required");
  if (c.cpu_baseline.empty())
    return invalid_argument("cpu_baseline", "cpu_baseline is \"auto\" or a CPU model name");
  return {};
}

}  // namespace

Result<ClusterRecord> SqlStore::create_cluster(const ClusterRecord& in) {
  if (auto st = validate_cluster(in); !st) return tl::unexpected(st.error());
  ClusterRecord c = in;
  int64_t now = now_ms();
  if (c.id.empty()) c.id = new_uuid_v7(now);
  c.resource_version = 1;
  c.created_ms = c.updated_ms = now;
  auto r = with_conn([&](SqlConnection& conn) {
    return conn.exec(
        "INSERT INTO clusters (id, resource_version, created_ms, updated_ms, name, cpu_baseline, "
        "cpu_model, cpu_reason) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        {c.id, c.resource_version, c.created_ms, c.updated_ms, c.name, c.cpu_baseline,
         c.cpu_model, c.cpu_reason});
  });
  if (!r) {
    if (r.error().code == ErrorCode::already_exists)
      return tl::unexpected(
          Error{ErrorCode::already_exists, "a cluster named " + c.name + " already exists", "name"});
    return tl::unexpected(r.error().wrap("create cluster " + c.name));
  }
  return c;
}

Result<ClusterRecord> SqlStore::get_cluster_by_name(const std::string& name) {
  return with_conn(
      [&](SqlConnection& c) {
        auto rows = c.query(
            std::string("SELECT ") + kClusterCols + " FROM clusters WHERE name = $1", {name});
        if (!rows) return Result<ClusterRecord>(tl::unexpected(rows.error()));
        if (rows->empty()) return Result<ClusterRecord>(not_found("cluster " + name + " not found"));
        return decode_cluster(rows->front());
      },
      true);
}

Result<std::vector<ClusterRecord>> SqlStore::list_clusters() {
  return with_conn(
      [&](SqlConnection& c) -> Result<std::vector<ClusterRecord>> {
        auto rows = c.query(std::string("SELECT ") + kClusterCols + " FROM clusters ORDER BY name", {});
        if (!rows) return tl::unexpected(rows.error());
        std::vector<ClusterRecord> out;
        for (const auto& r : *rows) {
          auto d = decode_cluster(r);
          if (!d) return tl::unexpected(d.error());
          out.push_back(std::move(*d));
        }
        return out;
      },
      true);
}

Result<ClusterRecord> SqlStore::update_cluster(const ClusterRecord& in) {
  if (auto st = validate_cluster(in); !st) return tl::unexpected(st.error());
  return with_conn([&](SqlConnection& c) -> Result<ClusterRecord> {
    auto rows = c.query(
        "UPDATE clusters SET cpu_baseline = $1, cpu_model = $2, cpu_reason = $3, updated_ms = $4, "
        "resource_version = resource_version + 1 WHERE id = $5 AND resource_version = $6 "
        "RETURNING " +
            std::string(kClusterCols),
        {in.cpu_baseline, in.cpu_model, in.cpu_reason, now_ms(), in.id, in.resource_version});
    if (!rows) return tl::unexpected(rows.error().wrap("update cluster " + in.name));
    if (rows->empty())
      return tl::unexpected(version_miss(c, "clusters", "cluster", in.id, in.resource_version));
    return decode_cluster(rows->front());
  });
}

Status SqlStore::delete_cluster(const std::string& id, std::optional<int64_t> expected_version) {
  return delete_versioned("clusters", "cluster", id, expected_version);
}

}  // namespace strata::store::sql
