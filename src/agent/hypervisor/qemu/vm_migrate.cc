// QemuHypervisor live migration jobs (migration.h): the target's prepare / finish / abort
// and the source's migrate / confirm / cancel. Every QMP command, socket and qemu-img call
// runs without mu_; mu_ is taken only to read or change the VM's fields.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <thread>

#include "qemu_hypervisor.h"
#include "strata/common/atomic_file.h"
#include "strata/common/log.h"
#include "strata/model/vm_spec_json.h"
#include "vm_ops.h"

namespace strata::agent {

std::chrono::milliseconds deadline_for(uint64_t memory_bytes) {
  using namespace std::chrono_literals;
  uint64_t gib_tenths = memory_bytes * 10 / (1ull << 30);  // in 0.1 GiB
  return 60s + std::chrono::milliseconds(gib_tenths * 6000);
}

int64_t downtime_limit_at(const MigrationPolicy& p, std::chrono::milliseconds elapsed) {
  if (p.step_interval.count() <= 0) return p.downtime_start_ms;
  int64_t steps = elapsed / p.step_interval;
  return std::min(p.downtime_max_ms, p.downtime_start_ms + steps * p.downtime_step_ms);
}

}  // namespace strata::agent

namespace strata::agent::qemu {

namespace fs = std::filesystem;
using model::VmState;
using namespace std::chrono_literals;

namespace {

// The copy's own loops (mirrors ready, RAM sent) poll faster: a migration ends when QEMU
// says "completed", and every ms between that and the switch-over is downtime on TCG (the
// guest is paused for the RAM copy) and wall time for the user. A query is ~0.2 ms of QMP.
// Progress still goes out at most every kPoll.
constexpr auto kCopyPoll = 20ms;
// QEMU's own max-bandwidth default (MAX_THROTTLE, 128 MiB/s): what "no limit asked" means.
constexpr uint64_t kQemuDefaultMaxBandwidth = 128ull << 20;

// The format node of disk i: the mirror's source and the target's export (argv's names).
std::string node(const model::VmSpec& spec, size_t i) { return disk_names(spec, i).format_node; }
std::string mirror_node(size_t i) { return "mig-disk" + std::to_string(i); }

// The disks a migration copies (NBD mirror): those of this host's store. Disks on a
// datastore are opened by both QEMUs and handed over at the switchover, not copied.
std::vector<size_t> copied_disks(const model::VmSpec& spec) {
  std::vector<size_t> out;
  for (size_t i = 0; i < spec.disks.size(); ++i)
    if (spec.disks[i].datastore.empty()) out.push_back(i);
  return out;
}

// "tcp:HOST:PORT" with IPv6 literals in brackets.
std::string tcp_uri(const std::string& host, const std::string& port) {
  return "tcp:" + (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" + port;
}

// A free TCP port on `host` (an IP literal): bound to port 0, read back, closed. Another
// process may take it before QEMU binds it: nbd-server-start then fails and the caller
// retries with another port.
Result<std::string> free_port(const std::string& host) {
  sockaddr_storage ss{};
  socklen_t len = 0;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&ss);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&ss);
  if (inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    len = sizeof(*v4);
  } else if (inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    len = sizeof(*v6);
  } else {
    return invalid_argument("listen_host", "not an IP address: " + host);
  }
  int fd = ::socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return internal_error("socket: " + std::string(strerror(errno)));
  int port = -1;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&ss), len) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) == 0)
    port = ntohs(ss.ss_family == AF_INET ? v4->sin_port : v6->sin6_port);
  int err = errno;
  ::close(fd);
  if (port < 0) return unavailable("cannot bind " + host + ": " + strerror(err));
  return std::to_string(port);
}

std::string mib(uint64_t bytes) { return std::to_string(bytes >> 20) + " MiB"; }

// The tls-creds-x509 object of a TLS migration (one per QEMU, either end).
constexpr const char* kTlsCreds = "mig-tls";

// Gives QEMU this host's migration identity as a tls-creds-x509 object (`endpoint`
// "server" on the target, "client" on the source; the peer's certificate is always
// verified against the manager's CA, so the target requires a client certificate).
// QEMU reads its files only while the object is added: the agent writes them into
// <vm>/migration-tls (root-owned, readable by QEMU's group only, inside the VM folder
// QEMU can only traverse), adds the object, and removes the folder at once. The same
// certificate serves both ends (clientAuth + serverAuth).
Status add_tls_creds(QemuMonitor& qmp, const std::string& tls_dir, const std::string& vm_dir,
                     const std::optional<QemuUser>& user, const std::string& endpoint,
                     const std::string& dh_params_pem) {
  if (tls_dir.empty())
    return make_error(ErrorCode::failed_precondition,
                      "this host has no migration certificate (TLS migration impossible; "
                      "migrate without TLS only on a trusted network)");
  std::string ca, cert, key;
  for (auto [file, out] : {std::pair{kMigrationCaFile, &ca}, std::pair{kMigrationCertFile, &cert},
                           std::pair{kMigrationKeyFile, &key}}) {
    auto text = read_small_file(tls_dir + "/" + file);
    if (!text)
      return make_error(ErrorCode::failed_precondition,
                        "no migration certificate: " + text.error().message);
    *out = std::move(*text);
  }
  const std::string dir = vm_dir + "/migration-tls";
  std::error_code ec;
  fs::remove_all(dir, ec);
  struct Remove {
    const std::string& dir;
    ~Remove() {
      std::error_code e;
      fs::remove_all(dir, e);
    }
  } remove{dir};
  if (::mkdir(dir.c_str(), 0700) != 0)
    return internal_error("mkdir " + dir + ": " + std::strerror(errno));
  const unsigned file_mode = user ? 0640 : 0600;
  std::string dh = dh_params_pem;
  for (auto [file, text] : {std::pair{"ca-cert.pem", &ca}, std::pair{"server-cert.pem", &cert},
                            std::pair{"server-key.pem", &key}, std::pair{"client-cert.pem", &cert},
                            std::pair{"client-key.pem", &key}, std::pair{"dh-params.pem", &dh}}) {
    if (text->empty()) continue;  // no DH parameters given: QEMU makes its own
    const std::string path = dir + "/" + file;
    if (auto st = write_file_atomic(path, *text, file_mode); !st) return st;
    if (user && ::lchown(path.c_str(), 0, user->gid) != 0)
      return internal_error("chown " + path + ": " + std::strerror(errno));
  }
  if (user && (::lchown(dir.c_str(), 0, user->gid) != 0 || ::chmod(dir.c_str(), 0750) != 0))
    return internal_error("chown " + dir + ": " + std::strerror(errno));
  (void)qmp.object_del(kTlsCreds, kCmd);  // left by an earlier attempt
  if (auto st = qmp.object_add_tls_creds(kTlsCreds, dir, endpoint, true, kCmd); !st)
    return tl::unexpected(st.error().wrap("loading the migration certificate into QEMU"));
  return {};
}

// Host of a "tcp:HOST:PORT" / "tcp:[V6]:PORT" URI (what the target's certificate must name).
std::string uri_host(const std::string& uri) {
  std::string rest = uri.rfind("tcp:", 0) == 0 ? uri.substr(4) : uri;
  auto colon = rest.rfind(':');
  if (colon != std::string::npos) rest.resize(colon);
  if (rest.size() >= 2 && rest.front() == '[' && rest.back() == ']')
    rest = rest.substr(1, rest.size() - 2);
  return rest;
}

}  // namespace

bool ram_copy_needs_pause(const std::string& accelerator, int64_t qemu_major) {
  return accelerator != "kvm" && qemu_major < 9;
}

