// Wiring of stratad's parts (see manager.h).
#include "strata/manager/manager.h"

#include <fmt/format.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <optional>

#include "api_tls.h"
#include "local_agent.h"
#include "strata/common/atomic_file.h"
#include "strata/common/dir_lock.h"
#include "strata/common/log.h"
#include "strata/enroll/enroll_client.h"
#include "strata/manager/api/api_service.h"
#include "strata/manager/api/http_server.h"
#include "strata/manager/api/static_files.h"
#include "strata/manager/auth/sessions.h"
#include "strata/manager/auth/tokens.h"
#include "strata/manager/events/event_log.h"
#include "strata/manager/tasks/running_tasks.h"
#include "strata/manager/tasks/task_leases.h"
#include "strata/manager/tasks/task_tracker.h"
#include "strata/manager/vms/backup_schedules.h"
#include "strata/manager/vms/backup_service.h"
#include "strata/manager/vms/host_evacuation.h"
#include "strata/manager/vms/vm_import.h"
#include "strata/manager/vms/vm_service.h"
#include "strata/pki/certificate_authority.h"

#ifndef STRATA_WEB_DIST_DEFAULT
#define STRATA_WEB_DIST_DEFAULT ""
#endif

namespace strata::manager {

namespace fs = std::filesystem;

namespace {

Result<std::pair<std::string, uint16_t>> split_listen(const std::string& listen) {
  auto colon = listen.rfind(':');
  if (colon == std::string::npos || colon == 0)
    return invalid_argument("listen", "--listen must be HOST:PORT");
  int port = std::atoi(listen.c_str() + colon + 1);
  if (port < 0 || port > 65535) return invalid_argument("listen", "port must be 0..65535");
  return std::make_pair(listen.substr(0, colon), static_cast<uint16_t>(port));
}

// The image catalog's folder (<data_dir>/catalog) with uploads/ for bodies being
// received (same filesystem, so a finished upload is renamed into place); leftovers of
// interrupted uploads are removed, and records and files made to agree after a crash.
Result<std::unique_ptr<ImageDistributor>> open_catalog(store::Store& store,
                                                       const std::string& dir) {
  std::error_code ec;
  fs::create_directories(dir + "/uploads", ec);
  if (ec) return internal_error(fmt::format("cannot create {}/uploads: {}", dir, ec.message()));
  for (const auto& e : fs::directory_iterator(dir + "/uploads", ec)) fs::remove(e.path(), ec);
  auto catalog = std::make_unique<ImageDistributor>(store, dir);
  if (auto repaired = catalog->repair(); !repaired)
    return tl::unexpected(repaired.error().wrap("checking the image catalog"));
  return catalog;
}

class ManagerImpl final : public Manager {
 public:
  ~ManagerImpl() override { stop(); }

