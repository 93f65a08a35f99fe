// SQLite schema, as numbered migrations. Never edit a released migration: add one.
#include "store/sqlite/sqlite_db.h"

namespace strata::store::sqlite {

const std::vector<sql::Migration>& sqlite_migrations() {
  static const std::vector<sql::Migration> kMigrations = {
      {1,
       "initial schema",
       {
           "CREATE TABLE hosts ("
           " id TEXT PRIMARY KEY, resource_version INTEGER NOT NULL,"
           " created_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL,"
           " name TEXT NOT NULL UNIQUE, address TEXT NOT NULL, state TEXT NOT NULL,"
           " labels TEXT NOT NULL, accelerator TEXT NOT NULL, inventory TEXT NOT NULL,"
           " last_heartbeat_ms INTEGER NOT NULL, cpu_threads INTEGER NOT NULL,"
           " memory_mib INTEGER NOT NULL)",
           "CREATE TABLE vms ("
           " id TEXT PRIMARY KEY, resource_version INTEGER NOT NULL,"
           " created_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL,"
           " name TEXT NOT NULL UNIQUE, spec TEXT NOT NULL, desired_state TEXT NOT NULL,"
           " host_id TEXT REFERENCES hosts(id) ON DELETE RESTRICT,"
           " status TEXT NOT NULL, labels TEXT NOT NULL,"
           " deletion_requested INTEGER NOT NULL, deletion_requested_ms INTEGER NOT NULL)",
           "CREATE INDEX vms_host_id ON vms(host_id)",
           "CREATE TABLE tasks ("
           " id TEXT PRIMARY KEY, resource_version INTEGER NOT NULL,"
           " created_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL,"
           " kind TEXT NOT NULL, target_kind TEXT NOT NULL, target_id TEXT NOT NULL,"
           " state TEXT NOT NULL, progress INTEGER NOT NULL, message TEXT NOT NULL,"
           " result TEXT NOT NULL)",
           "CREATE INDEX tasks_target_id ON tasks(target_id)",
           "CREATE INDEX tasks_state ON tasks(state)",
           "CREATE TABLE events ("
           " seq INTEGER PRIMARY KEY AUTOINCREMENT, time_ms INTEGER NOT NULL,"
           " actor TEXT NOT NULL, action TEXT NOT NULL, target TEXT NOT NULL,"
           " result TEXT NOT NULL, message TEXT NOT NULL)",
           "CREATE TABLE api_tokens ("
           " id TEXT PRIMARY KEY, resource_version INTEGER NOT NULL,"
           " created_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL,"
           " name TEXT NOT NULL UNIQUE, role TEXT NOT NULL, secret_hash TEXT NOT NULL UNIQUE,"
           " expires_ms INTEGER, revoked INTEGER NOT NULL)",
           "CREATE TABLE join_tokens ("
           " id TEXT PRIMARY KEY, created_ms INTEGER NOT NULL,"
           " secret_hash TEXT NOT NULL UNIQUE, expires_ms INTEGER, used_by_host TEXT,"
           " used_ms INTEGER NOT NULL)",
           "CREATE TABLE host_metrics ("
           " seq INTEGER PRIMARY KEY AUTOINCREMENT,"
           " host_id TEXT NOT NULL REFERENCES hosts(id) ON DELETE CASCADE,"
           " time_ms INTEGER NOT NULL, data TEXT NOT NULL)",
           "CREATE INDEX host_metrics_host_time ON host_metrics(host_id, time_ms, seq)",
       }},
      {2,
       "image catalog",
       {
           "CREATE TABLE images ("
           " id TEXT PRIMARY KEY, resource_version INTEGER NOT NULL,"
           " created_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL,"
           " name TEXT NOT NULL UNIQUE, kind TEXT NOT NULL, format TEXT NOT NULL,"
           " size_bytes INTEGER NOT NULL, virtual_size INTEGER NOT NULL, sha256 TEXT NOT NULL,"
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
       "a host's VMs in name order (the web console's host page)",
       {
           // "WHERE host_id = $1 AND name > $2 ORDER BY name LIMIT $3": with (host_id, id)
           // alone every VM of the host was read and sorted for each page (a temp B-tree of
           // whole rows); with (host_id, name) a page reads just its rows, either direction.
           "CREATE INDEX vms_host_id_name ON vms(host_id, name)",
       }},
      {7,
       "clusters (the CPU baseline each one's VMs start with) and each host's cluster",
       {
           "CREATE TABLE clusters ("
           " id TEXT PRIMARY KEY, resource_version INTEGER NOT NULL,"
           " created_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL,"
           " name TEXT NOT NULL UNIQUE, cpu_baseline TEXT NOT NULL, cpu_model TEXT NOT NULL,"
           " cpu_reason TEXT NOT NULL)",
           "ALTER TABLE hosts ADD COLUMN cluster TEXT NOT NULL DEFAULT 'default'",
           "CREATE INDEX hosts_cluster ON hosts(cluster)",
       }},
      {8,
       "backup schedules (a definition as JSON and the newest slot each was run for)",
       {
           "CREATE TABLE backup_schedules ("
           " id TEXT PRIMARY KEY, resource_version INTEGER NOT NULL,"
           " created_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL,"
           " name TEXT NOT NULL UNIQUE, spec TEXT NOT NULL, last_slot_ms INTEGER NOT NULL)",
       }},
  };
  return kMigrations;
}

}  // namespace strata::store::sqlite
