// SqlStore, part 5: backup schedules (a name, the definition as JSON text, the newest slot
// run). The manager validates the definition; the store keeps it verbatim.
#include "store/sql/codec.h"
#include "store/sql/sql_store.h"

namespace strata::store::sql {

namespace {

constexpr const char* kScheduleCols =
    "id, resource_version, created_ms, updated_ms, name, spec, last_slot_ms";

Result<BackupScheduleRecord> decode_schedule(const SqlRow& r) {
  BackupScheduleRecord s;
  s.id = r.text(0);
  s.resource_version = r.int64(1);
  s.created_ms = r.int64(2);
  s.updated_ms = r.int64(3);
  s.name = r.text(4);
  s.spec = r.text(5);
  s.last_slot_ms = r.int64(6);
  return s;
}

Status validate_schedule(const BackupScheduleRecord& s) {
  if (s.name.empty()) return invalid_argument("name", "backup schedule name is required");
  if (s.last_slot_ms < 0) return invalid_argument("last_slot_ms", "must not be negative");
  return {};
}

std::string spec_text(const std::string& spec) { return spec.empty() ? "{}" : spec; }

}  // namespace

Result<BackupScheduleRecord> SqlStore::create_backup_schedule(const BackupScheduleRecord& in) {
  if (auto st = validate_schedule(in); !st) return tl::unexpected(st.error());
  BackupScheduleRecord s = in;
  int64_t now = now_ms();
  if (s.id.empty()) s.id = new_uuid_v7(now);
  s.resource_version = 1;
  s.created_ms = s.updated_ms = now;
  s.spec = spec_text(s.spec);
  auto r = with_conn([&](SqlConnection& conn) {
    return conn.exec(
        "INSERT INTO backup_schedules (id, resource_version, created_ms, updated_ms, name, spec, "
        "last_slot_ms) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        {s.id, s.resource_version, s.created_ms, s.updated_ms, s.name, s.spec, s.last_slot_ms});
  });
  if (!r) {
    if (r.error().code == ErrorCode::already_exists)
      return tl::unexpected(Error{ErrorCode::already_exists,
                                  "a backup schedule named " + s.name + " already exists", "name"});
    return tl::unexpected(r.error().wrap("create backup schedule " + s.name));
  }
  return s;
}

Result<BackupScheduleRecord> SqlStore::get_backup_schedule_by_name(const std::string& name) {
  return with_conn(
      [&](SqlConnection& c) {
        auto rows = c.query(
            std::string("SELECT ") + kScheduleCols + " FROM backup_schedules WHERE name = $1",
            {name});
        if (!rows) return Result<BackupScheduleRecord>(tl::unexpected(rows.error()));
        if (rows->empty())
          return Result<BackupScheduleRecord>(not_found("backup schedule " + name + " not found"));
        return decode_schedule(rows->front());
      },
      true);
}

Result<std::vector<BackupScheduleRecord>> SqlStore::list_backup_schedules() {
  return with_conn(
      [&](SqlConnection& c) -> Result<std::vector<BackupScheduleRecord>> {
        auto rows = c.query(
            std::string("SELECT ") + kScheduleCols + " FROM backup_schedules ORDER BY name", {});
        if (!rows) return tl::unexpected(rows.error());
        std::vector<BackupScheduleRecord> out;
        for (const auto& r : *rows) {
          auto d = decode_schedule(r);
          if (!d) return tl::unexpected(d.error());
          out.push_back(std::move(*d));
        }
        return out;
      },
      true);
}

Result<BackupScheduleRecord> SqlStore::update_backup_schedule(const BackupScheduleRecord& in) {
  if (auto st = validate_schedule(in); !st) return tl::unexpected(st.error());
  return with_conn([&](SqlConnection& c) -> Result<BackupScheduleRecord> {
    auto rows = c.query(
        "UPDATE backup_schedules SET spec = $1, last_slot_ms = $2, updated_ms = $3, "
        "resource_version = resource_version + 1 WHERE id = $4 AND resource_version = $5 "
        "RETURNING " +
            std::string(kScheduleCols),
        {spec_text(in.spec), in.last_slot_ms, now_ms(), in.id, in.resource_version});
    if (!rows) return tl::unexpected(rows.error().wrap("update backup schedule " + in.name));
    if (rows->empty())
      return tl::unexpected(
          version_miss(c, "backup_schedules", "backup schedule", in.id, in.resource_version));
    return decode_schedule(rows->front());
  });
}

Status SqlStore::delete_backup_schedule(const std::string& id,
                                        std::optional<int64_t> expected_version) {
  return delete_versioned("backup_schedules", "backup schedule", id, expected_version);
}

}  // namespace strata::store::sql