  Status start(const ManagerConfig& cfg) {
    auto log = logger("manager");
    cfg_ = cfg;
    if (cfg.data_dir.empty()) return invalid_argument("data_dir", "--data-dir is required");
    std::error_code ec;
    fs::create_directories(cfg.data_dir, ec);
    if (ec) return internal_error(fmt::format("cannot create {}: {}", cfg.data_dir, ec.message()));
    // One stratad per data folder, before anything in it is read: a second one would adopt
    // the first one's local agent, fail to listen on the busy port and stop that agent on
    // its way out, and share the SQLite store, the CA and the upload folder. Held for the
    // manager's life; O_CLOEXEC keeps it out of the local agent.
    auto lock = DirLock::acquire(cfg.data_dir + "/stratad.lock");
    if (!lock) {
      auto e = lock.error();
      if (e.code == ErrorCode::conflict)
        e.message = fmt::format("another stratad already uses {} ({}); stop it first",
                                cfg.data_dir, e.message);
      return tl::unexpected(std::move(e));
    }
    dir_lock_.emplace(std::move(*lock));
    std::string url = cfg.db_url.empty() ? "sqlite:" + cfg.data_dir + "/strata.db" : cfg.db_url;
    clock_ = system_clock();
    auto store = store::open_store(url, store::StoreOptions{clock_, 4}, cfg.db_password);
    if (!store) return tl::unexpected(store.error().wrap("opening the store"));
    store_ = std::move(*store);

    token_path_ = cfg.data_dir + "/admin.token";
    auto admin = bootstrap_admin_token(*store_, "admin");
    if (!admin) return tl::unexpected(admin.error());
    if (*admin) {
      // An O_EXCL temp file created 0600, then renamed: never readable by others, not even
      // briefly, and a file or symlink planted at a predictable temp name is not followed.
      if (auto st = write_file_atomic(token_path_, **admin + "\n", 0600); !st) return st;
      fmt::print("stratad: created the first admin token; it is in {} (mode 0600)\n", token_path_);
    }

    if (auto st = start_pki(cfg.data_dir + "/pki"); !st) return st;

    events_ = std::make_unique<EventLog>(*store_);
    retention_ = std::make_unique<EventRetention>(*store_, clock_, cfg.event_retention);
    retention_->start();
    tasks_ = std::make_unique<TaskTracker>(*store_);
    auth_ = std::make_unique<TokenAuthenticator>(*store_, clock_);
    agents_ = std::make_unique<ConnectionManager>(*store_, *events_, clock_, cfg.connections);
    auto scheduler = sched::Scheduler::create(cfg.scheduler);
    if (!scheduler) return tl::unexpected(scheduler.error());
    placement_ = std::make_unique<PlacementService>(*store_, std::move(*scheduler));
    controller_ = std::make_unique<VmController>(*store_, *agents_, *tasks_, *events_,
                                                 *placement_, clock_, cfg.controller);
    auto catalog = open_catalog(*store_, cfg.data_dir + "/catalog");
    if (!catalog) return tl::unexpected(catalog.error());
    images_ = std::move(*catalog);
    controller_->set_image_distributor(images_.get());
    // Clusters and their CPU baseline: "default" always exists (hosts join it unless they
    // name another); VMs start with their host's cluster baseline.
    clusters_ = std::make_unique<ClusterService>(*store_, *events_, clock_);
    if (auto st = clusters_->ensure_default(); !st) return tl::unexpected(st.error().wrap("clusters"));
    controller_->set_clusters(clusters_.get());
    vms_ = std::make_unique<VmService>(
        *store_, *placement_, *events_, clock_,
        [this](const std::string& vm_id) { controller_->enqueue_vm(vm_id); });
    vms_->set_agents([this](const std::string& host_id) { return agents_->client(host_id); });
    vms_->set_image_distributor(images_.get());
    vms_->set_ha_admission(cfg.ha_admission);
    vms_->set_migration_tls(cfg.migration_tls);
    // VM import: disks converted next to uploads (same file system as the catalog).
    importer_ = std::make_unique<VmImporter>(*store_, *images_, *vms_,
                                             cfg.data_dir + "/catalog/uploads");
    importer_->set_tasks(tasks_.get());  // the import's own task shows its progress
    importer_->set_running_tasks(&running_tasks_);
    vms_->set_running_tasks(&running_tasks_);
    std::optional<backup::RepoKey> backup_key;
    if (!cfg.backup_key_file.empty()) {
      if (cfg.backup_repo.empty())
        return make_error(ErrorCode::invalid_argument,
                          "--backup-key-file needs --backup-repo (the repository it encrypts)",
                          "backup_key_file");
      auto k = backup::load_key_file(cfg.backup_key_file);
      if (!k) return tl::unexpected(k.error().wrap("--backup-key-file"));
      backup_key.emplace(std::move(*k));
    }
    const backup::RepoKey* key = backup_key ? &*backup_key : nullptr;
    std::optional<backup::Repository> repo;
    if (!cfg.backup_repo.empty()) {
      auto r = backup::Repository::open(cfg.backup_repo, key);
      if (!r) return tl::unexpected(r.error().wrap("--backup-repo"));
      repo = std::move(*r);
    }
    std::optional<backup::Repository> sync_target;
    if (!cfg.backup_sync_repo.empty()) {
      if (cfg.backup_repo.empty())
        return make_error(ErrorCode::invalid_argument,
                          "--backup-sync-repo needs --backup-repo (the repository to copy)",
                          "backup_sync_repo");
      auto r = backup::Repository::open(cfg.backup_sync_repo, key);
      if (!r) return tl::unexpected(r.error().wrap("--backup-sync-repo"));
      if (r->root() == repo->root())
        return make_error(ErrorCode::invalid_argument,
                          "--backup-sync-repo must be another folder than --backup-repo",
                          "backup_sync_repo");
      sync_target = std::move(*r);
    }
    backups_ = std::make_unique<BackupService>(
        *store_, *events_, clock_,
        [this](const std::string& host_id) { return agents_->client(host_id); }, std::move(repo));
    backups_->set_sync_target(std::move(sync_target));
    backups_->set_running_tasks(&running_tasks_);
    // A restore into a new VM creates it stopped as any create, and deletes it if it fails.
    backups_->set_vm_lifecycle(
        [this](VmDocument doc,
               const std::string& actor) -> Result<std::pair<store::VmRecord, store::TaskRecord>> {
          auto c = vms_->create(std::move(doc), /*start=*/false, actor);
          if (!c) return tl::unexpected(c.error());
          return std::make_pair(c->vm, c->task);
        },
        [this](const std::string& name, const std::string& actor) {
          (void)vms_->remove(name, std::nullopt, actor);
        });
    backup_schedules_ = std::make_unique<BackupScheduler>(*store_, *events_, clock_, *backups_);
    evacuator_ = std::make_unique<HostEvacuator>(*store_, *vms_, *events_, clock_);
    balancer_ = std::make_unique<Balancer>(*vms_, *events_, clock_, cfg.balance);
    FencerPtr fencer;
    if (!cfg.fence_config.empty()) {
      auto fc = load_fence_config(cfg.fence_config);
      if (!fc) return tl::unexpected(fc.error().wrap("--fence-config"));
      log->info("fence devices configured hosts={}", fc->hosts.size());
      fencer = make_fence_agent_runner(std::move(*fc));
    }
    ha_ = std::make_unique<HaController>(
        *store_, *events_, std::move(fencer),
        [this](const std::string& host_id) { return agents_->liveness(host_id); },
        [this](const std::string& vm_id) { controller_->enqueue_vm(vm_id); }, clock_, cfg.ha);
    agents_->set_callbacks(
        {[this](const std::string& h, Liveness l) { controller_->on_host_state(h, l); },
         [this](const std::string& h, const pb::VmEvent& e) { controller_->on_vm_event(h, e); },
         // Shared: the agents' threads may publish until they are stopped.
         [feed = metrics_feed_](const std::string& h, int64_t t, const std::string& data) {
           feed->publish(h, t, data);
         },
         // HA leases: what each heartbeat grants, from the HA controller's one filter.
         [this](const std::string& h) { return ha_->lease_vms(h); }});
    ha_->set_running_tasks(&running_tasks_);
    if (cfg.connections.ha_lease.count() > 0)
      ha_->set_lease_view([this](const std::string& h) { return agents_->ha_lease(h); });

    ApiDeps deps;
    deps.store = store_.get();
    deps.auth = auth_.get();
    deps.events = events_.get();
    deps.tasks = tasks_.get();
    deps.agents = agents_.get();
    deps.controller = controller_.get();
    deps.placement = placement_.get();
    deps.clusters = clusters_.get();
    deps.vms = vms_.get();
    deps.importer = importer_.get();
    deps.backups = backups_.get();
    deps.backup_schedules = backup_schedules_.get();
    deps.evacuator = evacuator_.get();
    deps.balancer = balancer_.get();
    deps.clock = clock_;
    deps.ca = ca_.get();
    deps.stopping = [this] { return stopping_.load(); };
    deps.images = images_.get();
    deps.image_max_bytes = cfg.image_max_bytes;
    deps.stream_caps = cfg.streams;
    deps.enroll_rate = cfg.enroll_rate;
    deps.login_rate = cfg.login_rate;
    deps.metrics_feed = metrics_feed_.get();
    sessions_ = std::make_unique<SessionStore>(clock_);
    deps.sessions = sessions_.get();
    // Over HTTPS the browser session cookie is Secure (docs/internals/web.md).
    deps.secure_cookies = cfg.https || !cfg.tls_cert_file.empty() || !cfg.tls_key_file.empty();
    if (auto root = find_web_root(cfg.web_root, STRATA_WEB_DIST_DEFAULT)) {
      auto files = StaticFiles::load(*root);
      if (!files) return tl::unexpected(files.error().wrap("the web console (--web-root)"));
      web_ = std::make_unique<StaticFiles>(std::move(*files));
      deps.web = web_.get();
      log->info("web console served at / from {} ({} files)", *root, web_->file_count());
    } else {
      log->info("web console not found (build it: cd web && npm ci && npm run build, or pass "
                "--web-root DIR); / is not served");
    }
    if (auto st = placement_->load(); !st) return st;
    api_ = std::make_unique<ApiService>(std::move(deps));

    // In-process tasks a previous run of this manager (or a dead peer on a shared store)
    // left pending or running are failed before the API serves: the lease's age is the
    // only rule, so a live peer's renewed tasks are left alone.
    task_leases_ =
        std::make_unique<TaskLeases>(*store_, clock_, running_tasks_, cfg.task_leases,
                                     [this](const store::TaskRecord& t) { on_stale_task(t); });
    if (auto swept = task_leases_->sweep(); !swept)
      log->warn("start-up sweep of stale tasks failed error={}", swept.error().to_string());
    else if (!swept->empty())
      log->warn("start-up sweep failed {} stale in-process task(s)", swept->size());

    // The local agent first, so its host is reachable from the first heartbeat on. Host
    // connections start (and wait for every known host's first heartbeat, bounded) before
    // the API serves: a restarted manager does not turn creates away as "no host fits".
    if (cfg.all_in_one) {
      local_agent_ = std::make_unique<LocalAgent>();
      std::string bin = cfg.agent_binary.empty() ? default_agent_binary() : cfg.agent_binary;
      if (auto st = local_agent_->start(bin, cfg.data_dir, cfg.agent_accel, cfg.agent_datastores);
          !st)
        return tl::unexpected(st.error().wrap("local agent"));
    }
    if (auto st = agents_->start(); !st) return st;

    auto listen = split_listen(cfg.listen);
    if (!listen) return tl::unexpected(listen.error());
    HttpServerConfig hc = cfg.http;
    hc.host = listen->first;
    hc.port = listen->second;
    hc.threads = cfg.http_threads;
    enroll::TlsTrust local_trust;  // how the local agent's enrollment verifies this server
    if (cfg.https || !cfg.tls_cert_file.empty() || !cfg.tls_key_file.empty()) {
      auto tls = cfg.tls_cert_file.empty() && cfg.tls_key_file.empty()
                     ? issue_api_tls(*ca_, hc.host)
                     : load_api_tls(cfg.tls_cert_file, cfg.tls_key_file);
      if (!tls) return tl::unexpected(tls.error());
      local_trust.ca_pem = cfg.tls_cert_file.empty() ? ca_->cert_pem() : tls->cert_chain_pem;
      hc.tls = std::move(*tls);
    }
    UploadRoutes uploads;
    uploads.streams_body = [this](std::string_view m, std::string_view p) {
      return api_->streams_body(m, p);
    };
    uploads.admit = [this](HttpRequest& head) { return api_->admit(head); };
    uploads.dir = cfg.data_dir + "/catalog/uploads";
    auto server = start_http_server(
        hc, [this](std::string_view m, std::string_view p) { return api_->body_limit(m, p); },
        [this](HttpRequest& r) { return api_->dispatch(r); }, std::move(uploads));
    if (!server) return tl::unexpected(server.error());
    server_ = std::move(*server);
    const char* scheme = hc.tls ? "https" : "http";
    api_url_ = fmt::format("{}://{}:{}", scheme, listen->first, server_->port());
    // The local agent dials loopback when the server listens on a wildcard address.
    std::string local_url =
        is_wildcard(listen->first)
            ? fmt::format("{}://{}:{}", scheme,
                          listen->first.find(':') == std::string::npos ? "127.0.0.1" : "[::1]",
                          server_->port())
            : api_url_;

    controller_->start();
    task_leases_->start();
    evacuator_->start();
    balancer_->start();
    ha_->start();
    // Schedules run only where there is a repository to back up into.
    if (!cfg.backup_repo.empty()) backup_schedules_->start();
    events_->append("stratad", "manager.start", "manager", "ok", api_url_);

    if (cfg.all_in_one) {
      std::string name = cfg.host_name.empty() ? enroll::default_host_name() : cfg.host_name;
      if (auto st = local_agent_->enroll(*store_, local_url, local_trust, name); !st)
        return tl::unexpected(st.error().wrap("enrolling the local agent"));
      if (auto h = store_->get_host_by_name(name)) agents_->add_host(*h);
      log->info("local agent enrolled host={} address={}", name, local_agent_->address());
    }
    return {};
  }

