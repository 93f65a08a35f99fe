// stratad: the Strata manager. main() only parses flags, starts the manager, and waits
// for SIGTERM/SIGINT; everything else is in strata_manager.
#include <arpa/inet.h>
#include <fmt/format.h>
#include <signal.h>
#include <sys/resource.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "strata/backup/crypto.h"
#include "strata/common/log.h"
#include "strata/common/secret_file.h"
#include "strata/manager/manager.h"
#include "strata/manager/scheduler_options.h"
#include "strata/store/store.h"
#include "strata/wire/runtime.h"

namespace {

constexpr const char* kUsage = R"(usage:
  stratad --all-in-one --data-dir DIR [--listen HOST:PORT] [options]
  stratad --db URL --data-dir DIR [--listen HOST:PORT] [options]

  --all-in-one         SQLite at DIR/strata.db, and a local strata-agent child
                       (state DIR/agent, images DIR/images) enrolled automatically
  --db URL             store: sqlite:/path/strata.db | postgres://user@host/db | ...
                       (default sqlite:DIR/strata.db). Keep passwords out of it (ps
                       shows it to every local user): --db-password-file or PGPASSFILE
  --db-password-file FILE
                       PostgreSQL password, read from FILE (mode 0600)
  --data-dir DIR       where admin.token (0600), the SQLite DB and the local agent live
  --listen HOST:PORT   REST API address (default 127.0.0.1:7480; port 0 picks one)
  The REST API is served over HTTPS by default, with a certificate from the manager's
  CA (DIR/pki/ca.crt) naming the listen address (for 0.0.0.0 / :: also localhost,
  127.0.0.1, ::1, the host name and interface addresses). Exception: --all-in-one on a
  loopback address serves plain HTTP unless --https is given (nothing leaves the machine,
  and browsers treat http://127.0.0.1 as a secure context without certificate warnings).
  --https              HTTPS also for --all-in-one on loopback
  --tls-cert FILE --tls-key FILE
                       serve HTTPS with this PEM certificate chain and key instead
  --insecure-http      serve plain HTTP (tokens then cross the network in clear)
  --web-root DIR       the web console's built files, served at / (default: ../share/strata/web
                       next to stratad, else the source tree's web/dist)
  --agent-binary PATH  strata-agent to run in all-in-one mode (default: next to stratad)
  --accel MODE         local agent accelerator: auto | kvm | tcg (default auto)
  --host-name NAME     name of the local host in all-in-one mode (default: hostname)
  --datastore NAME=PATH  shared storage for the local agent in all-in-one mode (repeatable;
                       strata-agent serve --datastore, docs/internals/datastores.md)
  --heartbeat-ms N     agent heartbeat interval (default 2000)
  --miss-threshold N   missed heartbeats before a host is unreachable (default 3)
  --metrics-every N    a host's metrics sample every N heartbeats (default 5: 10 s)
  --http-threads N     HTTP worker threads (default 2)
  --http-max-connections N
                       open REST connections in all (default 1024); above it a new
                       connection gets 503 and is closed (SSE/WebSocket streams not counted)
  --http-max-connections-per-address N
                       open REST connections per client IP address (default 64)
  --enroll-rate N      host enrollment attempts per client address and minute, also
                       the burst (default 10; 429 with Retry-After above it)
  --login-rate N       browser logins (POST /api/v1/session) per client address and
                       second, burst max(10, N) (default 2; 429 with Retry-After)
  --event-max-age AGE  delete events older than AGE: N followed by d, h, m or s, or 0
                       for no age limit (default 30d); pruned every 5 minutes
  --event-max-rows N   keep at most N events, oldest deleted first; 0: no limit
                       (default 1000000)
  --task-renew-interval S
                       how often the tasks this manager runs itself (imports, backups,
                       snapshots, clones, hot-plug) renew their lease (default 60)
  --task-lease S       such a task not renewed for S seconds is failed: the manager
                       running it stopped (default 300; at least 2 renew intervals)
  --backup-repo PATH   backup repository (docs/internals/backup.md): an existing folder,
                       mounted at the same path on every host; enables /api/v1/backups
  --backup-sync-repo PATH
                       a second repository folder (the off-site copy, e.g. a mounted
                       remote file system): POST /api/v1/backups/sync copies into it the
                       backups it lacks; needs --backup-repo
  --backup-key-file FILE
                       the key of an encrypted backup repository (64 hex characters, mode
                       0600, kept outside the repository): a new, empty --backup-repo (and
                       --backup-sync-repo) is initialised encrypted with it (AES-256-GCM),
                       an existing one must have been made with this key. Losing the key
                       loses every backup in the repository: keep a copy off the host
  --create-backup-key FILE
                       write a new random backup key to FILE (mode 0600; an existing file
                       is never overwritten), print its fingerprint and exit
  --fence-config FILE  fence devices by host (JSON; docs/internals/ha.md): HA VMs restart
                       elsewhere only after their failed host is fenced (powered off and
                       confirmed off) through its fence agent (fence_ipmilan, fence_redfish,
                       ...); without a device (or while it fails) a failed host's HA VMs
                       stay unknown until their leases run out (--ha-lease)
  --ha-admission enforce|warn|off
                       HA admission control (default enforce): an HA VM is created only if,
                       with it, every host's HA VMs would restart elsewhere after that
                       host's failure (warn: created anyway, with a vm.ha_admission event)
  --ha-failed-after MS an unreachable host with HA VMs is declared failed and fenced after
                       MS more milliseconds (default 4000; after --miss-threshold misses)
  --ha-lease S         HA leases (self-fencing): each heartbeat to a host that is up grants
                       its HA VMs S seconds; a host that hears nothing for S seconds stops
                       them (their shims do, agent alive or not), and the manager restarts
                       them elsewhere once S + the heartbeat timeout + 3 s have passed,
                       without a fence device (default 60; 0: no leases, fencing only).
                       A manager down for longer than S stops the HA VMs: see docs
  --balance off|advise|auto
                       the load balancer (default advise): every --balance-interval S
                       (default 60) it plans live migrations that even out the vCPUs and
                       memory the VMs hold across the hosts that are up; advise records a
                       balance.advice event (strata balance plan / apply), auto starts them
  --balance-max-moves N   migrations per balancer cycle, 1..100 (default 4)
  --balance-threshold P   imbalance (percent) under which nothing moves (default 10)
  --migration-tls on|off
                       live migrations encrypt the memory stream and the disk mirror with
                       TLS (the hosts' migration certificates, mutual) unless the request
                       says "tls": false (default on; off for trusted networks)
  --migrations-per-host N
                       live migrations at once on one host, incoming and outgoing
                       together, 1..64 (default 2); more wait in line, in the order asked
  --max-migrations N   live migrations at once in the whole manager, 1..4096 (default 8)
  --controller-workers N
                       VMs reconciled at once (define, start, stop on their hosts),
                       1..256 (default 16); a fixed number whatever the fleet's size
  --image-max-bytes N  largest image upload (POST /api/v1/images), bytes (default 16 GiB)
  --max-streams N      open event streams + consoles, overall (default 1000; 503 over it)
  --max-streams-per-token N  open event streams + consoles per token (default 32; 429)
  --max-consoles N     open console WebSockets, overall (default 64; 503 over it)
  --cpu-overcommit R   vCPUs placeable per host hardware thread, 0 < R <= 64 (default 4)
  --memory-overcommit R
                       MiB of VM memory placeable per MiB of host memory, 0 < R <= 64
                       (default 1: no memory overcommit)
  --placement POLICY   spread (default: most free capacity first) | pack (fill hosts,
                       least stranded capacity first); see docs/internals/scheduler.md
  --log-level LEVEL    trace|debug|info|warn|error|off (default info)
  --help
)";

int usage_error(const std::string& msg) {
  fmt::print(stderr, "stratad: {}\n{}", msg, kUsage);
  return 2;
}

bool parse_int(const std::string& s, int min, int max, int* out) {
  char* end = nullptr;
  long v = std::strtol(s.c_str(), &end, 10);
  if (s.empty() || *end != '\0' || v < min || v > max) return false;
  *out = static_cast<int>(v);
  return true;
}

// Each REST connection is a file descriptor: the usual soft limit (1024) would run out
// before --http-max-connections does. Raise it to the hard limit, as servers do.
void raise_fd_limit(int max_connections) {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return;
  if (rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    getrlimit(RLIMIT_NOFILE, &rl);
  }
  // Connections plus the store, agent channels, streams and uploads.
  if (rl.rlim_cur < static_cast<rlim_t>(max_connections) + 256)
    strata::logger("stratad")->warn(
        "open file limit {} is low for --http-max-connections {}: accept will fail with "
        "EMFILE before the cap (raise the hard limit, e.g. LimitNOFILE= in systemd)",
        rl.rlim_cur, max_connections);
}

// True when HOST:PORT names a loopback address (127.0.0.0/8, ::1, localhost).
bool is_loopback_listen(const std::string& listen) {
  std::string host = listen.substr(0, listen.rfind(':'));
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  if (host == "localhost") return true;
  in_addr v4{};
  if (inet_pton(AF_INET, host.c_str(), &v4) == 1) return (ntohl(v4.s_addr) >> 24) == 127;
  in6_addr v6{};
  if (inet_pton(AF_INET6, host.c_str(), &v6) == 1) return IN6_IS_ADDR_LOOPBACK(&v6);
  return false;
}

}  // namespace

int main(int argc, char** argv) {
  strata::wire::configure_grpc_runtime();
  strata::manager::ManagerConfig cfg;
  cfg.connections.ha_lease = std::chrono::seconds(60);
  std::string log_level = "info";
  bool insecure_http = false;
  std::vector<std::string> args(argv + 1, argv + argc);
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    auto value = [&](std::string* out) {
      if (i + 1 >= args.size()) return false;
      *out = args[++i];
      return true;
    };
    int n = 0;
    std::string v;
    if (a == "--help" || a == "-h") {
      fmt::print("{}", kUsage);
      return 0;
    } else if (a == "--all-in-one") {
      cfg.all_in_one = true;
    } else if (a == "--db") {
      if (!value(&cfg.db_url)) return usage_error("--db needs a URL");
    } else if (a == "--db-password-file") {
      if (!value(&v)) return usage_error("--db-password-file needs a file");
      auto pw = strata::read_secret_file(v, "--db-password-file");
      if (!pw) {
        fmt::print(stderr, "stratad: {}\n", pw.error().message);
        return 2;
      }
      cfg.db_password = *pw;
    } else if (a == "--data-dir") {
      if (!value(&cfg.data_dir)) return usage_error("--data-dir needs a folder");
    } else if (a == "--listen") {
      if (!value(&cfg.listen)) return usage_error("--listen needs HOST:PORT");
    } else if (a == "--https") {
      cfg.https = true;
    } else if (a == "--insecure-http") {
      insecure_http = true;
    } else if (a == "--tls-cert") {
      if (!value(&cfg.tls_cert_file)) return usage_error("--tls-cert needs a file");
    } else if (a == "--tls-key") {
      if (!value(&cfg.tls_key_file)) return usage_error("--tls-key needs a file");
    } else if (a == "--web-root") {
      if (!value(&cfg.web_root)) return usage_error("--web-root needs a folder");
    } else if (a == "--agent-binary") {
      if (!value(&cfg.agent_binary)) return usage_error("--agent-binary needs a path");
    } else if (a == "--accel") {
      if (!value(&cfg.agent_accel) ||
          (cfg.agent_accel != "auto" && cfg.agent_accel != "kvm" && cfg.agent_accel != "tcg"))
        return usage_error("--accel must be auto, kvm or tcg");
    } else if (a == "--host-name") {
      if (!value(&cfg.host_name)) return usage_error("--host-name needs a name");
    } else if (a == "--datastore") {
      if (!value(&v) || v.find('=') == std::string::npos || v.front() == '=' || v.back() == '=')
        return usage_error("--datastore needs NAME=PATH");
      cfg.agent_datastores.push_back(v);
    } else if (a == "--heartbeat-ms") {
      if (!value(&v) || !parse_int(v, 100, 600000, &n))
        return usage_error("--heartbeat-ms must be 100..600000");
      cfg.connections.heartbeat.interval = std::chrono::milliseconds(n);
      cfg.connections.heartbeat.rpc_timeout = std::chrono::milliseconds(std::max(100, n * 3 / 4));
    } else if (a == "--miss-threshold") {
      if (!value(&v) || !parse_int(v, 1, 1000, &n))
        return usage_error("--miss-threshold must be 1..1000");
      cfg.connections.heartbeat.miss_threshold = n;
    } else if (a == "--metrics-every") {
      if (!value(&v) || !parse_int(v, 1, 10000, &n))
        return usage_error("--metrics-every must be 1..10000");
      cfg.connections.metrics_every = n;
    } else if (a == "--http-threads") {
      if (!value(&v) || !parse_int(v, 1, 64, &n)) return usage_error("--http-threads must be 1..64");
      cfg.http_threads = n;
    } else if (a == "--http-max-connections") {
      if (!value(&v) || !parse_int(v, 1, 1000000, &n))
        return usage_error("--http-max-connections must be 1..1000000");
      cfg.http.max_connections = n;
    } else if (a == "--http-max-connections-per-address") {
      if (!value(&v) || !parse_int(v, 1, 1000000, &n))
        return usage_error("--http-max-connections-per-address must be 1..1000000");
      cfg.http.max_connections_per_address = n;
    } else if (a == "--enroll-rate") {
      if (!value(&v) || !parse_int(v, 1, 100000, &n))
        return usage_error("--enroll-rate must be 1..100000");
      cfg.enroll_rate.burst = n;
      cfg.enroll_rate.per_minute = n;
    } else if (a == "--login-rate") {
      if (!value(&v) || !parse_int(v, 1, 100000, &n))
        return usage_error("--login-rate must be 1..100000");
      cfg.login_rate.per_minute = 60.0 * n;
      cfg.login_rate.burst = std::max(10, n);
    } else if (a == "--event-max-age") {
      if (!value(&v)) return usage_error("--event-max-age needs AGE (e.g. 30d)");
      auto age = strata::manager::parse_retention_age(v);
      if (!age) return usage_error("--event-max-age: " + age.error().message);
      cfg.event_retention.max_age = *age;
    } else if (a == "--event-max-rows") {
      if (!value(&v) || !parse_int(v, 0, 2'000'000'000, &n))
        return usage_error("--event-max-rows must be 0..2000000000");
      cfg.event_retention.max_rows = n;
    } else if (a == "--task-renew-interval") {
      if (!value(&v) || !parse_int(v, 1, 3600, &n))
        return usage_error("--task-renew-interval must be 1..3600 (seconds)");
      cfg.task_leases.renew_interval = std::chrono::seconds(n);
    } else if (a == "--task-lease") {
      if (!value(&v) || !parse_int(v, 10, 86400, &n))
        return usage_error("--task-lease must be 10..86400 (seconds)");
      cfg.task_leases.lease = std::chrono::seconds(n);
    } else if (a == "--backup-repo") {
      if (!value(&v) || v.empty() || v.front() != '/')
        return usage_error("--backup-repo needs an absolute PATH");
      cfg.backup_repo = v;
    } else if (a == "--backup-key-file") {
      if (!value(&v) || v.empty() || v.front() != '/')
        return usage_error("--backup-key-file needs an absolute FILE");
      cfg.backup_key_file = v;
    } else if (a == "--create-backup-key") {
      if (!value(&v) || v.empty()) return usage_error("--create-backup-key needs FILE");
      auto key = strata::backup::create_key_file(v);
      if (!key) {
        fmt::print(stderr, "stratad: {}\n", key.error().message);
        return 1;
      }
      fmt::print(
          "backup key written to {} (fingerprint {}).\nUse it with --backup-key-file {} on a "
          "new, empty --backup-repo. Keep a copy somewhere safe, off this host: without the key "
          "the backups cannot be read.\n",
          v, key->fingerprint(), v);
      return 0;
    } else if (a == "--backup-sync-repo") {
      if (!value(&v) || v.empty() || v.front() != '/')
        return usage_error("--backup-sync-repo needs an absolute PATH");
      cfg.backup_sync_repo = v;
    } else if (a == "--fence-config") {
      if (!value(&v) || v.empty()) return usage_error("--fence-config needs FILE");
      cfg.fence_config = v;
    } else if (a == "--ha-admission") {
      if (!value(&v)) return usage_error("--ha-admission needs enforce, warn or off");
      if (v == "enforce")
        cfg.ha_admission = strata::manager::HaAdmission::enforce;
      else if (v == "warn")
        cfg.ha_admission = strata::manager::HaAdmission::warn;
      else if (v == "off")
        cfg.ha_admission = strata::manager::HaAdmission::off;
      else
        return usage_error("--ha-admission must be enforce, warn or off");
    } else if (a == "--migration-tls") {
      if (!value(&v) || (v != "on" && v != "off"))
        return usage_error("--migration-tls must be on or off");
      cfg.migration_tls = v == "on";
    } else if (a == "--balance") {
      auto m = value(&v) ? strata::manager::balance_mode_from_string(v) : std::nullopt;
      if (!m) return usage_error("--balance must be off, advise or auto");
      cfg.balance.mode = *m;
    } else if (a == "--balance-interval") {
      if (!value(&v) || !parse_int(v, 10, 86400, &n))
        return usage_error("--balance-interval must be 10..86400 (seconds)");
      cfg.balance.interval = std::chrono::seconds(n);
    } else if (a == "--balance-max-moves") {
      if (!value(&v) || !parse_int(v, 1, 100, &n))
        return usage_error("--balance-max-moves must be 1..100");
      cfg.balance.plan.max_moves = static_cast<uint32_t>(n);
    } else if (a == "--balance-threshold") {
      // Percent: the imbalance under which nothing moves (default 10).
      if (!value(&v) || !parse_int(v, 0, 100, &n))
        return usage_error("--balance-threshold must be 0..100 (percent)");
      cfg.balance.plan.min_imbalance = n / 100.0;
    } else if (a == "--migrations-per-host") {
      if (!value(&v) || !parse_int(v, 1, 64, &n))
        return usage_error("--migrations-per-host must be 1..64");
      cfg.controller.migrations.per_host = n;
    } else if (a == "--max-migrations") {
      if (!value(&v) || !parse_int(v, 1, 4096, &n))
        return usage_error("--max-migrations must be 1..4096");
      cfg.controller.migrations.total = n;
    } else if (a == "--controller-workers") {
      if (!value(&v) || !parse_int(v, 1, 256, &n))
        return usage_error("--controller-workers must be 1..256");
      cfg.controller.workers = n;
    } else if (a == "--ha-lease") {
      if (!value(&v) || !parse_int(v, 0, 3600, &n))
        return usage_error("--ha-lease must be 0..3600 (seconds)");
      cfg.connections.ha_lease = std::chrono::seconds(n);
    } else if (a == "--ha-failed-after") {
      if (!value(&v) || !parse_int(v, 0, 3'600'000, &n))
        return usage_error("--ha-failed-after must be 0..3600000 (milliseconds)");
      cfg.ha.failed_after = std::chrono::milliseconds(n);
    } else if (a == "--image-max-bytes") {
      char* end = nullptr;
      if (!value(&v) || v.empty() || v[0] == '-') return usage_error("--image-max-bytes needs N");
      errno = 0;
      unsigned long long b = std::strtoull(v.c_str(), &end, 10);
      if (errno != 0 || *end != '\0' || b == 0) return usage_error("--image-max-bytes must be > 0");
      cfg.image_max_bytes = b;
    } else if (a == "--max-streams" || a == "--max-streams-per-token" || a == "--max-consoles") {
      if (!value(&v) || !parse_int(v, 1, 1000000, &n))
        return usage_error(a + " must be 1..1000000");
      if (a == "--max-streams") cfg.streams.total = n;
      if (a == "--max-streams-per-token") cfg.streams.per_token = n;
      if (a == "--max-consoles") cfg.streams.consoles = n;
    } else if (strata::manager::is_scheduler_flag(a)) {
      if (!value(&v)) return usage_error(a + " needs a value");
      if (auto st = strata::manager::set_scheduler_option(cfg.scheduler, a, v); !st)
        return usage_error(st.error().message);
    } else if (a == "--log-level") {
      if (!value(&log_level)) return usage_error("--log-level needs a level");
    } else {
      return usage_error("unknown argument '" + a + "'");
    }
  }
  if (!cfg.all_in_one && cfg.db_url.empty() && cfg.data_dir.empty())
    return usage_error("give --all-in-one --data-dir DIR, or --db URL --data-dir DIR");
  if (cfg.data_dir.empty()) return usage_error("--data-dir is required");
  if (cfg.tls_cert_file.empty() != cfg.tls_key_file.empty())
    return usage_error("--tls-cert and --tls-key go together");
  // A lease shorter than two renewals would fail a live task whose renewal was late.
  if (cfg.task_leases.lease < 2 * cfg.task_leases.renew_interval)
    return usage_error("--task-lease must be at least twice --task-renew-interval");
  if (insecure_http && (cfg.https || !cfg.tls_cert_file.empty()))
    return usage_error("--insecure-http excludes --https and --tls-cert/--tls-key");
  // HTTPS unless asked otherwise; a laptop's all-in-one on loopback keeps plain HTTP.
  if (!insecure_http && !cfg.https && cfg.tls_cert_file.empty() &&
      !(cfg.all_in_one && is_loopback_listen(cfg.listen)))
    cfg.https = true;
  if (!strata::set_log_level(log_level)) return usage_error("unknown --log-level " + log_level);
  if (strata::store::url_has_password(cfg.db_url))
    fmt::print(stderr, "stratad: warning: the --db URL carries a password, which every local "
                       "user can read in ps; use --db-password-file FILE or PGPASSFILE\n");

  // Block the stop signals before any thread starts, then wait for them here.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  signal(SIGPIPE, SIG_IGN);
  raise_fd_limit(cfg.http.max_connections);

  auto mgr = strata::manager::start_manager(cfg);
  if (!mgr) {
    fmt::print(stderr, "stratad: {}\n", mgr.error().to_string());
    // 7 as strata-agent: another daemon holds this data folder.
    return mgr.error().code == strata::ErrorCode::conflict ? 7 : 1;
  }
  fmt::print("stratad: API {} (admin token: {})\n", (*mgr)->api_url(), (*mgr)->admin_token_path());
  std::fflush(stdout);
  int sig = 0;
  sigwait(&set, &sig);
  fmt::print("stratad: signal {}, stopping (VMs keep running under their agents)\n", sig);
  std::fflush(stdout);
  (*mgr)->stop();
  return 0;
}
