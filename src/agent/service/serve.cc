// `strata-agent serve`: wires the real parts (inventory + accelerator probe, image store,
// network, QEMU driver) under the gRPC service and serves until SIGTERM. VMs run under
// their shims and survive the agent; on start the driver re-attaches (recover()).
#include <grpcpp/grpcpp.h>
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <thread>

#include "enroll.h"
#include "host_inventory_proto.h"
#include "socket_claim.h"
#include "strata/agent/datastore.h"
#include "strata/agent/inventory.h"
#include "strata/agent/metrics.h"
#include "strata/agent/qemu_hypervisor.h"
#include "strata/agent/qemu_user.h"
#include "strata/agent/service/agent_cli.h"
#include "strata/agent/service/agent_service.h"
#include "strata/common/dir_lock.h"
#include "strata/common/log.h"
#include "strata/enroll/enroll_client.h"
#include "strata/pki/grpc_tls.h"
#include "strata/pki/pki.h"
#include "strata/wire/server.h"

#ifndef STRATA_VERSION
#define STRATA_VERSION "0.0.0"
#endif

namespace strata::agent::cli {

namespace {

namespace fs = std::filesystem;

auto serve_log() {
  static auto l = logger("agent");
  return l;
}

int64_t now_unix_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Host metrics between consecutive GetMetrics calls (the first against the start sample).
class MetricsSampler {
 public:
  MetricsSampler() {
    if (auto s = read_host_sample()) last_ = *s;
  }
  Result<v1::HostMetrics> sample() {
    std::lock_guard lock(mu_);
    auto now = read_host_sample();
    if (!now) return tl::unexpected(now.error());
    v1::HostMetrics p;
    p.set_at_unix_ms(now_unix_ms());
    p.set_load1(now->load.one);
    p.set_load5(now->load.five);
    p.set_load15(now->load.fifteen);
    p.set_memory_total_bytes(now->memory.total_bytes);
    p.set_memory_available_bytes(now->memory.available_bytes);
    p.set_cpu_threads(static_cast<uint32_t>(sysconf(_SC_NPROCESSORS_ONLN)));
    if (last_) {
      if (auto m = host_metrics(*last_, *now)) {
        p.set_cpu_busy(m->cpu_percent / 100.0);
        p.set_metrics_json(to_json(*m).dump());
      }
    }
    last_ = *now;
    return p;
  }