MigrationProgress ram_progress(const MigrationInfo& mi, int64_t downtime_limit_ms) {
  MigrationProgress p;
  p.phase = "ram";
  p.ram_total = mi.ram_total;
  p.ram_transferred = mi.ram_transferred;
  p.ram_remaining = mi.ram_remaining;
  p.dirty_bytes_rate = mi.dirty_bytes_rate();
  p.passes = mi.dirty_sync_count;
  p.mbps = mi.mbps;
  p.downtime_limit_ms = downtime_limit_ms;
  p.cpu_throttle_percent = mi.cpu_throttle_percentage.value_or(0);
  return p;
}

// ---------------------------------------------------------------------------------------
// Target

Result<HardwareProfile> QemuHypervisor::hardware_profile(const std::string& name) const {
  std::lock_guard lk(mu_);
  auto v = find_locked(name);
  if (!v) return tl::unexpected(v.error());
  return (*v)->rec.profile;
}

Result<MigrationSource> QemuHypervisor::begin_migration(const std::string& name) const {
  std::lock_guard lk(mu_);
  auto v = find_locked(name);
  if (!v) return tl::unexpected(v.error());
  MigrationSource out;
  out.spec = (*v)->spec;
  out.profile_json = to_json((*v)->rec.profile).dump();
  return out;
}

Result<IncomingInfo> QemuHypervisor::prepare_incoming(const MigrationSource& source,
                                                      const std::string& listen_host) {
  const model::VmSpec& spec = source.spec;
  if (spec.name.empty() || spec.uuid.empty())
    return invalid_argument("spec", "an incoming VM needs its name and UUID");
  if (listen_host.empty()) return invalid_argument("listen_host", "required");
  auto profile_json = nlohmann::json::parse(source.profile_json, nullptr, false);
  if (profile_json.is_discarded() || !profile_json.is_object())
    return invalid_argument("profile", "not a JSON object");
  auto parsed_profile = hardware_profile_from_json(profile_json);
  if (!parsed_profile) return tl::unexpected(parsed_profile.error().wrap("profile"));
  const HardwareProfile& profile = *parsed_profile;
  if (profile.version > kHardwareProfileVersion)
    return make_error(ErrorCode::failed_precondition,
                      "hardware profile v" + std::to_string(profile.version) +
                          " is newer than this agent's (v" +
                          std::to_string(kHardwareProfileVersion) + ")");
  if (profile.version > 0) {
    auto machines = machine_types();
    if (!machines) return tl::unexpected(machines.error());
    auto it = machines->find(profile.machine);
    if (it == machines->end() || it->second != profile.machine)
      return make_error(ErrorCode::failed_precondition,
                        "this host's QEMU has no machine type " + profile.machine);
    // The guest's CPU must be one this host offers, or the incoming QEMU would run it with
    // features it lacks (or refuse the stream). The manager's scheduler checks the same
    // before it picks a target; this is the host's own word.
    if (auto st = check_cpu_model("profile.cpu_model", profile.cpu_model); !st)
      return tl::unexpected(st.error());
  }
  std::string dir = vm_dir(spec.name);
  if (vm_files(dir).serial_socket.size() > kMaxSocketPath)
    return make_error(ErrorCode::failed_precondition, "state_dir is too long for UNIX sockets");
  if (!spec.disks.empty() && !opts_.images)
    return make_error(ErrorCode::failed_precondition, "no image store configured");
  if (source.postcopy)
    if (auto st = postcopy_possible(); !st) return tl::unexpected(st.error());
  if (auto st = check_datastores(spec); !st) return tl::unexpected(st.error());
  for (auto& d : spec.disks)
    if (d.datastore.empty() && !d.base_image.empty() && !opts_.images->image(d.base_image))
      return make_error(ErrorCode::failed_precondition,
                        "base image " + d.base_image +
                            " is not in this host's image store (the catalog distributes it)");
  if (!spec.cdrom.empty())
    if (auto p = iso_path(spec.cdrom, "cdrom"); !p)
      return make_error(ErrorCode::failed_precondition,
                        "cdrom: " + p.error().message + " (the catalog distributes it)");
  if (spec.kernel_boot) {
    if (!opts_.images->image(spec.kernel_boot->kernel))
      return make_error(ErrorCode::failed_precondition,
                        "kernel " + spec.kernel_boot->kernel + " is not in this host's store");
    if (!spec.kernel_boot->initrd.empty() && !opts_.images->image(spec.kernel_boot->initrd))
      return make_error(ErrorCode::failed_precondition,
                        "initrd " + spec.kernel_boot->initrd + " is not in this host's store");
  }
  {
    std::lock_guard lk(mu_);
    for (auto& [name, vm] : vms_) {
      if (name == spec.name) return make_error(ErrorCode::already_exists, "VM exists: " + name);
      if (vm->spec.uuid == spec.uuid)
        return make_error(ErrorCode::already_exists, "UUID in use by VM " + name);
    }
    if (defining_.contains(spec.name))
      return make_error(ErrorCode::already_exists, "VM " + spec.name + " is being defined");
    defining_[spec.name] = spec.uuid;
  }
  std::shared_ptr<Vm> vm;
  {
    struct Unreserve {
      QemuHypervisor* self;
      const std::string& name;
      ~Unreserve() {
        std::lock_guard lk(self->mu_);
        self->defining_.erase(name);
      }
    } unreserve{this, spec.name};
    std::error_code ec;
    if (fs::exists(dir, ec))
      return make_error(ErrorCode::already_exists, "VM folder exists: " + dir);
    fs::create_directories(dir, ec);
    if (ec) return internal_error("mkdir " + dir + ": " + ec.message());
    auto undo = [&](const Error& e) -> Result<IncomingInfo> {
      undo_disks(spec, {});
      fs::remove_all(dir, ec);
      return tl::unexpected(e);
    };
    // The same disks as on the source: overlays of the same bases (the mirror fills in what
    // the source's overlays hold), blank disks of the same size; datastore disks are the
    // source's own files (not copied: both QEMUs open them, the source hands over at the
    // switchover, as libvirt's shared-storage migration).
    // A UEFI VM's variables: a fresh copy here; QEMU writes the source's whole flash into
    // it once the incoming RAM (which carries the pflash contents) has arrived.
    if (profile.firmware == "uefi")
      if (auto st = create_uefi_vars(dir); !st) return undo(st.error());
    if (auto made = make_disks(spec, /*incoming=*/true); !made) return undo(made.error());
    if (auto s = write_file_atomic(dir + "/" + kSpecFile, model::to_json(spec).dump(2) + "\n",
                                  kVmFileMode);
        !s)
      return undo(s.error());
    vm = std::make_shared<Vm>();
    vm->dir = dir;
    vm->spec = spec;
    vm->rec.accelerator = opts_.accelerator;
    vm->rec.profile = profile;
    vm->rec.state = VmState::stopped;
    vm->job = VmJob::migrate_in;
    std::lock_guard lk(mu_);
    set_state_locked(spec.name, *vm, VmState::defined, "incoming migration");
    vms_[spec.name] = vm;
  }
  flush_events();
  auto fail = [&](const Error& e) -> Result<IncomingInfo> {
    logger("agent.qemu")->warn("incoming migration failed vm={} error={}", spec.name, e.message);
    if (auto s = abort_incoming(spec.name); !s)
      logger("agent.qemu")
          ->error("abort_incoming failed vm={} error={}", spec.name, s.error().message);
    return tl::unexpected(e.wrap("preparing the incoming migration"));
  };
  if (auto s = start_qemu(spec.name, vm, spec, profile, true); !s) return fail(s.error());
  std::shared_ptr<QemuMonitor> qmp;
  {
    std::lock_guard lk(mu_);
    qmp = vm->qmp;
  }
  if (!qmp) return fail(internal_error("no QMP monitor after start").value());
  // dirty-bitmaps: the backups' persistent bitmaps (backup.md) travel with the VM, so
  // the next backup after a migration can still be incremental. postcopy-ram: both ends
  // must have it before the stream starts.
  std::vector<std::pair<std::string, bool>> caps = {{"events", true}, {"dirty-bitmaps", true}};
  if (source.postcopy) caps.emplace_back("postcopy-ram", true);
  if (auto s = qmp->migrate_set_capabilities(caps, kCmd); !s) return fail(s.error());
  IncomingInfo info;
  info.tls = source.tls;
  info.postcopy = source.postcopy;
  const std::string tls_creds = source.tls ? kTlsCreds : "";
  {
    // TLS (by default): the stream and the NBD exports accept only a peer with a
    // certificate of the manager's CA.
    if (source.tls)
      if (auto s = add_tls_creds(*qmp, opts_.migration_tls_dir, dir, opts_.run_as, "server",
                                 opts_.migration_dh_params_pem);
          !s)
        return fail(s.error());
    MigrationParameters params;
    params.tls_creds = tls_creds;
    if (auto s = qmp->migrate_set_parameters(params, kCmd); !s) return fail(s.error());
  }
  const std::vector<size_t> copied = copied_disks(spec);
  if (!copied.empty()) {
    Status started = internal_error("nbd-server-start not tried");
    for (int attempt = 0; attempt < 5 && !started; ++attempt) {
      auto port = free_port(listen_host);
      if (!port) return fail(port.error());
      started = qmp->nbd_server_start(listen_host, *port, tls_creds, kCmd);
      if (started) info.nbd_port = *port;
    }
    if (!started) return fail(started.error().wrap("nbd-server-start"));
    info.nbd_host = listen_host;
    for (size_t i : copied)
      if (auto s =
              qmp->block_export_add_nbd(mirror_node(i), node(spec, i), node(spec, i), true, kCmd);
          !s)
        return fail(s.error().wrap("exporting " + spec.disks[i].name));
  }
  if (auto s = qmp->migrate_incoming(tcp_uri(listen_host, "0"), kCmd); !s)
    return fail(s.error());
  auto mi = qmp->query_migrate(kCmd);
  if (!mi) return fail(mi.error());
  if (mi->socket_addresses.empty())
    return fail(internal_error("QEMU reports no address for the incoming migration").value());
  info.migration_uri = tcp_uri(listen_host, mi->socket_addresses[0].second);
  logger("agent.qemu")
      ->info("incoming migration ready vm={} uri={} tls={} nbd={}:{}", spec.name,
             info.migration_uri, info.tls, info.nbd_host, info.nbd_port);
  return info;
}

