// The REST API in front of the transport: routes every request (404/405), enforces body
// limits and bearer-token roles, records Prometheus request metrics, writes the audit
// log for mutating routes, and turns every handler error into the error envelope.
// Routes marked `offload` (slow work) run their handler on a small worker pool and answer
// through a deferred response, so the HTTP I/O threads keep serving /healthz and GETs.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "strata/common/clock.h"
#include "strata/common/work_pool.h"
#include "strata/manager/api/failure_audit.h"
#include "strata/manager/api/http.h"
#include "strata/manager/api/metrics.h"
#include "strata/manager/api/rate_limiter.h"
#include "strata/manager/api/request_bodies.h"  // query_int, expected_version
#include "strata/manager/api/router.h"
#include "strata/manager/auth/tokens.h"
#include "strata/manager/api/stream_limits.h"
#include "strata/manager/api/metrics_feed.h"
#include "strata/manager/events/event_fanout.h"
#include "strata/manager/events/event_log.h"

namespace strata::pki {
class CertificateAuthority;
}

namespace strata::manager {

class ConnectionManager;
class StaticFiles;
class SessionStore;
class VmController;
class PlacementService;
class ClusterService;
class VmService;
class VmImporter;
class BackupService;
class BackupScheduler;
class HostEvacuator;
class Balancer;
class TaskTracker;
class ImageDistributor;

// Everything the route handlers use. Pointers that may be null are noted.
struct ApiDeps {
  store::Store* store = nullptr;
  TokenAuthenticator* auth = nullptr;
  EventLog* events = nullptr;
  TaskTracker* tasks = nullptr;
  ConnectionManager* agents = nullptr;
  VmController* controller = nullptr;
  PlacementService* placement = nullptr;
  ClusterService* clusters = nullptr;  // clusters and CPU baselines; null: 503 on /clusters
  VmService* vms = nullptr;  // the VM lifecycle (create/act/delete)
  VmImporter* importer = nullptr;  // VM import (vms/vm_import.h); null: 503 on /vms/import
  BackupService* backups = nullptr;  // backups; null: 503 on /api/v1/backups*
  BackupScheduler* backup_schedules = nullptr;  // null: 503 on /api/v1/backup-schedules*
  HostEvacuator* evacuator = nullptr;  // maintenance evacuation; null: 503 on /evacuate
  Balancer* balancer = nullptr;        // load balancing; null: 503 on /api/v1/balance*
  ClockPtr clock;
  // Signs the CSRs of agents at enrollment; nullptr: TCP agents cannot enroll.
  const pki::CertificateAuthority* ca = nullptr;
  std::string version = "0.1.0";
  // Called when the server is stopping, so streams end (SSE loops check it).
  std::function<bool()> stopping = [] { return false; };
  // Image catalog: bytes under images->catalog_dir(); null disables the image routes'
  // uploads (listing still works). Upload cap per image.
  ImageDistributor* images = nullptr;
  uint64_t image_max_bytes = 16ull << 30;
  // Caps on open SSE streams and consoles (settings; 0: no cap).
  StreamCaps stream_caps;
  // Host enrollment is unauthenticated (its credential, the join token, is in the body):
  // attempts per client address (429 with Retry-After above it; stratad --enroll-rate),
  // and its failures are audited in a bounded way (failure_audit.h).
  RateLimit enroll_rate{10, 10, 10000};
  // Browser login (POST /api/v1/session, a token guessed in the body) per client address:
  // a burst of 10, then 2 a second (429 with Retry-After; stratad --login-rate).
  RateLimit login_rate{10, 120, 10000};
  FailureAuditConfig failure_audit;
  // Set by the ApiService (it owns them): the one event reader for every SSE stream, and
  // the stream counters.
  EventFanout* fanout = nullptr;
  // Live metrics samples (GET /api/v1/hosts/{name}/metrics/stream); nullptr: no stream.
  MetricsFeed* metrics_feed = nullptr;
  StreamLimiter* streams = nullptr;
  // The web console's files, answered for GETs of paths no route has outside /api
  // (static_files.h); null: not served.
  const StaticFiles* web = nullptr;
  // Browser sessions (cookie + CSRF header, session_auth.h); null: bearer tokens only and
  // no /api/v1/session routes. secure_cookies: the API is served over HTTPS, so the
  // session cookie is marked Secure.
  SessionStore* sessions = nullptr;
  bool secure_cookies = false;
};

class ApiService {
 public:
  explicit ApiService(ApiDeps deps);

  size_t body_limit(std::string_view method, std::string_view path) const;
  HttpResponse dispatch(HttpRequest& request);
  // For routes that stream their body to a file (the HTTP server's streams_body/admit):
  // whether the route does, and the auth/role check on the header alone.
  bool streams_body(std::string_view method, std::string_view path) const;
  // Also the per-address rate limit of routes that have one (429).
  std::optional<HttpResponse> admit(HttpRequest& head);

  Router& router() { return router_; }
  HttpMetrics& metrics() { return metrics_; }
  ApiDeps& deps() { return deps_; }
  StreamLimiter& stream_limiter() { return limiter_; }
  EventFanout* fanout() { return fanout_.get(); }
  RateLimiter& enroll_limiter() { return enroll_limiter_; }
  RateLimiter& login_limiter() { return login_limiter_; }
  FailureAudit& failure_audit() { return failure_audit_; }

  // Ends the event fan-out (call after the HTTP server stopped). The destructor does too.
  void stop_streams();
  ~ApiService();

 private:
  // Audit (mutating routes that got past auth), metrics, 5xx log; returns `resp`.
  HttpResponse finish(const Route* route, HttpRequest& req, HttpResponse resp,
                      std::chrono::steady_clock::time_point t0, bool audited);

  StreamLimiter limiter_;
  std::unique_ptr<EventFanout> fanout_;
  ApiDeps deps_;
  Router router_;
  HttpMetrics metrics_;
  RateLimiter enroll_limiter_;
  RateLimiter login_limiter_;
  FailureAudit failure_audit_;
  // Runs the handlers of RouteOptions::offload routes. Declared last: destroyed (its queue
  // run, its threads joined) before anything its jobs use.
  WorkPool offload_{2, 64};
};

// Route groups (one file each).
void add_system_routes(ApiService& api);
void add_token_routes(ApiService& api);
void add_host_routes(ApiService& api);
void add_cluster_routes(ApiService& api);
void add_vm_routes(ApiService& api);
void add_snapshot_routes(ApiService& api);  // routes_snapshots.cc
void add_backup_routes(ApiService& api);    // routes_backups.cc
void add_clone_routes(ApiService& api);     // routes_clones.cc
void add_placement_routes(ApiService& api);
void add_task_event_routes(ApiService& api);
void add_console_route(ApiService& api);
void add_image_routes(ApiService& api);
void add_import_routes(ApiService& api);  // routes_import.cc
void add_session_routes(ApiService& api);
void add_summary_routes(ApiService& api);  // routes_summary.cc

// The REST form of a host (routes_hosts.cc); `detail` adds inventory and the last metrics.
nlohmann::json host_json(ApiDeps& d, const store::HostRecord& h, bool detail);

// The OpenAPI 3 document (embedded from docs/openapi.json at build time).
const std::string& openapi_document();

// "application/json" or an "application/...+json" type, parameters ignored.
bool is_json_media_type(std::string_view content_type);
// JSON routes answer 415 to a body of another (or no) Content-Type; streamed upload
// routes and empty bodies are exempt. nullopt: accepted.
std::optional<HttpResponse> check_json_media_type(const HttpRequest& req,
                                                  const RouteOptions& route);

}  // namespace strata::manager