 private:
  std::mutex mu_;
  std::optional<HostSample> last_;
};

std::string self_exe() {
  std::error_code ec;
  auto p = fs::read_symlink("/proc/self/exe", ec);
  return ec ? std::string("/proc/self/exe") : p.string();
}

// The per-VM shim: the small `strata-shim` installed next to this binary when present
// (a few hundred KiB per VM), else this binary's own `shim` subcommand.
std::string shim_exe() {
  std::string self = self_exe();
  fs::path sibling = fs::path(self).parent_path() / "strata-shim";
  std::error_code ec;
  if (fs::is_regular_file(sibling, ec) && ::access(sibling.c_str(), X_OK) == 0)
    return sibling.string();
  return self;
}

// Enrolls (first start with --manager) before anything listens on TCP: the TCP listener
// needs the certificate enrollment brings. Waits for the stop signals meanwhile.
// nullopt to go on serving, else the exit code.
std::optional<int> enroll_before_serving(const EnrollOptions& eo, const sigset_t& stop_signals) {
  std::atomic<bool> stop{false}, done{false};
  Status result;
  std::thread enroller([&] {
    result = enroll_until_done(eo, stop);
    done = true;
  });
  while (!done.load()) {
    timespec tick{0, 200 * 1000 * 1000};
    if (sigtimedwait(&stop_signals, nullptr, &tick) > 0) {
      stop = true;
      enroller.join();
      serve_log()->info("stopped while enrolling");
      return kExitOk;
    }
  }
  enroller.join();
  if (!result) {
    serve_log()->error("enrollment with {} failed: {}", eo.manager_url, result.error().to_string());
    return exit_code(result.error().code);
  }
  return std::nullopt;
}

// The TCP listener's credentials: mutual TLS with the enrollment's certificates, or
// plaintext with --insecure. nullptr (after logging why) when neither is possible.
std::shared_ptr<grpc::ServerCredentials> tcp_credentials(const ServeOptions& o) {
  if (o.insecure) {
    serve_log()->warn("--insecure: serving {} in plaintext without client authentication",
                      o.listen_tcp);
    return grpc::InsecureServerCredentials();
  }
  if (!o.manager.empty()) {
    auto rec = load_enrollment(o.state_dir, o.manager);
    if (rec && !enrollment_has_tls(*rec)) {
      serve_log()->error(
          "{}/enrollment.json was written by an agent without TLS: the manager now dials "
          "agents with mutual TLS. Re-enroll: delete the host in the manager (strata host "
          "delete {}), remove {}/enrollment.json and start again with a new --join-token "
          "(or use --insecure, plaintext, for debugging only)",
          o.state_dir, rec->value("name", o.name), o.state_dir);
      return nullptr;
    }
  }
  auto id = pki::load_identity(tls_dir(o.state_dir));
  if (!id) {
    serve_log()->error(
        "--listen-tcp needs this host's certificate from enrollment ({}): {}; enroll "
        "with --manager URL --join-token T, or use --insecure (plaintext, debugging)",
        tls_dir(o.state_dir), id.error().to_string());
    return nullptr;
  }
  return pki::server_credentials(*id);
}

}  // namespace

int run_serve(const ServeOptions& in) {
  ServeOptions o = in;
  if (!set_log_level(o.log_level)) {
    serve_log()->error("unknown log level {}", o.log_level);
    return kExitUsage;
  }
  std::error_code ec;
  fs::create_directories(o.state_dir, ec);
  if (ec) {
    serve_log()->error("cannot create state dir {}: {}", o.state_dir, ec.message());
    return kExitError;
  }
  ::chmod(o.state_dir.c_str(), 0700);
  o.state_dir = fs::absolute(o.state_dir).string();
  // One agent per state folder, before anything reads it: a second agent would fail to
  // reach the VMs' QMP sockets (QEMU serves one client) and fight over the socket path.
  // Held until this function returns; O_CLOEXEC keeps it out of QEMU and the shims.
  auto state_lock = DirLock::acquire(o.state_dir + "/" + kAgentLockFile);
  if (!state_lock) {
    serve_log()->error(
        "another strata-agent already serves {}: {}; stop it first (or talk to it "
        "with strata-agent ctl)",
        o.state_dir, state_lock.error().message);
    return state_lock.error().code == ErrorCode::conflict ? kExitLocked : kExitError;
  }
  if (o.images_dir.empty()) o.images_dir = o.state_dir + "/images";
  if (o.listen.empty()) o.listen = "unix:" + o.state_dir + "/agent.sock";
  {
    std::string warning;
    auto token = resolve_join_token(o.join_token, o.join_token_file, &warning);
    if (!token) {
      serve_log()->error("{}", token.error().message);
      return kExitUsage;
    }
    if (!warning.empty()) serve_log()->warn("{}", warning);
    o.join_token = *token;
  }
  if (!o.manager.empty()) {
    if (o.advertise.empty()) o.advertise = o.listen_tcp;
    if (o.advertise.empty()) {
      serve_log()->error("--manager needs --advertise HOST:PORT (or --listen-tcp)");
      return kExitUsage;
    }
    if (o.name.empty()) o.name = enroll::default_host_name();
    if (!o.ca_fingerprint.empty()) {
      auto fp = pki::parse_fingerprint(o.ca_fingerprint, "ca-fingerprint");
      if (!fp) {
        serve_log()->error("--ca-fingerprint: {}", fp.error().message);
        return kExitUsage;
      }
      o.ca_fingerprint = *fp;
    }
  } else if (!o.join_token.empty() || !o.advertise.empty() || !o.ca_fingerprint.empty()) {
    serve_log()->error("--join-token, --ca-fingerprint and --advertise need --manager");
    return kExitUsage;
  }

  // Block the stop signals in every thread (gRPC's included); main waits for them below.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  HostProbeOptions probe;
  probe.qemu_binary = o.qemu;
  probe.accelerator = o.accel;
  probe.state_dir = o.state_dir;
  auto inventory = collect_host_inventory(InventorySources{}, probe);
  if (!inventory) {
    serve_log()->error("host probe failed: {}", inventory.error().to_string());
    return exit_code(inventory.error().code);
  }
  const std::string accel = inventory->accelerator->accelerator;
  serve_log()->info("accelerator chosen accel={} requested={} reason=\"{}\"", accel, o.accel,
                    inventory->accelerator->reason);

  fs::create_directories(o.images_dir, ec);
  auto images = make_image_store(o.images_dir, o.qemu_img);
  if (!images) {
    serve_log()->error("image store: {}", images.error().to_string());
    return exit_code(images.error().code);
  }
  auto network = make_netlink_network();
  std::vector<std::pair<std::string, std::string>> mounts;
  for (const auto& flag : o.datastores) {
    auto m = parse_datastore_flag(flag);
    if (!m) {
      serve_log()->error("{}", m.error().message);
      return exit_code(m.error().code);
    }
    mounts.push_back(*m);
  }
  auto opened = Datastores::open(mounts, o.qemu_img);
  if (!opened) {
    serve_log()->error("datastores: {}", opened.error().to_string());
    return exit_code(opened.error().code);
  }
  DatastoresPtr datastores = *opened;

  auto qemu_user = decide_qemu_user(o.qemu_user, ::geteuid(), lookup_system_user);
  if (!qemu_user) {
    serve_log()->error("--qemu-user: {}", qemu_user.error().message);
    return exit_code(qemu_user.error().code);
  }
  if (qemu_user->user) {
    serve_log()->info("qemu user={} uid={} gid={}", qemu_user->user->name, qemu_user->user->uid,
                      qemu_user->user->gid);
    // QEMU must pass through the state folder to its VM folders (search only, by group).
    if (::chown(o.state_dir.c_str(), 0, qemu_user->user->gid) != 0 ||
        ::chmod(o.state_dir.c_str(), 0710) != 0) {
      serve_log()->error("cannot give {} access to {}: {}", qemu_user->user->name, o.state_dir,
                         std::strerror(errno));
      return kExitError;
    }
    // QEMU must also reach the image store. With the default user, folders it cannot pass
    // (a state folder under /root, say) fall back to QEMU as root, loudly; with an
    // explicit --qemu-user they are an error (make_qemu_hypervisor names the folder).
    std::vector<std::string> reached = {o.state_dir, o.images_dir};
    for (const auto& ds : datastores->list()) reached.push_back(ds.path);
    for (const auto& dir : reached) {
      auto reach = check_searchable_by(dir, *qemu_user->user);
      if (reach || o.qemu_user) continue;
      serve_log()->warn("QEMU RUNS AS ROOT: {}", reach.error().message);
      qemu_user->user.reset();
      break;
    }
  } else {
    serve_log()->warn("qemu user: {}", qemu_user->reason);
  }
  bool sandbox = inventory->qemu && inventory->qemu->sandbox;
  if (!sandbox)
    serve_log()->warn(
        "QEMU has no usable -sandbox option (query-command-line-options): VMs run "
        "without QEMU's seccomp filter");

  QemuOptions qo;
  qo.run_as = qemu_user->user;
  qo.sandbox = sandbox;
  qo.state_dir = o.state_dir;
  qo.qemu_binary = o.qemu;
  qo.accelerator = accel;
  // The named CPU models this host offers (a VM's profile may name only those).
  qo.cpu_models_probed = inventory->cpu_models.has_value();
  if (inventory->cpu_models)
    for (const auto& m : inventory->cpu_models->models)
      if (m.usable) qo.cpu_models.push_back(m.name);
  qo.images = images->get();
  qo.network = network.get();
  qo.datastores = datastores.get();
  qo.shim_exe = shim_exe();
  // The migration identity written at enrollment (ca.crt, migration.crt, migration.key).
  qo.migration_tls_dir = tls_dir(o.state_dir);
  if (auto dh = pki::dh_params_pem())
    qo.migration_dh_params_pem = std::move(*dh);
  else
    serve_log()->warn("no DH parameters for TLS migrations (QEMU generates its own): {}",
                      dh.error().to_string());
  auto hv = make_qemu_hypervisor(std::move(qo));
  if (!hv) {
    serve_log()->error("QEMU driver: {}", hv.error().to_string());
    return exit_code(hv.error().code);
  }
  if (auto st = (*hv)->recover(); !st) {
    // Serve anyway: the VMs that were recovered are manageable; the rest are reported.
    serve_log()->error("recover: {}", st.error().to_string());
  }
  serve_log()->info("recovered vms={}", (*hv)->list().size());

  std::mutex inv_mu;
  HostInventory cached = *inventory;
  auto sampler = std::make_shared<MetricsSampler>();
  service::AgentServiceOptions so;
  so.state_dir = o.state_dir;
  so.agent_version = STRATA_VERSION;
  so.api_level = o.api_level;
  if (o.api_level != wire::kApiLevel)
    serve_log()->warn("serving agent API level {} (this build speaks {}): as an older agent",
                      o.api_level, wire::kApiLevel);
  so.hostname = inventory->os.hostname;
  so.accelerator = accel;
  so.images = images->get();
  auto so_inventory = [&]() -> Result<v1::HostInventory> {
    std::lock_guard lock(inv_mu);
    // Refresh the cheap file-based part; keep the probed QEMU and accelerator facts.
    if (auto fresh = collect_inventory()) {
      fresh->qemu = cached.qemu;
      fresh->accelerator = cached.accelerator;
      fresh->cpu_models = cached.cpu_models;
      cached = std::move(*fresh);
    }
    return inventory_to_proto(cached, datastores.get(), o.api_level);
  };
  so.inventory = so_inventory;
  so.host_metrics = [sampler] { return sampler->sample(); };
  auto svc = service::AgentService::create(**hv, std::move(so));
  if (!svc) {
    serve_log()->error("service: {}", svc.error().to_string());
    return exit_code(svc.error().code);
  }

  // The UNIX socket: bound under a private name, published over a stale one (never over a
  // live server's), removed on exit only while it is still ours (socket_claim.h).
  std::optional<SocketClaim> unix_claim;
  std::string bind_address = o.listen;
  if (o.listen.rfind("unix:", 0) == 0) {
    unix_claim.emplace(o.listen.substr(5));
    if (auto s = unix_claim->check_free(); !s) {
      serve_log()->error("{}; is another strata-agent using --listen {}?", s.error().message,
                         o.listen);
      (*svc)->shutdown();
      return kExitLocked;
    }
    bind_address = "unix:" + unix_claim->bind_path();
  }
  // Enroll before serving: a TCP listener needs the host certificate enrollment brings.
  if (!o.manager.empty()) {
    EnrollOptions eo;
    eo.manager_url = o.manager;
    eo.join_token = o.join_token;
    eo.ca_fingerprint = o.ca_fingerprint;
    eo.ca_file = o.ca_file;
    eo.name = o.name;
    eo.address = o.advertise;
    eo.state_dir = o.state_dir;
    if (auto inv = so_inventory()) eo.inventory = enrollment_inventory(*inv);
    if (auto rc = enroll_before_serving(eo, stop_signals)) {
      (*svc)->shutdown();
      return *rc;
    }
  }

  // The UNIX socket stays plaintext: its 0600 mode is the access control.
  grpc::ServerBuilder builder;
  wire::apply_server_options(builder);
  builder.AddListeningPort(bind_address, grpc::InsecureServerCredentials());
  int tcp_port = 0;
  if (!o.listen_tcp.empty()) {
    auto creds = tcp_credentials(o);
    if (!creds) {
      (*svc)->shutdown();
      return kExitPrecondition;
    }
    builder.AddListeningPort(o.listen_tcp, creds, &tcp_port);
  }
  builder.RegisterService(svc->get());
  auto server = builder.BuildAndStart();
  if (!server || (!o.listen_tcp.empty() && tcp_port == 0)) {
    serve_log()->error("cannot listen on {} {}", o.listen, o.listen_tcp);
    return kExitUnavailable;
  }
  if (unix_claim) {
    ::chmod(unix_claim->bind_path().c_str(), 0600);
    if (auto s = unix_claim->publish(); !s) {
      serve_log()->error("cannot publish {}: {}", o.listen, s.error().message);
      (*svc)->shutdown();
      server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
      return s.error().code == ErrorCode::conflict ? kExitLocked : kExitUnavailable;
    }
  }
  serve_log()->info("serving listen={} tcp={} tcp_port={} tls={} pid={}", o.listen, o.listen_tcp,
                    tcp_port, !o.listen_tcp.empty() && !o.insecure, ::getpid());

  int sig = 0;
  sigwait(&stop_signals, &sig);
  serve_log()->info("stopping on signal {}; VMs keep running", sig);
  (*svc)->shutdown();
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
  server.reset();
  if (unix_claim) unix_claim->release();
  svc->reset();
  hv->reset();
  return kExitOk;
}

}  // namespace strata::agent::cli