// An incoming VM an earlier agent prepared (it was killed meanwhile; QEMU outlived it):
// recover() re-attached it without its migrate_in job. Finishing or aborting it takes the
// job back, so the manager's retry of that step completes the migration either way.
void QemuHypervisor::adopt_incoming_locked(const std::string& name, Vm& vm) {
  if (!vm.adopted || vm.job != VmJob::none || !vm.qmp) return;
  if (vm.rec.state != VmState::paused && vm.rec.state != VmState::starting) return;
  logger("agent.qemu")->warn("taking over the incoming migration an earlier agent prepared vm={}",
                             name);
  vm.job = VmJob::migrate_in;
  vm.adopted = false;
}

Result<int64_t> QemuHypervisor::finish_incoming(const std::string& name,
                                                std::chrono::milliseconds timeout) {
  std::shared_ptr<QemuMonitor> qmp;
  bool disks = false;
  {
    std::lock_guard lk(mu_);
    auto v = find_locked(name);
    if (!v) return tl::unexpected(v.error());
    adopt_incoming_locked(name, **v);
    if ((*v)->job != VmJob::migrate_in || !(*v)->qmp)
      return make_error(ErrorCode::failed_precondition, "VM " + name + " is not migrating in");
    qmp = (*v)->qmp;
    disks = !copied_disks((*v)->spec).empty();
    (*v)->last_resume_us = 0;
  }
  // The source saw "completed"; the target finishes loading the last state just after.
  // After a post-copy switch-over the target is "postcopy-active" until its last page
  // arrives; `cont` then runs the guest as soon as its device state is loaded.
  auto deadline = std::chrono::steady_clock::now() + timeout;
  bool postcopy = false;
  for (;;) {
    auto mi = qmp->query_migrate(kCmd);
    if (!mi) return tl::unexpected(mi.error());
    postcopy = mi->status == "postcopy-active";
    if (mi->status == "completed" || postcopy) break;
    if (mi->status == "failed" || mi->status == "cancelled")
      return make_error(ErrorCode::unavailable, "incoming migration " + mi->status +
                                                (mi->error_desc.empty() ? "" : ": ") +
                                                mi->error_desc);
    if (std::chrono::steady_clock::now() > deadline)
      return make_error(ErrorCode::deadline_exceeded,
                        "incoming migration not completed (" + mi->status + ")");
    std::this_thread::sleep_for(20ms);
  }
  if (disks)
    if (auto s = qmp->nbd_server_stop(kCmd); !s)
      return tl::unexpected(s.error().wrap("nbd-server-stop"));
  if (auto s = qmp->cont(kCmd); !s) return tl::unexpected(s.error().wrap("cont"));
  int64_t resumed = 0;
  {
    std::unique_lock lk(mu_);
    state_cv_.wait_for(lk, 5s, [&] {
      auto it = vms_.find(name);
      return it == vms_.end() || it->second->last_resume_us != 0;
    });
    auto v = find_locked(name);
    if (!v) return tl::unexpected(v.error());
    resumed = (*v)->last_resume_us;
    (*v)->job = VmJob::none;
    // The stream may have completed since the query (its event came first).
    (*v)->postcopy_incoming =
        postcopy && (*v)->migration_status != "completed" && (*v)->migration_status != "failed";
    if ((*v)->rec.state == VmState::paused)
      set_state_locked(name, **v, VmState::running, "migrated in");
    state_cv_.notify_all();
  }
  flush_events();
  if (!resumed) return internal_error("no RESUME event after cont");
  return resumed;
}

Status QemuHypervisor::abort_incoming(const std::string& name) {
  bool active = false;
  {
    std::lock_guard lk(mu_);
    auto v = find_locked(name);
    if (!v) return tl::unexpected(v.error());
    adopt_incoming_locked(name, **v);
    if ((*v)->job != VmJob::migrate_in)
      return make_error(ErrorCode::failed_precondition, "VM " + name + " is not migrating in");
    active = is_active((*v)->rec.state);
  }
  if (active)
    if (auto s = force_off(name); !s) return s;
  end_job(name, VmJob::migrate_in);
  return undefine(name);
}

// ---------------------------------------------------------------------------------------
// Source