  // The CA that signs host certificates at enrollment (made once, key 0600), and this
  // manager's client certificate for dialling agents (issued anew at every start).
  Status start_pki(const std::string& dir) {
    auto ca = pki::CertificateAuthority::load_or_create(dir, "Strata manager CA");
    if (!ca) return tl::unexpected(ca.error().wrap("manager CA"));
    ca_ = std::make_unique<pki::CertificateAuthority>(std::move(*ca));
    auto client = ca_->issue("stratad", {}, pki::CertUsage::client, 825);
    if (!client) return tl::unexpected(client.error().wrap("manager client certificate"));
    auto id = std::make_shared<pki::TlsIdentity>();
    id->ca_cert_pem = ca_->cert_pem();
    id->cert_pem = std::move(client->cert_pem);
    id->key_pem = std::move(client->key_pem);
    AgentClient::set_default_tls(std::move(id));
    logger("manager")->info("manager CA ready dir={}", dir);
    return {};
  }

  // A task the sweep failed: an audit event, and what the dead operation left that is safe
  // to undo (docs/internals/manager.md, "In-process tasks").
  void on_stale_task(const store::TaskRecord& t) {
    if (events_)
      (void)events_->append("stratad", "task.stale", t.target_kind + "/" + t.target_id, "error",
                            fmt::format("task {} ({}) failed: {}", t.id, t.kind, t.message));
    if (vms_) vms_->abandon_clone(t);
    if (backups_) backups_->abandon_restore(t);
  }

