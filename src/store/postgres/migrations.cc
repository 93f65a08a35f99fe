// PostgreSQL schema, as numbered migrations. Never edit a released migration: add one.
#include "store/postgres/pg_db.h"

namespace strata::store::postgres {

const std::vector<sql::Migration>& pg_migrations() {
  static const std::vector<sql::Migration> kMigrations = {
      {1,
       "initial schema",
       {
           "CREATE TABLE hosts ("
           " id TEXT PRIMARY KEY, resource_version BIGINT NOT NULL,"
           " created_ms BIGINT NOT NULL, updated_ms BIGINT NOT NULL,"
           " name TEXT NOT NULL UNIQUE, address TEXT NOT NULL, state TEXT NOT NULL,"
           " labels TEXT NOT NULL, accelerator TEXT NOT NULL, inventory TEXT NOT NULL,"
           " last_heartbeat_ms BIGINT NOT NULL, cpu_threads BIGINT NOT NULL,"
           " memory_mib BIGINT NOT NULL)",
           "CREATE TABLE vms ("
           " id TEXT PRIMARY KEY, resource_version BIGINT NOT NULL,"
           " created_ms BIGINT NOT NULL, updated_ms BIGINT NOT NULL,"
           " name TEXT NOT NULL UNIQUE, spec TEXT NOT NULL, desired_state TEXT NOT NULL,"
           " host_id TEXT REFERENCES hosts(id) ON DELETE RESTRICT,"
           " status TEXT NOT NULL, labels TEXT NOT NULL,"
           " deletion_requested BIGINT NOT NULL, deletion_requested_ms BIGINT NOT NULL)",
           "CREATE INDEX vms_host_id ON vms(host_id)",
           "CREATE TABLE tasks ("
           " id TEXT PRIMARY KEY, resource_version BIGINT NOT NULL,"
           " created_ms BIGINT NOT NULL, updated_ms BIGINT NOT NULL,"
           " kind TEXT NOT NULL, target_kind TEXT NOT NULL, target_id TEXT NOT NULL,"
           " state TEXT NOT NULL, progress BIGINT NOT NULL, message TEXT NOT NULL,"
           " result TEXT NOT NULL)",
           "CREATE INDEX tasks_target_id ON tasks(target_id)",
           "CREATE INDEX tasks_state ON tasks(state)",
           "CREATE TABLE events ("
           " seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, time_ms BIGINT NOT NULL,"
           " actor TEXT NOT NULL, action TEXT NOT NULL, target TEXT NOT NULL,"
           " result TEXT NOT NULL, message TEXT NOT NULL)",
           "CREATE TABLE api_tokens ("
           " id TEXT PRIMARY KEY, resource_version BIGINT NOT NULL,"
           " created_ms BIGINT NOT NULL, updated_ms BIGINT NOT NULL,"
           " name TEXT NOT NULL UNIQUE, role TEXT NOT NULL, secret_hash TEXT NOT NULL UNIQUE,"
           " expires_ms BIGINT, revoked BIGINT NOT NULL)",
           "CREATE TABLE join_tokens ("
           " id TEXT PRIMARY KEY, created_ms BIGINT NOT NULL,"
           " secret_hash TEXT NOT NULL UNIQUE, expires_ms BIGINT, used_by_host TEXT,"
           " used_ms BIGINT NOT NULL)",
           "CREATE TABLE host_metrics ("
           " seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
           " host_id TEXT NOT NULL REFERENCES hosts(id) ON DELETE CASCADE,"
           " time_ms BIGINT NOT NULL, data TEXT NOT NULL)",
           "CREATE INDEX host_metrics_host_time ON host_metrics(host_id, time_ms, seq)",
       }},
      {2,
       "image catalog",
       {
           "CREATE TABLE images ("
           " id TEXT PRIMARY KEY, resource_version BIGINT NOT NULL,"
           " created_ms BIGINT NOT NULL, updated_ms BIGINT NOT NULL,"
           " name TEXT NOT NULL UNIQUE, kind TEXT NOT NULL, format TEXT NOT NULL,"
           " size_bytes BIGINT NOT NULL, virtual_size BIGINT NOT NULL, sha256 TEXT NOT NULL,"
           " state TEXT NOT NULL)",
       }},
      {3,
       "host certificate pin, unique host addresses",
       {
           "ALTER TABLE hosts ADD COLUMN cert_fingerprint TEXT NOT NULL DEFAULT ''",
           "CREATE UNIQUE INDEX hosts_address ON hosts(address) WHERE address <> ''",
       }},
      {4,
       "events by target (a VM's or host's events, newest first)",
       {
           "CREATE INDEX events_target_seq ON events(target, seq)",
       }},
      {5,
       "list indexes in keyset order (a host's VMs, a target's or a state's tasks, by id)",
       {
           // The paged lists filter on one column and page on id: "WHERE host_id = $1 AND
           // id > $2 ORDER BY id LIMIT $3". With an index on the filter column alone the
           // plan either sorts every match or walks the primary key filtering rows (a
           // PostgreSQL generic plan picks the latter: a scan of the whole table for a
           // host with few VMs); with (column, id) it reads just the page.
           "DROP INDEX vms_host_id",
           "CREATE INDEX vms_host_id_id ON vms(host_id, id)",
           "DROP INDEX tasks_target_id",
           "CREATE INDEX tasks_target_id_id ON tasks(target_id, id)",
           "DROP INDEX tasks_state",
           "CREATE INDEX tasks_state_id ON tasks(state, id)",
       }},
      {6,
       "strata_json_member: a JSON text column's string member, NULL on malformed text",
       {
           // The dashboard summary groups VMs by status.state in the database. A plain
           // status::jsonb cast would fail the whole query on one malformed row; SQLite's
           // side is json_valid() + json_extract().
           "CREATE OR REPLACE FUNCTION strata_json_member(doc TEXT, member TEXT) RETURNS TEXT "
           "LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$ "
           "DECLARE j jsonb; "
           "BEGIN "
           "  BEGIN j := doc::jsonb; EXCEPTION WHEN others THEN RETURN NULL; END; "
           "  IF jsonb_typeof(j) = 'object' AND jsonb_typeof(j -> member) = 'string' THEN "
           "    RETURN j ->> member; "
           "  END IF; "
           "  RETURN NULL; "
           "END $$",
       }},
      {7,
       "a host's VMs in name order (the web console's host page)",
       {
           // "WHERE host_id = $1 AND name > $2 ORDER BY name LIMIT $3": with (host_id, id)
           // alone every VM of the host was read and sorted for each page (a temp B-tree of
           // whole rows); with (host_id, name) a page reads just its rows, either direction.
           "CREATE INDEX vms_host_id_name ON vms(host_id, name)",
       }},
      {8,
       "clusters (the CPU baseline each one's VMs start with) and each host's cluster",
       {
           "CREATE TABLE clusters ("
           " id TEXT PRIMARY KEY, resource_version BIGINT NOT NULL,"
           " created_ms BIGINT NOT NULL, updated_ms BIGINT NOT NULL,"
           " name TEXT NOT NULL UNIQUE, cpu_baseline TEXT NOT NULL, cpu_model TEXT NOT NULL,"
           " cpu_reason TEXT NOT NULL)",
           "ALTER TABLE hosts ADD COLUMN cluster TEXT NOT NULL DEFAULT 'default'",
           "CREATE INDEX hosts_cluster ON hosts(cluster)",
       }},
      {9,
       "backup schedules (a definition as JSON and the newest slot each was run for)",
       {
           "CREATE TABLE backup_schedules ("
           " id TEXT PRIMARY KEY, resource_version BIGINT NOT NULL,"
           " created_ms BIGINT NOT NULL, updated_ms BIGINT NOT NULL,"
           " name TEXT NOT NULL UNIQUE, spec TEXT NOT NULL, last_slot_ms BIGINT NOT NULL)",
       }},
  };
  return kMigrations;
}

}  // namespace strata::store::postgres