void QemuHypervisor::unwind_out(const std::string& name, QemuMonitor& qmp,
                                const std::vector<size_t>& disks, bool tls) {
  for (size_t i : disks) (void)qmp.block_job_cancel(mirror_node(i), true, kCmd);
  for (int k = 0; k < 100; ++k) {  // cancelled jobs go away (auto-dismiss)
    auto jobs = qmp.query_block_jobs(kCmd);
    bool ours = false;
    if (jobs)
      for (auto& j : *jobs)
        for (size_t i : disks) ours = ours || j.device == mirror_node(i);
    if (!jobs || !ours) break;
    std::this_thread::sleep_for(kPoll);
  }
  for (size_t i : disks) (void)qmp.blockdev_del(mirror_node(i), kCmd);
  if (tls) {
    MigrationParameters plain;  // the next migration decides again
    plain.tls_creds = "";
    (void)qmp.migrate_set_parameters(plain, kCmd);
    (void)qmp.object_del(kTlsCreds, kCmd);
  }
  // A migration that failed after the switchover leaves the source paused: run it again.
  if (auto st = qmp.query_status(kCmd);
      st && (st->status == "postmigrate" || st->status == "finish-migrate")) {
    if (auto s = qmp.cont(kCmd); !s)
      logger("agent.qemu")->error("resume after migration failed vm={} error={}", name,
                                  s.error().message);
  }
}

// QEMU's migration states in which a migration still runs (query-migrate "status").
bool migration_running(const std::string& status) {
  return status == "setup" || status == "active" || status == "pre-switchover" ||
         status == "device" || status == "wait-unplug" || status == "postcopy-active" ||
         status == "postcopy-paused" || status == "postcopy-recover" || status == "cancelling";
}

// An outgoing migration this agent no longer knows of: it was killed while that one
// copied, and QEMU outlived it with its migration still running and its NBD mirror nodes
// in place. A new migration would fail on them ("There's a migration process in
// progress", "Duplicate nodes with node-name='mig-disk0'"), for good. The old one cannot
// be adopted (its target's incoming side went with the manager's retry), so it is
// cancelled and its mirrors removed; a source it left paused runs again.
void QemuHypervisor::clear_stale_migration_out(const std::string& name, QemuMonitor& qmp,
                                               const std::vector<size_t>& disks) {
  auto log = logger("agent.qemu");
  if (auto mi = qmp.query_migrate(kCmd); mi && migration_running(mi->status)) {
    log->warn("a migration left by an earlier agent still runs in QEMU vm={} status={}: "
              "cancelling it",
              name, mi->status);
    (void)qmp.migrate_cancel(kCmd);
    for (int k = 0; k < 100; ++k) {
      auto m = qmp.query_migrate(kCmd);
      if (!m || !migration_running(m->status)) break;
      std::this_thread::sleep_for(kPoll);
    }
  }
  std::vector<size_t> stale;
  if (auto nodes = qmp.query_named_block_nodes(kCmd))
    for (const auto& n : *nodes)
      for (size_t i : disks)
        if (n.node_name == mirror_node(i) &&
            std::find(stale.begin(), stale.end(), i) == stale.end())
          stale.push_back(i);
  if (!stale.empty())
    log->warn("removing {} disk mirror(s) left by an earlier migration vm={}", stale.size(), name);
  unwind_out(name, qmp, stale, /*tls=*/true);  // TLS object and parameters too, if any
}