  std::string api_url() const override { return api_url_; }
  std::string admin_token_path() const override { return token_path_; }

  void stop() override {
    if (stopping_.exchange(true)) return;
    if (events_) events_->wake_all();
    if (retention_) retention_->stop();
    if (server_) server_->stop();
    if (api_) api_->stop_streams();  // after the server: its streams are closed by now
    if (evacuator_) evacuator_->stop();
    if (balancer_) balancer_->stop();
    if (ha_) ha_->stop();
    if (task_leases_) task_leases_->stop();
    if (backup_schedules_) backup_schedules_->stop();
    if (controller_) controller_->stop();
    if (agents_) agents_->stop();
    if (local_agent_) local_agent_->stop();
    if (events_ && store_) events_->append("stratad", "manager.stop", "manager", "ok");
  }

 private:
  ManagerConfig cfg_;
  std::optional<DirLock> dir_lock_;  // DATA_DIR/stratad.lock, for the manager's life
  ClockPtr clock_;
  std::atomic<bool> stopping_{false};
  store::StorePtr store_;
  std::unique_ptr<EventLog> events_;
  std::unique_ptr<EventRetention> retention_;
  std::unique_ptr<TaskTracker> tasks_;
  // The in-process tasks running here: declared before the services whose workers hold
  // guards on it, so it outlives them.
  RunningTasks running_tasks_;
  std::unique_ptr<TokenAuthenticator> auth_;
  std::unique_ptr<ConnectionManager> agents_;
  std::unique_ptr<PlacementService> placement_;
  std::unique_ptr<ClusterService> clusters_;
  std::unique_ptr<VmController> controller_;
  std::unique_ptr<VmService> vms_;
  std::unique_ptr<VmImporter> importer_;
  std::unique_ptr<BackupService> backups_;
  std::unique_ptr<BackupScheduler> backup_schedules_;  // destroyed before backups_
  std::unique_ptr<HostEvacuator> evacuator_;
  std::unique_ptr<Balancer> balancer_;
  std::unique_ptr<HaController> ha_;
  std::unique_ptr<TaskLeases> task_leases_;  // destroyed (stopped) before the services
  std::unique_ptr<ImageDistributor> images_;
  std::unique_ptr<StaticFiles> web_;
  std::unique_ptr<SessionStore> sessions_;
  std::shared_ptr<MetricsFeed> metrics_feed_ = std::make_shared<MetricsFeed>();
  std::unique_ptr<ApiService> api_;
  HttpServerPtr server_;
  std::unique_ptr<LocalAgent> local_agent_;
  std::unique_ptr<pki::CertificateAuthority> ca_;
  std::string api_url_;
  std::string token_path_;
};

}  // namespace

Result<std::unique_ptr<Manager>> start_manager(const ManagerConfig& config) {
  auto m = std::make_unique<ManagerImpl>();
  if (auto st = m->start(config); !st) {
    m->stop();
    return tl::unexpected(st.error());
  }
  return std::unique_ptr<Manager>(std::move(m));
}

}  // namespace strata::manager
