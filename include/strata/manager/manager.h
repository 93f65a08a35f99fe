// stratad as a whole: opens the store, bootstraps the admin token, wires the event log,
// tasks, agent connections, scheduler, controller and REST API, and (all-in-one mode)
// runs and enrolls a local strata-agent child. stop() ends everything but the VMs, which
// live under the agents.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "strata/common/error.h"
#include "strata/manager/agents/connection_manager.h"
#include "strata/manager/api/http_server.h"
#include "strata/manager/api/rate_limiter.h"
#include "strata/manager/api/stream_limits.h"
#include "strata/manager/controllers/vm_controller.h"
#include "strata/manager/events/event_retention.h"
#include "strata/manager/ha/ha_controller.h"
#include "strata/manager/tasks/task_leases.h"
#include "strata/manager/vms/balancer.h"
#include "strata/manager/vms/vm_service.h"
#include "strata/sched/scheduler.h"

namespace strata::manager {

struct ManagerConfig {
  std::string db_url;        // empty: sqlite:<data_dir>/strata.db
  std::string db_password;   // PostgreSQL password (from --db-password-file), or empty
  std::string listen = "127.0.0.1:7480";
  std::string data_dir;      // admin.token, SQLite DB, all-in-one agent state and images
  int http_threads = 2;
  // The REST server's connection caps and timeouts (--http-max-connections,
  // --http-max-connections-per-address, ...); its host, port and threads come from
  // `listen` and `http_threads`.
  HttpServerConfig http;
  // Host enrollment attempts per client address and minute, also the burst (--enroll-rate).
  RateLimit enroll_rate{10, 10, 10000};
  RateLimit login_rate{10, 120, 10000};
  // REST over HTTPS (https): with the operator's certificate chain and key
  // (tls_cert_file/tls_key_file, PEM), else a certificate from the manager's CA naming the
  // listen address (see api_tls.h). Off: plain HTTP.
  bool https = false;
  std::string tls_cert_file;
  std::string tls_key_file;
  ConnectionConfig connections;
  ControllerConfig controller;
  // Placement policy: overcommit ratios and spread|pack (--cpu-overcommit,
  // --memory-overcommit, --placement).
  sched::SchedulerConfig scheduler;
  // All-in-one: start `<agent_binary> serve --state-dir <data_dir>/agent --images
  // <data_dir>/images --listen unix:<data_dir>/agent/agent.sock` and enroll it.
  bool all_in_one = false;
  std::string agent_binary;  // default: strata-agent next to stratad, else in PATH
  std::string agent_accel = "auto";
  std::string host_name;     // the local host's name (default: sanitized hostname)
  // Shared storage for the local agent, "NAME=PATH" each (--datastore; the agent checks
  // them: docs/internals/datastores.md).
  std::vector<std::string> agent_datastores;
  // Event table retention (--event-max-age, --event-max-rows).
  EventRetentionConfig event_retention;
  // Leases of in-process tasks (--task-renew-interval, --task-lease; task_leases.h): how
  // often this manager renews the tasks it runs, and how old an unrenewed one must be for
  // the sweep to fail it.
  TaskLeaseConfig task_leases;
  // HA: the fence devices by host (--fence-config FILE; empty: no host is ever fenced, so
  // HA VMs never restart elsewhere) and the failure timeline (--ha-failed-after).
  std::string fence_config;
  // Backups (--backup-repo PATH; docs/internals/backup.md): the repository folder, which
  // every host mounts at the same path. Empty: backups are off.
  std::string backup_repo;
  // A second repository folder the backups are copied into by POST /api/v1/backups/sync
  // (the off-site copy; "" none). Needs backup_repo.
  std::string backup_sync_repo;
  // The key of an encrypted repository (--backup-key-file FILE, 0600, outside the
  // repository; "" plain): both backup_repo and backup_sync_repo are opened with it.
  std::string backup_key_file;
  HaConfig ha;
  // HA admission control (--ha-admission enforce|warn|off; vm_service.h).
  HaAdmission ha_admission = HaAdmission::enforce;
  // The load balancer (--balance off|advise|auto, --balance-interval, ...; balancer.h).
  BalancerConfig balance;
  // Live migrations over TLS unless a request says otherwise (--migration-tls on|off).
  bool migration_tls = true;
  // Largest image accepted by POST /api/v1/images (bytes are kept in <data_dir>/catalog).
  uint64_t image_max_bytes = 16ull << 30;
  // Caps on open SSE streams and console WebSockets (--max-streams, --max-streams-per-token,
  // --max-consoles).
  StreamCaps streams;
  // The web console's built files (--web-root; empty: ../share/strata/web next to stratad,
  // else the source tree's web/dist; neither: / is not served). See docs/internals/web.md.
  std::string web_root;
};

class Manager {
 public:
  virtual ~Manager() = default;
  virtual std::string api_url() const = 0;
  virtual std::string admin_token_path() const = 0;
  virtual void stop() = 0;
};

Result<std::unique_ptr<Manager>> start_manager(const ManagerConfig& config);

}  // namespace strata::manager