Result<MigrationOutcome> QemuHypervisor::migrate_out(const std::string& name,
                                                     const IncomingInfo& target,
                                                     const MigrationPolicy& policy,
                                                     const MigrationProgressCallback& progress) {
  // The mirror copies each disk's top overlay only (sync=top): the files of its snapshots
  // below it would be missing on the target.
  if (has_snapshots(vm_dir(name)))
    return make_error(ErrorCode::failed_precondition,
                      "VM " + name + " has snapshots; migrating a VM with snapshots is not "
                      "supported yet (delete them first)");
  std::shared_ptr<QemuMonitor> qmp;
  std::vector<size_t> disks;  // copied by the NBD mirror (copied_disks)
  model::VmSpec vm_spec;      // names the disks' nodes
  uint64_t memory = 0;
  std::string accelerator;
  bool adopted = false;
  {
    std::lock_guard lk(mu_);
    auto v = find_locked(name);
    if (!v) return tl::unexpected(v.error());
    Vm& vm = **v;
    accelerator = vm.rec.accelerator;
    adopted = vm.adopted;
    if (vm.rec.state != VmState::running && vm.rec.state != VmState::paused)
      return make_error(ErrorCode::failed_precondition,
                        std::string("VM is ") + model::to_string(vm.rec.state));
    if (!vm.qmp) return unavailable("VM " + name + " has no QMP connection yet; retry");
    if (auto s = begin_job_locked(name, vm, VmJob::migrate_out); !s)
      return tl::unexpected(s.error());
    vm.adopted = false;  // cleared once, below
    qmp = vm.qmp;
    disks = copied_disks(vm.spec);
    vm_spec = vm.spec;
    memory = uint64_t(vm.spec.memory_mib) << 20;
    vm.last_stop_us = 0;
    vm.job_errors.clear();
    vm.interrupt_job = false;
  }
  if (adopted) clear_stale_migration_out(name, *qmp, disks);
  // Someone asked to stop (interrupt_out): checked at every poll.
  auto interrupted = [&]() -> bool {
    std::lock_guard lk(mu_);
    auto v = find_locked(name);
    return v && (*v)->interrupt_job;
  };
  const Error interrupt_error{ErrorCode::unavailable, "interrupted on request", {}};
  const auto t0 = std::chrono::steady_clock::now();
  const auto budget = policy.deadline.count() > 0 ? policy.deadline : deadline_for(memory);
  const auto deadline = t0 + budget;
  const std::string budget_s = std::to_string(budget.count() / 1000.0).substr(0, 5) + " s";
  std::vector<size_t> mirrors;  // NBD nodes added so far (to undo)
  bool paused_for_ram = false;
  auto fail = [&](Error e) -> Result<MigrationOutcome> {
    logger("agent.qemu")->warn("migration failed vm={} error={}", name, e.message);
    unwind_out(name, *qmp, mirrors, target.tls);
    if (paused_for_ram)
      if (auto s = qmp->cont(kCmd); !s)
        logger("agent.qemu")->error("resume after migration failed vm={} error={}", name,
                                    s.error().message);
    end_job(name, VmJob::migrate_out);
    e.message += "; migration cancelled, the VM keeps running on this host";
    return tl::unexpected(std::move(e));
  };
  auto last_report = std::chrono::steady_clock::now() - kPoll;
  std::string last_report_phase;
  auto report = [&](MigrationProgress p) {
    const auto now = std::chrono::steady_clock::now();
    if (p.phase == last_report_phase && now - last_report < kPoll) return;
    last_report = now;
    last_report_phase = p.phase;
    if (progress) progress(p);
  };
  // dirty-bitmaps: the backups' persistent bitmaps (backup.md) travel with the VM, so
  // the next backup after a migration can still be incremental. auto-converge is set
  // either way: QEMU keeps capabilities from one migration to the next.
  if (auto s = qmp->migrate_set_capabilities({{"events", true},
                                              {"dirty-bitmaps", true},
                                              {"auto-converge", policy.auto_converge},
                                              {"postcopy-ram", policy.postcopy}},
                                             kCmd);
      !s)
    return fail(s.error());
  if (policy.postcopy && !target.postcopy)
    return fail(
        Error{ErrorCode::failed_precondition, "the target was not prepared for post-copy", {}});
  const std::string tls_creds = target.tls ? kTlsCreds : "";
  if (target.tls)
    if (auto s = add_tls_creds(*qmp, opts_.migration_tls_dir, vm_dir(name), opts_.run_as,
                               "client", "");
        !s)
      return fail(s.error());

  // 1. Disks: mirror each top overlay into the target's export (its base is there already).
  if (!disks.empty() && (target.nbd_host.empty() || target.nbd_port.empty()))
    return fail(invalid_argument("nbd", "the target exports no disks").value());
  for (size_t i : disks) {
    if (auto s = qmp->blockdev_add_nbd(mirror_node(i), target.nbd_host, target.nbd_port,
                                       node(vm_spec, i), tls_creds, kCmd);
        !s)
      return fail(s.error().wrap("connecting to the target's disk " + node(vm_spec, i)));
    mirrors.push_back(i);
    if (auto s =
            qmp->blockdev_mirror(mirror_node(i), node(vm_spec, i), mirror_node(i), "top", kCmd);
        !s)
      return fail(s.error().wrap("mirroring " + node(vm_spec, i)));
  }
  while (!disks.empty()) {
    auto jobs = qmp->query_block_jobs(kCmd);
    if (!jobs) return fail(jobs.error());
    MigrationProgress p;
    p.phase = "mirror";
    size_t ready = 0;
    for (size_t i : disks) {
      const BlockJobInfo* j = nullptr;
      for (auto& b : *jobs)
        if (b.device == mirror_node(i)) j = &b;
      if (!j) {
        std::string why;
        {
          std::lock_guard lk(mu_);
          if (auto v = find_locked(name))
            if (auto e = (*v)->job_errors.find(mirror_node(i)); e != (*v)->job_errors.end())
              why = ": " + e->second;
        }
        return fail(Error{
            ErrorCode::unavailable, "the mirror of " + node(vm_spec, i) + " failed" + why, {}});
      }
      if (!j->error.empty())
        return fail(Error{ErrorCode::unavailable,
                          "the mirror of " + node(vm_spec, i) + " failed: " + j->error,
                          {}});
      p.disk_total += j->len;
      p.disk_done += j->offset;
      ready += j->ready ? 1 : 0;
    }
    report(p);
    if (ready == disks.size()) break;
    if (interrupted()) return fail(interrupt_error);
    if (std::chrono::steady_clock::now() > deadline)
      return fail(Error{ErrorCode::deadline_exceeded,
                        "the disks were not copied within " + budget_s + " (" +
                            mib(p.disk_done) + " of " + mib(p.disk_total) + ")",
                        {}});
    std::this_thread::sleep_for(kCopyPoll);
  }

  // 2. RAM, only now that every mirror is READY (the mirror keeps the target in sync).
  // Under TCG, QEMU before 9.0 loses guest writes while RAM is copied live: its dirty
  // bitmap sync clears bits without flushing the TCG TLB, so later stores through a cached
  // TLB entry are never marked dirty (fixed upstream in QEMU 9.0, "physmem: Fix migration
  // dirty bitmap coherency with TCG memory access"). Reproduced here with QEMU 7.2: the
  // target's RAM differed from the source's in 25-30 pages and its kernel oopsed. So on
  // such hosts the guest is paused for the RAM copy (downtime = the copy; disks still
  // mirror live). KVM tracks dirty pages in the kernel and stays live.
  if (ram_copy_needs_pause(accelerator, qmp->greeting().major)) {
    if (auto s = qmp->stop(kCmd); !s) return fail(s.error().wrap("pausing for the RAM copy"));
    paused_for_ram = true;
    logger("agent.qemu")
        ->info("migration copies RAM paused vm={} (TCG on QEMU {}.{}: live dirty tracking is "
               "unreliable before 9.0)",
               name, qmp->greeting().major, qmp->greeting().minor);
  }
  MigrationParameters params;
  int64_t limit = policy.downtime_start_ms;
  params.downtime_limit_ms = limit;
  // Always set: QEMU keeps a parameter from one migration to the next, so an earlier
  // migration's cap (a slow copy asked for once) would throttle every later one.
  params.max_bandwidth = policy.max_bandwidth ? policy.max_bandwidth : kQemuDefaultMaxBandwidth;
  params.tls_creds = tls_creds;  // "" (plain) resets an earlier migration's
  // The target's certificate must name the address the source dials (an IP SAN).
  params.tls_hostname = target.tls ? uri_host(target.migration_uri) : "";
  if (auto s = qmp->migrate_set_parameters(params, kCmd); !s) return fail(s.error());
  if (auto s = qmp->migrate(target.migration_uri, kCmd); !s) return fail(s.error());
  const auto ram_t0 = std::chrono::steady_clock::now();
  MigrationInfo last;
  for (;;) {
    auto mi = qmp->query_migrate(kCmd);
    if (!mi) {
      // Our monitor is gone (QEMU died?): cancel what can be, report.
      (void)qmp->migrate_cancel(5s);
      return fail(mi.error().wrap("query-migrate"));
    }
    last = *mi;
    if (mi->status == "completed") break;
    if (mi->status == "failed" || mi->status == "cancelled")
      return fail(Error{ErrorCode::unavailable,
                        "migration " + mi->status +
                            (mi->error_desc.empty() ? "" : ": " + mi->error_desc),
                        {}});
    // Post-copy: ready to switch over at once when the guest is paused for the copy (what
    // is left of the copy is then the device state), else after the first full pass (as
    // libvirt's --postcopy-after-precopy). The switch itself waits for the manager's word
    // (switchover_out); QEMU goes on copying meanwhile and may even complete.
    if (policy.postcopy && mi->status == "active" &&
        (paused_for_ram || mi->dirty_sync_count >= 2)) {
      MigrationOutcome ready;
      ready.postcopy_ready = true;
      ready.ram_copied_paused = paused_for_ram;
      ready.downtime_limit_ms = limit;
      ready.ram_transferred = mi->ram_transferred;
      ready.total_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                           std::chrono::steady_clock::now() - t0)
                           .count();
      {
        std::lock_guard lk(mu_);
        auto v = find_locked(name);
        if (!v) return fail(v.error());
        Vm::Outgoing og;
        og.mirrors = mirrors;
        og.tls = target.tls;
        og.paused_for_ram = paused_for_ram;
        og.downtime_limit_ms = limit;
        og.memory = memory;
        og.t0 = t0;
        (*v)->outgoing = std::move(og);
      }
      auto p = ram_progress(*mi, limit);
      p.phase = "postcopy-ready";
      report(p);
      logger("agent.qemu")
          ->info("migration ready for post-copy vm={} passes={} transferred={}", name,
                 mi->dirty_sync_count, mib(mi->ram_transferred));
      return ready;
    }
    auto now = std::chrono::steady_clock::now();
    const bool stop_now = interrupted();
    if (now > deadline || stop_now) {
      (void)qmp->migrate_cancel(kCmd);
      // Wait for QEMU to settle: it may also have completed in the meantime.
      std::string end = mi->status;
      for (int k = 0; k < 300; ++k) {
        auto m2 = qmp->query_migrate(kCmd);
        if (!m2) break;
        end = m2->status;
        last = *m2;
        if (end == "completed" || end == "cancelled" || end == "failed") break;
        std::this_thread::sleep_for(kPoll);
      }
      if (end != "completed" && stop_now) return fail(interrupt_error);
      if (end != "completed")
        return fail(Error{ErrorCode::deadline_exceeded,
                          "RAM did not converge within " + budget_s + " (remaining " +
                              mib(mi->ram_remaining) + ", dirty rate " +
                              mib(mi->dirty_bytes_rate()) + "/s, " +
                              std::to_string(int64_t(mi->mbps)) + " Mbit/s, downtime limit " +
                              std::to_string(limit) + " ms)",
                          {}});
      break;
    }
    if (mi->status == "active") {
      int64_t next = downtime_limit_at(
          policy, std::chrono::duration_cast<std::chrono::milliseconds>(now - ram_t0));
      if (next != limit) {
        MigrationParameters step;
        step.downtime_limit_ms = next;
        if (qmp->migrate_set_parameters(step, kCmd)) {
          logger("agent.qemu")
              ->info("migration downtime limit raised vm={} limit_ms={} remaining={}", name, next,
                     mi->ram_remaining);
          limit = next;
        }
      }
    }
    report(ram_progress(*mi, limit));
    std::this_thread::sleep_for(kCopyPoll);
  }

  // 3. Completed: the source is paused (postmigrate).
  MigrationOutcome out;
  auto stop = end_mirrors_out(name, *qmp, disks);
  if (!stop) {
    // The RAM arrived but a disk's last writes may not have: the target must not run.
    (void)qmp->cont(kCmd);
    end_job(name, VmJob::migrate_out);
    return make_error(ErrorCode::unavailable,
                      stop.error().message + "; the VM keeps running on this host");
  }
  out.stop_at_us = *stop;
  out.qemu_downtime_ms = last.downtime_ms.value_or(0);
  out.total_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0)
          .count();
  out.ram_transferred = last.ram_transferred;
  out.downtime_limit_ms = limit;
  out.ram_copied_paused = paused_for_ram;
  auto done = ram_progress(last, limit);
  done.phase = "completed";
  report(done);
  logger("agent.qemu")
      ->info("migration completed vm={} total_ms={} qemu_downtime_ms={} ram={}", name, out.total_ms,
             out.qemu_downtime_ms, mib(out.ram_transferred));
  return out;
}

Result<int64_t> QemuHypervisor::end_mirrors_out(const std::string& name, QemuMonitor& qmp,
                                                const std::vector<size_t>& disks) {
  // A READY mirror's cancel (not forced) copies what is left, then ends.
  for (size_t i : disks)
    if (auto s = qmp.block_job_cancel(mirror_node(i), false, kCmd); !s)
      logger("agent.qemu")->warn("mirror end failed vm={} error={}", name, s.error().message);
  for (int k = 0; k < 300 && !disks.empty(); ++k) {
    auto jobs = qmp.query_block_jobs(kCmd);
    if (!jobs || jobs->empty()) break;
    std::this_thread::sleep_for(20ms);
  }
  std::string mirror_error;
  int64_t stop_at_us = 0;
  {
    std::unique_lock lk(mu_);
    state_cv_.wait_for(lk, 2s, [&] {
      auto it = vms_.find(name);
      return it == vms_.end() || it->second->last_stop_us != 0;
    });
    if (auto v = find_locked(name)) {
      stop_at_us = (*v)->last_stop_us;
      for (size_t i : disks)
        if (auto e = (*v)->job_errors.find(mirror_node(i)); e != (*v)->job_errors.end())
          mirror_error = e->second;
    }
  }
  for (size_t i : disks) (void)qmp.blockdev_del(mirror_node(i), kCmd);
  if (!mirror_error.empty())
    return make_error(ErrorCode::unavailable,
                      "the disk mirror failed at the end (" + mirror_error + ")");
  return stop_at_us;
}

Status QemuHypervisor::postcopy_possible() const {
  const bool root = opts_.run_as ? opts_.run_as->uid == 0 : ::geteuid() == 0;
  if (root) return {};
  auto v = read_small_file("/proc/sys/vm/unprivileged_userfaultfd");
  std::string value = v ? *v : "unreadable";
  while (!value.empty() && (value.back() == '\n' || value.back() == ' ')) value.pop_back();
  if (value == "1") return {};
  return make_error(ErrorCode::failed_precondition,
                    "this host cannot take a post-copy migration: QEMU runs as " +
                        (opts_.run_as ? opts_.run_as->name : std::string("the agent's user")) +
                        " and vm.unprivileged_userfaultfd is " + value +
                        " (post-copy needs userfaultfd for that user: sysctl "
                        "vm.unprivileged_userfaultfd=1)");
}

Result<MigrationOutcome> QemuHypervisor::switchover_out(const std::string& name) {
  std::shared_ptr<QemuMonitor> qmp;
  Vm::Outgoing og;
  {
    std::lock_guard lk(mu_);
    auto v = find_locked(name);
    if (!v) return tl::unexpected(v.error());
    if ((*v)->job != VmJob::migrate_out || !(*v)->outgoing)
      return make_error(ErrorCode::failed_precondition,
                        "VM " + name + " has no migration waiting for its switch-over");
    if ((*v)->outgoing->switched) return *(*v)->outgoing->switched;  // asked again
    if (!(*v)->qmp) return unavailable("VM " + name + " has no QMP connection yet; retry");
    qmp = (*v)->qmp;
    og = *(*v)->outgoing;
  }
  auto log = logger("agent.qemu");
  auto forget = [&] {
    std::lock_guard lk(mu_);
    if (auto v = find_locked(name)) (*v)->outgoing.reset();
  };
  bool started = false;  // migrate-start-postcopy went out (this call or an earlier one)
  // Before migrate-start-postcopy nothing is final: undo as migrate_out's failures do.
  // After it, the same when QEMU ended the migration "failed" or "cancelled" (the target
  // never ran: FinishMigration comes only after this call answered).
  auto give_back = [&](Error e) -> Result<MigrationOutcome> {
    log->warn("post-copy switch-over failed vm={} error={}", name, e.message);
    (void)qmp->migrate_cancel(kCmd);
    for (int k = 0; k < 100; ++k) {
      auto m = qmp->query_migrate(kCmd);
      if (!m || !migration_running(m->status)) break;
      std::this_thread::sleep_for(kPoll);
    }
    unwind_out(name, *qmp, og.mirrors, og.tls);
    if (og.paused_for_ram) (void)qmp->cont(kCmd);
    // After migrate-start-postcopy only QEMU knows whether the guest can still run here (a
    // post-copy that failed before the target got the device state ends "failed" and QEMU
    // resumes it; one stuck in postcopy-paused refuses `cont`): ask it.
    if (started) {
      auto st = qmp->query_status(kCmd);
      if (!st || st->status == "finish-migrate" || st->status == "postmigrate") {
        log->error("post-copy switch-over of vm={} failed and QEMU does not resume it: {}", name,
                   e.message);
        return make_error(ErrorCode::failed_precondition,
                          "post-copy switch-over failed after it started (" + e.message +
                              "): the guest can no longer resume on this host; its QEMU is kept");
      }
    }
    forget();
    end_job(name, VmJob::migrate_out);
    e.message += "; migration cancelled, the VM keeps running on this host";
    return tl::unexpected(std::move(e));
  };
  // After it the source cannot take the guest back (QEMU refuses `cont` until the
  // migration is finalized): say so, keep QEMU as it is for whoever recovers it.
  // failed_precondition, not a code the manager retries: asking again changes nothing.
  auto lost = [&](const Error& e) -> Result<MigrationOutcome> {
    log->error("post-copy switch-over of vm={} failed after it started: {}", name, e.message);
    return make_error(ErrorCode::failed_precondition,
                      "post-copy switch-over failed after it started (" + e.message +
                          "): the guest can no longer resume on this host; its QEMU is kept");
  };
  auto mark_started = [&] {
    std::lock_guard lk(mu_);
    if (auto v = find_locked(name); v && (*v)->outgoing) (*v)->outgoing->postcopy_started = true;
  };
  auto first = qmp->query_migrate(kCmd);
  if (!first) return tl::unexpected(first.error().wrap("query-migrate"));
  // Asked again after an earlier attempt got past migrate-start-postcopy (its answer lost,
  // or QEMU slow to switch): go on waiting, never undo.
  started = og.postcopy_started || first->status.rfind("postcopy", 0) == 0;
  if (started) {
    mark_started();
  } else if (first->status == "active") {
    if (auto s = qmp->migrate_start_postcopy(kCmd); !s) {
      // Refused (or no answer): undone only if QEMU certainly did not start it.
      auto now = qmp->query_migrate(kCmd);
      if (!now || now->status.rfind("postcopy", 0) == 0) {
        mark_started();
        return lost(s.error().wrap("migrate-start-postcopy"));
      }
      return give_back(s.error().wrap("migrate-start-postcopy"));
    }
    started = true;
    mark_started();
  } else if (first->status != "completed") {
    return give_back(Error{
        ErrorCode::unavailable,
        "migration " + first->status + (first->error_desc.empty() ? "" : ": " + first->error_desc),
        {}});
  }
  // QEMU switches at its next step: postcopy-active (the device state is on its way, the
  // target can run), or completed when the precopy finished first.
  MigrationInfo at;
  const auto switch_t0 = std::chrono::steady_clock::now();
  const auto deadline = switch_t0 + 30s;
  for (;;) {
    auto mi = qmp->query_migrate(kCmd);
    if (!mi) {
      if (started) return lost(mi.error());
      return tl::unexpected(mi.error());
    }
    at = *mi;
    if (at.status == "postcopy-active" || at.status == "completed") break;
    if (at.status != "active" && at.status != "device" && at.status != "pre-switchover") {
      const Error broke{
          ErrorCode::unavailable,
          "migration " + at.status + (at.error_desc.empty() ? "" : ": " + at.error_desc),
          {}};
      // Ended (failed, cancelled): the guest may still resume here, give_back asks QEMU.
      // Stuck (postcopy-paused, cancelling, ...): it cannot.
      if (!started || at.status == "failed" || at.status == "cancelled") return give_back(broke);
      return lost(broke);
    }
    if (std::chrono::steady_clock::now() > deadline)
      return lost(Error{ErrorCode::deadline_exceeded,
                        "QEMU did not switch over within 30 s (" + at.status + ")",
                        {}});
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  const bool post = at.status == "postcopy-active";
  const auto switched_at = std::chrono::steady_clock::now();
  auto stop = end_mirrors_out(name, *qmp, og.mirrors);
  if (!stop) {
    if (post) return lost(stop.error());
    (void)qmp->cont(kCmd);
    forget();
    end_job(name, VmJob::migrate_out);
    return make_error(ErrorCode::unavailable,
                      stop.error().message + "; the VM keeps running on this host");
  }
  MigrationOutcome out;
  out.stop_at_us = *stop;
  out.postcopy = post;
  out.ram_copied_paused = og.paused_for_ram;
  out.downtime_limit_ms = og.downtime_limit_ms;
  out.ram_transferred = at.ram_transferred;
  out.qemu_downtime_ms = at.downtime_ms.value_or(0);
  out.total_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                     std::chrono::steady_clock::now() - og.t0)
                     .count();
  {
    std::lock_guard lk(mu_);
    if (auto v = find_locked(name); v && (*v)->outgoing) {
      (*v)->outgoing->switched = out;
      (*v)->outgoing->mirrors.clear();
    }
  }
  auto ms_between = [](auto a, auto b) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(b - a).count();
  };
  log->info(
      "migration switched over vm={} postcopy={} ram_sent={} total_ms={} switch_ms={} "
      "mirrors_end_ms={}",
      name, post, mib(at.ram_transferred), out.total_ms, ms_between(switch_t0, switched_at),
      ms_between(switched_at, std::chrono::steady_clock::now()));
  return out;
}

Status QemuHypervisor::confirm_out(const std::string& name) {
  std::shared_ptr<QemuMonitor> qmp;
  std::optional<Vm::Outgoing> og;
  {
    std::lock_guard lk(mu_);
    auto v = find_locked(name);
    if (!v) return tl::unexpected(v.error());
    if ((*v)->job != VmJob::migrate_out)
      return make_error(ErrorCode::failed_precondition, "VM " + name + " is not migrating out");
    if ((*v)->outgoing && !(*v)->outgoing->switched)
      return make_error(ErrorCode::failed_precondition,
                        "VM " + name + " has not switched over yet (switchover first)");
    og = (*v)->outgoing;
    qmp = (*v)->qmp;
  }
  if (og && og->switched->postcopy && qmp) {
    // The guest runs on the target and still fetches pages from this QEMU: quit it only
    // once the last page has gone.
    const auto deadline = std::chrono::steady_clock::now() + deadline_for(og->memory);
    for (;;) {
      auto mi = qmp->query_migrate(kCmd);
      if (!mi) return tl::unexpected(mi.error().wrap("query-migrate"));
      if (mi->status == "completed") break;
      // postcopy-recover: a resume_out's reconnection in progress; it ends active or paused.
      if (mi->status != "postcopy-active" && mi->status != "postcopy-recover")
        return make_error(ErrorCode::unavailable,
                          "the post-copy stream of " + name + " is " + mi->status +
                              ": the guest on the target still needs pages only this host "
                              "holds, so its QEMU is kept");
      if (std::chrono::steady_clock::now() > deadline)
        return make_error(ErrorCode::deadline_exceeded,
                          "the post-copy stream of " + name + " still runs (" +
                              mib(mi->ram_remaining) + " left); its QEMU is kept");
      std::this_thread::sleep_for(kCopyPoll);
    }
  }
  if (auto s = force_off(name); !s) return s;
  end_job(name, VmJob::migrate_out);
  return undefine(name);
}

// ---------------------------------------------------------------------------------------
// Post-copy recovery (as libvirt's --postcopy-resume): after the switch-over the guest runs
// on the target while its memory is split between the two QEMUs, so a broken stream leaves
// both in postcopy-paused and only a new stream can bring the rest. The target listens
// again (migrate-recover), the source reconnects (migrate with resume); confirm_out then
// waits for the last page as before. Each step is one QMP command and a short poll, without
// mu_; the target keeps no job for it (its migrate_in job ended at finish_incoming).
//
// The target sends no in-band command on this path. Its guest runs and, with the stream
// broken, a vCPU that touches a missing page waits for it; when it does so under QEMU's
// main lock (TCG delivers interrupts under it; devices read guest memory under it) the
// main loop stops, and every in-band command with it, until the page comes, which needs
// the very migrate-recover we would queue behind it. So the target's state comes from
// QEMU's MIGRATION events (Vm::migration_status) and from QEMU's own check in
// migrate-recover, which goes out-of-band (qemu_monitor.h) with a short timeout. The
// source has all its memory, so its monitor answers in-band; its commands get short
// timeouts all the same.

namespace {

bool recover_in_progress(const std::string& status) {
  return status == "postcopy-recover" || status == "postcopy-active";
}

// The recovery's QMP timeouts. An out-of-band command runs on QEMU's monitor thread and
// answers in milliseconds; the source's in-band ones wait for nothing slow either. A
// timeout here means QEMU is wedged: the manager's retry asks again.
constexpr auto kRecoverCmd = 5s;

}  // namespace

Result<std::string> QemuHypervisor::prepare_recover_incoming(const std::string& name,
                                                             const std::string& listen_host) {
  std::shared_ptr<QemuMonitor> qmp;
  std::string known, status;
  {
    std::lock_guard lk(mu_);
    auto v = find_locked(name);
    if (!v) return tl::unexpected(v.error());
    if (!(*v)->qmp) return unavailable("VM " + name + " has no QMP connection yet; retry");
    qmp = (*v)->qmp;
    known = (*v)->recover_uri;
    status = (*v)->migration_status;
  }
  auto log = logger("agent.qemu");
  // Asked again: the listener opened earlier waits, or the source already reconnected.
  if (!known.empty() && recover_in_progress(status)) return known;
  if (!qmp->oob())
    log->warn(
        "post-copy recovery without QMP out-of-band vm={}: migrate-recover goes in-band "
        "and waits behind anything QEMU's main loop is stuck on",
        name);
  // A new port each time: QEMU opens a new listener (the old stream's socket is dead). TLS:
  // QEMU keeps the migration's tls-creds parameter and its mig-tls object, so the new
  // listener requires the same certificates. QEMU refuses unless the incoming migration is
  // postcopy-paused: that answer is the state check (no query-migrate, see above).
  Status listening = internal_error("migrate-recover not tried");
  std::string uri;
  for (int attempt = 0; attempt < 5 && !listening; ++attempt) {
    auto port = free_port(listen_host);
    if (!port) return tl::unexpected(port.error());
    uri = tcp_uri(listen_host, *port);
    listening = qmp->migrate_recover(uri, kRecoverCmd);
    if (listening) break;
    const std::string& why = listening.error().message;
    // QEMU listens already (an earlier call's answer was lost): that listener serves.
    if (!known.empty() && why.find("already") != std::string::npos) return known;
    if (why.find("postcopy is paused") != std::string::npos)
      return make_error(ErrorCode::failed_precondition,
                        "the incoming migration of " + name + " is " +
                            (status.empty() ? std::string("not") : status + ", not") +
                            " postcopy-paused: there is no broken post-copy stream to recover (" +
                            why + ")");
    // Anything but a port taken under us is not worth another port.
    if (listening.error().code != ErrorCode::failed_precondition) break;
  }
  if (!listening) return tl::unexpected(listening.error().wrap("migrate-recover"));
  {
    std::lock_guard lk(mu_);
    if (auto v = find_locked(name); v && (*v)->qmp == qmp) (*v)->recover_uri = uri;
  }
  log->info("post-copy recovery listening vm={} uri={} oob={}", name, uri, qmp->oob());
  return uri;
}

Result<std::shared_ptr<QemuMonitor>> QemuHypervisor::outgoing_monitor(const std::string& name) {
  std::lock_guard lk(mu_);
  auto v = find_locked(name);
  if (!v) return tl::unexpected(v.error());
  if ((*v)->job != VmJob::migrate_out)
    return make_error(ErrorCode::failed_precondition, "VM " + name + " is not migrating out");
  if (!(*v)->qmp) return unavailable("VM " + name + " has no QMP connection yet; retry");
  return (*v)->qmp;
}

Status QemuHypervisor::resume_out(const std::string& name, const std::string& recover_uri) {
  auto qmp = outgoing_monitor(name);
  if (!qmp) return tl::unexpected(qmp.error());
  auto log = logger("agent.qemu");
  auto mi = (*qmp)->query_migrate(kRecoverCmd);
  if (!mi) return tl::unexpected(mi.error().wrap("query-migrate"));
  if (recover_in_progress(mi->status) || mi->status == "completed") return {};  // asked again
  if (mi->status != "postcopy-paused")
    return make_error(ErrorCode::failed_precondition,
                      "the outgoing migration of " + name + " is " + mi->status +
                          ", not postcopy-paused: there is no broken post-copy stream to resume");
  if (auto s = (*qmp)->migrate_resume(recover_uri, kRecoverCmd); !s)
    return tl::unexpected(s.error().wrap("migrate (resume)"));
  // QEMU connects in the background: postcopy-paused until the connection (and the TLS
  // handshake) is made, then postcopy-recover, then postcopy-active. A connection that
  // fails leaves it postcopy-paused.
  const auto deadline = std::chrono::steady_clock::now() + 15s;
  for (;;) {
    auto now = (*qmp)->query_migrate(kRecoverCmd);
    if (!now) return tl::unexpected(now.error().wrap("query-migrate"));
    if (now->status == "postcopy-active" || now->status == "completed") break;
    if (now->status != "postcopy-paused" && now->status != "postcopy-recover")
      return make_error(ErrorCode::unavailable,
                        "the resumed post-copy stream of " + name + " is " + now->status +
                            (now->error_desc.empty() ? "" : ": ") + now->error_desc);
    if (std::chrono::steady_clock::now() > deadline)
      return make_error(ErrorCode::unavailable,
                        "the post-copy stream of " + name + " did not reconnect to " + recover_uri +
                            " within 15 s (" + now->status + "); ask again");
    std::this_thread::sleep_for(kCopyPoll);
  }
  log->info("post-copy stream resumed vm={} uri={}", name, recover_uri);
  return {};
}

Status QemuHypervisor::pause_out(const std::string& name) {
  auto qmp = outgoing_monitor(name);
  if (!qmp) return tl::unexpected(qmp.error());
  if (auto s = (*qmp)->migrate_pause(kRecoverCmd); !s)
    return tl::unexpected(s.error().wrap("migrate-pause"));
  logger("agent.qemu")->warn("post-copy stream paused on request vm={}", name);
  return {};
}

Status QemuHypervisor::interrupt_out(const std::string& name) {
  std::lock_guard lk(mu_);
  auto v = find_locked(name);
  if (!v) return tl::unexpected(v.error());
  if ((*v)->job != VmJob::migrate_out)
    return make_error(ErrorCode::failed_precondition, "VM " + name + " is not migrating out");
  (*v)->interrupt_job = true;
  logger("agent.qemu")->info("migration interrupt requested vm={}", name);
  return {};
}

Status QemuHypervisor::cancel_out(const std::string& name) {
  std::shared_ptr<QemuMonitor> qmp;
  std::optional<Vm::Outgoing> og;
  {
    std::lock_guard lk(mu_);
    auto v = find_locked(name);
    if (!v) return tl::unexpected(v.error());
    if ((*v)->job != VmJob::migrate_out)
      return make_error(ErrorCode::failed_precondition, "VM " + name + " is not migrating out");
    og = (*v)->outgoing;
    qmp = (*v)->qmp;
  }
  // conflict, not failed_precondition: the service reads that as "not migrating out, it
  // runs here", which is exactly what is not true. QEMU is asked too: its word decides when
  // an earlier switch-over's answer was lost.
  bool postcopy = og && (og->postcopy_started || (og->switched && og->switched->postcopy));
  if (og && !postcopy && !og->switched && qmp)
    if (auto mi = qmp->query_migrate(kCmd); mi && mi->status.rfind("postcopy", 0) == 0)
      postcopy = true;
  if (postcopy)
    return make_error(ErrorCode::conflict,
                      "VM " + name +
                          " switched over in post-copy: its CPU state is on the "
                          "target now and it cannot resume here");
  if (og && !og->switched && qmp) {
    // Ready for post-copy, not switched: the copy still runs. Stop it and undo.
    (void)qmp->migrate_cancel(kCmd);
    for (int k = 0; k < 100; ++k) {
      auto m = qmp->query_migrate(kCmd);
      if (!m || !migration_running(m->status)) break;
      std::this_thread::sleep_for(kPoll);
    }
    unwind_out(name, *qmp, og->mirrors, og->tls);
  }
  {
    std::lock_guard lk(mu_);
    if (auto v = find_locked(name)) (*v)->outgoing.reset();
  }
  if (qmp) {
    auto st = qmp->query_status(kCmd);
    if (!st) return tl::unexpected(st.error());
    if (!st->running)
      if (auto s = qmp->cont(kCmd); !s) return tl::unexpected(s.error().wrap("cont"));
  }
  end_job(name, VmJob::migrate_out);
  return {};
}

}  // namespace strata::agent::qemu
