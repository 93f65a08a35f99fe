// QemuHypervisor lifecycle: start (shim + QEMU + QMP), shutdown/force_off/reboot/pause/
// resume, QMP event handling, and the supervision loop that reaps exited QEMUs and keeps
// console logs bounded.
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "cloud_init_drive.h"
#include "qemu_access.h"
#include "qemu_hypervisor.h"
#include "recover_decision.h"
#include "ha_lease.h"
#include "shim.h"
#include "strata/common/log.h"

namespace strata::agent::qemu {

namespace fs = std::filesystem;
using model::VmState;
using namespace std::chrono_literals;

namespace {

constexpr auto kQmpConnectTimeout = 60s;  // TCG on a loaded 2-core host can be slow
constexpr auto kQmpCommandTimeout = 30s;
constexpr auto kQmpReattachTimeout = 2s;  // per background attempt (reattach_qmp)

// 0.5 s, 1 s, 2 s, ... capped at 15 s between background QMP attempts.
std::chrono::milliseconds retry_backoff(int attempts) {
  return std::min<std::chrono::milliseconds>(500ms * (1 << std::min(attempts, 5)), 15s);
}

int read_pid_file(const std::string& path) {
  std::ifstream in(path);
  int pid = 0;
  in >> pid;
  return pid;
}

std::string log_tail(const std::string& path) {
  auto t = read_console_tail(path, 2000);
  return t ? *t : "";
}

}  // namespace

Result<ResolvedDisk> QemuHypervisor::resolve_disk(const std::string& name,
                                                  const model::VmSpec& spec,
                                                  const model::DiskSpec& d,
                                                  const SnapshotTree* tree) {
  if (tree) {
    auto a = tree->active.find(d.name);
    if (a == tree->active.end())
      return internal_error("snapshot record has no active file for disk " + d.name);
    return ResolvedDisk{a->second, "qcow2"};
  }
  auto info = !d.datastore.empty()
                  ? (opts_.datastores ? opts_.datastores->disk_info(d.datastore, d.datastore_id,
                                                                    spec.uuid, d.name)
                                      : make_error(ErrorCode::failed_precondition,
                                                   "this host mounts no datastore"))
                  : opts_.images->disk_info(name, d.name);
  if (!info) return tl::unexpected(info.error().wrap("disk " + d.name));
  return ResolvedDisk{info->path, info->format};
}

Result<ResolvedVm> QemuHypervisor::resolve(const std::string& name, const model::VmSpec& spec) {
  ResolvedVm r;
  r.vm_dir = vm_dir(name);
  // With snapshots, each disk's active file is an overlay named in the snapshot tree.
  auto tree = read_snapshot_tree(r.vm_dir);
  if (!tree && tree.error().code != ErrorCode::not_found) return tl::unexpected(tree.error());
  for (auto& d : spec.disks) {
    auto disk = resolve_disk(name, spec, d, tree ? &*tree : nullptr);
    if (!disk) return tl::unexpected(disk.error());
    r.disks.push_back(std::move(*disk));
  }
  if (spec.kernel_boot) {
    auto k = opts_.images->image(spec.kernel_boot->kernel);
    if (!k) return tl::unexpected(k.error().wrap("kernel"));
    r.kernel_path = k->path;
    if (!spec.kernel_boot->initrd.empty()) {
      auto i = opts_.images->image(spec.kernel_boot->initrd);
      if (!i) return tl::unexpected(i.error().wrap("initrd"));
      r.initrd_path = i->path;
    }
  }
  r.taps = taps_of(spec);
  for (size_t i = 0; i < spec.nics.size(); ++i) {
    if (spec.nics[i].mode != model::NicMode::bridge) continue;
    if (!opts_.network)
      return make_error(ErrorCode::failed_precondition, "bridge NICs need host networking");
    if (auto s = opts_.network->create_tap(r.taps[i], spec.nics[i].bridge, spec.nics[i].vlan); !s)
      return tl::unexpected(s.error().wrap("tap " + r.taps[i]));
  }
  if (!spec.cdrom.empty()) {
    auto p = iso_path(spec.cdrom, "cdrom");
    if (!p) return tl::unexpected(p.error());
    r.cdrom_path = std::move(*p);
  }
  if (spec.firmware == model::Firmware::uefi) {
    if (auto s = check_uefi_firmware(); !s) return tl::unexpected(s.error());
    r.uefi_code = opts_.uefi_code;
    r.uefi_vars = uefi_vars_path(r.vm_dir);
    std::error_code ec;
    if (!fs::is_regular_file(r.uefi_vars, ec))
      return make_error(ErrorCode::failed_precondition,
                        "the VM's UEFI variables file " + r.uefi_vars + " is missing");
  }
  if (spec.cloud_init) {
    auto seed = build_cloud_init_seed(r.vm_dir, spec);
    if (!seed) return tl::unexpected(seed.error().wrap("cloud-init seed"));
    r.cloud_init_seed = std::move(*seed);
  }
  return r;
}

Result<std::shared_ptr<QemuMonitor>> QemuHypervisor::connect_qmp(
    const std::string& name, const std::string& dir, std::chrono::milliseconds timeout,
    std::function<bool()> keep_trying) {
  auto c = QemuMonitor::connect(
      vm_files(dir).qmp_socket, timeout,
      [this, name](const MonitorEvent& e) { on_qmp_event(name, e); },
      [this] {
        {
          std::lock_guard lk(sup_mu_);
          sup_kick_ = true;
        }
        sup_cv_.notify_all();
      },
      std::move(keep_trying));
  if (!c) return tl::unexpected(c.error());
  return std::shared_ptr<QemuMonitor>(std::move(*c));
}

Status QemuHypervisor::start(const std::string& name) {
  std::shared_ptr<Vm> vm;
  model::VmSpec spec;
  HardwareProfile profile;
  {
    std::lock_guard lk(mu_);
    auto v = find_locked(name);
    if (!v) return tl::unexpected(v.error());
    vm = *v;
    if (vm->job == VmJob::none && is_active(vm->rec.state))
      return make_error(ErrorCode::failed_precondition,
                        std::string("VM is ") + model::to_string(vm->rec.state));
    if (auto s = begin_job_locked(name, *vm, VmJob::start); !s) return s;
    spec = vm->spec;
    profile = vm->rec.profile;
  }
  return start_qemu(name, vm, spec, profile, false);
}

// The start job's work (the job is already begun: start, or migrate_in for an incoming
// QEMU, which keeps its job when QEMU is up).
Status QemuHypervisor::start_qemu(const std::string& name, const std::shared_ptr<Vm>& vm,
                                  const model::VmSpec& spec, const HardwareProfile& profile,
                                  bool incoming) {
  const VmJob after = incoming ? VmJob::migrate_in : VmJob::none;
  auto fail = [&](Error e, std::optional<ExitRecord> exit) -> Status {
    // A QEMU that did start but that we cannot drive must not be left running.
    if (int pid = read_pid_file(vm_files(vm->dir).pid_file); process_matches(pid, spec.uuid)) {
      ::kill(pid, SIGKILL);
      for (int i = 0; i < 50; ++i) {
        if (auto x = read_exit_record(vm->dir); x && x->qemu_pid == pid) {
          exit = *x;
          break;
        }
        std::this_thread::sleep_for(100ms);
      }
    }
    std::pair<std::shared_ptr<QemuMonitor>, std::shared_ptr<ConsoleHub>> drop;
    {
      std::lock_guard lk(mu_);
      vm->job = after;
      if (vm->rec.state == VmState::starting) {
        drop = finalize_locked(name, *vm, exit);
        if (vm->rec.last_exit) vm->rec.last_exit->reason = "start-failed";
        set_state_locked(name, *vm, VmState::crashed, "start-failed: " + e.message);
      }
    }
    flush_events();
    return tl::unexpected(std::move(e));
  };
  auto resolved = resolve(name, spec);
  if (!resolved) {
    std::lock_guard lk(mu_);
    vm->job = after;
    return tl::unexpected(resolved.error());
  }
  ArgvOptions argv_options{opts_.qemu_binary, opts_.accelerator, opts_.sandbox, profile};
  argv_options.incoming = incoming;
  auto argv = build_qemu_argv(spec, *resolved, argv_options);
  if (!argv) {
    std::lock_guard lk(mu_);
    vm->job = after;
    return tl::unexpected(argv.error());
  }
  // A VM whose HA lease has run out starts only once the manager renews it: this host had
  // no heartbeat from the manager within the lease, and the manager may already be
  // restarting the VM elsewhere (its shim would kill this QEMU at once anyway).
  if (read_lease_verdict(vm->dir) == LeaseVerdict::expired) {
    std::lock_guard lk(mu_);
    vm->job = after;
    return make_error(ErrorCode::failed_precondition,
                      "the VM's HA lease has run out (this host missed the manager's heartbeats "
                      "for the whole lease); it starts once the manager renews the lease");
  }
  VmFiles f = vm_files(vm->dir);
  for (auto p : {vm->dir + "/" + kExitFile, vm->dir + "/" + kLeaseExpiredFile, f.pid_file, f.qmp_socket, f.serial_socket, f.qga_socket,
                 f.vnc_socket}) {
    std::error_code ec;
    fs::remove(p, ec);
  }
  std::vector<std::string> disk_paths;
  for (const auto& d : resolved->disks) disk_paths.push_back(d.path);
  if (!resolved->cloud_init_seed.empty()) disk_paths.push_back(resolved->cloud_init_seed);
  // The VM's own UEFI variables are written by its firmware: QEMU's, like its disks.
  if (!resolved->uefi_vars.empty()) disk_paths.push_back(resolved->uefi_vars);
  // The snapshots' files are the active files' backing chains: QEMU opens them too.
  if (auto tree = read_snapshot_tree(vm->dir))
    for (auto& p : tree->all_files())
      if (std::find(disk_paths.begin(), disk_paths.end(), p) == disk_paths.end())
        disk_paths.push_back(p);
  if (auto s = prepare_qemu_access(vm->dir, f, disk_paths, opts_.run_as); !s) {
    std::lock_guard lk(mu_);
    vm->job = after;
    return tl::unexpected(s.error().wrap("preparing files for QEMU"));
  }
  ShimOptions shim;
  shim.run_as = opts_.run_as;
  shim.lease = true;
  for (const auto& t : resolved->taps)
    if (!t.empty()) shim.taps.push_back(t);
  {
    std::lock_guard lk(mu_);
    vm->shutdown_reason.clear();
    vm->kill_requested = vm->panicked = vm->watchdog_fired = false;
    vm->rec.pid = 0;
    vm->rec.accelerator = opts_.accelerator;
    set_state_locked(name, *vm, VmState::starting, "start");
  }
  flush_events();
  if (auto s = spawn_shim(opts_.shim_exe, vm->dir, *argv, shim); !s) return fail(s.error(), {});
  std::string exit_path = vm->dir + "/" + kExitFile;
  auto qmp = connect_qmp(name, vm->dir, kQmpConnectTimeout, [&] { return !fs::exists(exit_path); });
  if (!qmp) {
    for (int i = 0; i < 50 && !fs::exists(exit_path); ++i) std::this_thread::sleep_for(100ms);
    auto exit = read_exit_record(vm->dir);
    return fail(Error{ErrorCode::unavailable,
                      "QEMU did not start: " + qmp.error().message +
                          "; qemu.log: " + log_tail(vm->dir + "/" + kQemuLog),
                      {}},
                exit ? std::optional<ExitRecord>(*exit) : std::nullopt);
  }
  int pid = 0;
  for (int i = 0; i < 50 && !process_matches(pid, spec.uuid); ++i) {
    if (i) std::this_thread::sleep_for(100ms);
    pid = read_pid_file(f.pid_file);
  }
  if (!process_matches(pid, spec.uuid))
    return fail(Error{ErrorCode::internal, "QEMU pid file does not name our QEMU", {}}, {});
  auto status = (*qmp)->query_status(kQmpCommandTimeout);
  auto hub = ConsoleHub::connect(f.serial_socket, 10s);
  if (!hub)
    logger("agent.qemu")->warn("console connect failed vm={} error={}", name, hub.error().message);
  {
    std::lock_guard lk(mu_);
    vm->job = after;
    vm->qmp = *qmp;
    if (hub) vm->console = std::move(*hub);
    vm->rec.pid = pid;
    if (vm->rec.state == VmState::starting) {
      bool paused = status && (status->status == "paused" || incoming);
      set_state_locked(name, *vm, paused ? VmState::paused : VmState::running,
                       incoming ? "incoming migration" : "started");
    }
  }
  flush_events();
  {
    std::lock_guard lk(sup_mu_);
    sup_kick_ = true;  // QEMU may already have exited while we were connecting
  }
  sup_cv_.notify_all();
  return {};
}

void QemuHypervisor::on_qmp_event(const std::string& name, const MonitorEvent& e) {
  using K = MonitorEventKind;
  {
    std::lock_guard lk(mu_);
    auto it = vms_.find(name);
    if (it == vms_.end()) return;
    Vm& vm = *it->second;
    VmState s = vm.rec.state;
    if (!is_active(s)) return;
    if (e.kind == K::stop && s == VmState::running) {
      set_state_locked(name, vm, VmState::paused, "STOP");
    } else if (e.kind == K::resume && (s == VmState::paused || s == VmState::starting)) {
      set_state_locked(name, vm, VmState::running, "RESUME");
    } else if (e.kind == K::powerdown) {
      set_state_locked(name, vm, VmState::shutting_down, "POWERDOWN");
    } else if (e.kind == K::shutdown) {
      vm.shutdown_reason = e.reason;
      set_state_locked(name, vm, VmState::shutting_down, "SHUTDOWN " + vm.shutdown_reason);
    } else if (e.kind == K::guest_panicked) {
      vm.panicked = true;
      set_state_locked(name, vm, VmState::crashed, "GUEST_PANICKED");
    }
    if (e.kind == K::stop) vm.last_stop_us = e.timestamp_us;
    if (e.kind == K::resume) vm.last_resume_us = e.timestamp_us;
    if (e.kind == K::migration) vm.migration_status = e.status;
    if (e.kind == K::migration && (e.status == "completed" || e.status == "failed")) {
      vm.postcopy_incoming = false;
      vm.recover_uri.clear();
    }
    if (e.kind == K::block_job_completed && !e.error.empty())
      vm.job_errors[e.job] = e.error;
    if (e.kind == K::reset) {
      pending_events_.push_back(VmEvent{name, s, "RESET", wall_ms()});
    }
    if (e.kind == K::watchdog) {
      // The guest stopped feeding its watchdog (it hung); QEMU took the action already.
      // After "poweroff" QEMU exits next: that exit is the watchdog's, not the guest's.
      if (e.action == "poweroff") vm.watchdog_fired = true;
      pending_events_.push_back(VmEvent{name, vm.rec.state, "WATCHDOG " + e.action, wall_ms()});
    }
  }
  flush_events();
}

std::pair<std::shared_ptr<QemuMonitor>, std::shared_ptr<ConsoleHub>>
QemuHypervisor::finalize_locked(
    const std::string& name, Vm& vm, const std::optional<ExitRecord>& exit) {
  VmExit e;
  bool clean = exit && !exit->signaled && exit->code == 0;
  if (exit) {
    e.signaled = exit->signaled;
    e.code = exit->code;
    e.at_unix_ms = exit->at_unix_ms;
  } else {
    e.at_unix_ms = wall_ms();
  }
  VmState next = clean ? VmState::stopped : VmState::crashed;
  if (vm.kill_requested) {
    next = VmState::stopped;
    e.reason =
        e.signaled ? "killed" : (vm.shutdown_reason.empty() ? "host-qmp-quit" : vm.shutdown_reason);
  } else if (vm.panicked) {
    next = VmState::crashed;
    e.reason = "guest-panicked";
  } else if (vm.watchdog_fired && exit) {
    next = VmState::crashed;  // the guest hung; QEMU powered it off
    e.reason = "watchdog";
  } else if (std::filesystem::exists(vm.dir + "/" + kLeaseExpiredFile)) {
    e.reason = "ha-lease-expired";  // its shim killed it (ha_lease.h)
  } else if (!exit) {
    e.reason = "qemu-gone-without-exit-record";
  } else if (clean) {
    e.reason = vm.shutdown_reason.empty() ? "qemu-exited" : vm.shutdown_reason;
  } else {
    e.reason = exit->signaled ? "qemu-killed-by-signal" : "qemu-exited-with-error";
  }
  vm.rec.last_exit = e;
  vm.rec.pid = 0;
  vm.kill_requested = false;
  vm.qmp_pending = false;
  vm.qmp_attempts = 0;
  set_state_locked(name, vm, next, e.reason);
  return {std::move(vm.qmp), std::move(vm.console)};
}

void QemuHypervisor::supervise_once() {
  std::vector<std::pair<std::shared_ptr<QemuMonitor>, std::shared_ptr<ConsoleHub>>> drop;
  std::vector<std::string> logs;
  struct Pending {
    std::string name, dir, uuid;
    int pid;
  };
  std::vector<Pending> reattach;
  {
    std::lock_guard lk(mu_);
    const auto now = opts_.clock->now();
    for (auto& [name, vmp] : vms_) {
      Vm& vm = *vmp;
      logs.push_back(vm_files(vm.dir).console_log);
      // A panicked VM is already `crashed` but its QEMU still runs its panic action (by
      // default it shuts down): keep watching it until the exit is recorded.
      if ((!is_active(vm.rec.state) && !vm.panicked) || vm.job == VmJob::start || vm.rec.pid == 0)
        continue;
      auto exit = read_exit_record(vm.dir);
      if (exit && exit->qemu_pid == vm.rec.pid) {
        // Events QEMU sent before exiting (SHUTDOWN and its reason) are still being read:
        // finalize once the monitor has seen the EOF (its on_eof kicks us again).
        if (vm.qmp && !vm.qmp->closed()) continue;
        drop.push_back(finalize_locked(name, vm, *exit));
        continue;
      }
      if (process_matches(vm.rec.pid, vm.spec.uuid)) {
        if (vm.qmp_pending && !vm.qmp && now >= vm.qmp_retry_at)
          reattach.push_back({name, vm.dir, vm.spec.uuid, vm.rec.pid});
        continue;
      }
      // QEMU is gone; give its shim a moment to write exit.json.
      std::ifstream in(vm.dir + "/" + kShimPidFile);
      int shim = 0;
      in >> shim;
      if (shim > 0 && process_matches(shim, vm.dir)) continue;
      exit = read_exit_record(vm.dir);
      drop.push_back(finalize_locked(
          name, vm, exit && exit->qemu_pid == vm.rec.pid ? std::optional(*exit) : std::nullopt));
    }
  }
  drop.clear();  // joins reader threads without mu_
  flush_events();
  for (auto& p : reattach) reattach_qmp(p.name, p.dir, p.pid, p.uuid);
  for (auto& log : logs)
    if (auto r = rotate_console_log(log, opts_.console_log_max_bytes); !r)
      logger("agent.qemu")->warn("console rotate failed log={} error={}", log, r.error().message);
}

void QemuHypervisor::reattach_qmp(const std::string& name, const std::string& dir, int pid,
                                  const std::string& uuid) {
  auto log = logger("agent.qemu");
  auto c = connect_qmp(name, dir, kQmpReattachTimeout, [&] { return process_matches(pid, uuid); });
  std::shared_ptr<QemuMonitor> qmp = c ? *c : nullptr;
  std::optional<VmState> live;
  std::shared_ptr<ConsoleHub> hub;
  if (qmp) {
    if (auto st = qmp->query_status(kQmpCommandTimeout))
      live = state_from_query_status(st->status);
    if (auto h = ConsoleHub::connect(vm_files(dir).serial_socket, 2s)) hub = std::move(*h);
  }
  {
    std::lock_guard lk(mu_);
    auto it = vms_.find(name);
    if (it == vms_.end()) return;  // undefined meanwhile; qmp and hub close below
    Vm& vm = *it->second;
    if (!vm.qmp_pending || vm.qmp || vm.rec.pid != pid || !is_active(vm.rec.state)) return;
    if (!qmp) {
      // Busy or slow, not gone: the supervisor's process check decides about the VM.
      ++vm.qmp_attempts;
      vm.qmp_retry_at = opts_.clock->now() + retry_backoff(vm.qmp_attempts);
      if (vm.qmp_attempts <= 3 || vm.qmp_attempts % 20 == 0)
        log->warn("QMP still not connected vm={} pid={} attempts={} error={}", name, pid,
                  vm.qmp_attempts, c.error().message);
      return;
    }
    vm.qmp = std::move(qmp);
    vm.qmp_pending = false;
    vm.qmp_attempts = 0;
    if (!vm.console && hub) vm.console = std::move(hub);
    VmState next = live.value_or(vm.rec.state == VmState::starting ? VmState::running
                                                                   : vm.rec.state);
    set_state_locked(name, vm, next, "QMP re-attached");
    log->info("QMP re-attached vm={} pid={} state={}", name, pid, model::to_string(next));
  }
  flush_events();
}

void QemuHypervisor::supervise_loop() {
  std::unique_lock lk(sup_mu_);
  while (!stopping_) {
    sup_cv_.wait_for(lk, 250ms, [&] { return stopping_ || sup_kick_; });
    if (stopping_) break;
    sup_kick_ = false;
    lk.unlock();
    supervise_once();
    lk.lock();
  }
}

bool QemuHypervisor::wait_final(const std::string& name, std::chrono::milliseconds timeout) {
  {
    std::lock_guard lk(sup_mu_);
    sup_kick_ = true;
  }
  sup_cv_.notify_all();
  std::unique_lock lk(mu_);
  return state_cv_.wait_for(lk, timeout, [&] {
    auto it = vms_.find(name);
    return it == vms_.end() || !is_active(it->second->rec.state);
  });
}

Result<VmTarget> QemuHypervisor::target(const std::string& name,
                                        std::initializer_list<VmState> allowed, bool query) const {
  std::lock_guard lk(mu_);
  auto v = find_locked(name);
  if (!v) return tl::unexpected(v.error());
  const Vm& vm = **v;
  bool ok = std::find(allowed.begin(), allowed.end(), vm.rec.state) != allowed.end();
  if (ok && vm.qmp_pending && !vm.qmp)
    return unavailable(std::string("VM is ") + model::to_string(vm.rec.state) +
                       " but its QMP monitor is not connected yet (re-attaching); retry");
  if (ok && vm.qmp && vm.job != VmJob::none && !query)
    return make_error(
        ErrorCode::failed_precondition,
        "VM " + name + " has a " + std::string(to_string(vm.job)) + " job in progress");
  if (!ok || !vm.qmp)
    return make_error(ErrorCode::failed_precondition,
                      std::string("VM is ") + model::to_string(vm.rec.state));
  return VmTarget{vm.qmp, vm.rec.pid, vm.spec.uuid};
}

Status QemuHypervisor::shutdown(const std::string& name, std::chrono::milliseconds timeout) {
  {
    // A stop while a stop job runs joins it: waits for the VM to end like the first caller.
    std::unique_lock lk(mu_);
    auto v = find_locked(name);
    if (!v) return tl::unexpected(v.error());
    if ((*v)->job == VmJob::stop) {
      lk.unlock();
      if (wait_final(name, timeout + 30s)) return {};
      return make_error(ErrorCode::deadline_exceeded, "the running stop job did not end");
    }
  }
  auto t = target(name, {VmState::running, VmState::paused, VmState::shutting_down});
  if (!t) return tl::unexpected(t.error());
  {
    std::lock_guard lk(mu_);
    auto v = find_locked(name);
    if (!v) return tl::unexpected(v.error());
    if (auto s = begin_job_locked(name, **v, VmJob::stop); !s) return s;
  }
  JobEnd end_job_at_return{this, name, VmJob::stop};
  if (auto r = t->qmp->system_powerdown(kQmpCommandTimeout); !r)
    logger("agent.qemu")->warn("system_powerdown failed vm={} error={}", name, r.error().message);
  auto deadline = opts_.clock->now() + timeout;
  while (opts_.clock->now() < deadline) {
    if (wait_final(name, 0ms)) return {};
    opts_.clock->sleep_for(100ms);
  }
  if (wait_final(name, 0ms)) return {};
  logger("agent.qemu")->info("shutdown timed out, forcing off vm={}", name);
  return force_off(name);
}

Status QemuHypervisor::force_off(const std::string& name) {
  VmTarget t;
  {
    std::lock_guard lk(mu_);
    auto v = find_locked(name);
    if (!v) return tl::unexpected(v.error());
    // force_off may end a stop job (shutdown's own timeout calls it), never a start job:
    // start() kills a QEMU it cannot drive itself.
    if ((*v)->job == VmJob::start)
      return make_error(ErrorCode::failed_precondition,
                        "VM " + name + " has a start job in progress");
    if (!is_active((*v)->rec.state))
      return make_error(ErrorCode::failed_precondition,
                        std::string("VM is ") + model::to_string((*v)->rec.state));
    (*v)->kill_requested = true;
    t = VmTarget{(*v)->qmp, (*v)->rec.pid, (*v)->spec.uuid};
  }
  if (t.qmp) {
    auto r = t.qmp->quit(10s);
    if (r && wait_final(name, 30s)) return {};
  }
  if (process_matches(t.pid, t.uuid)) ::kill(t.pid, SIGKILL);
  if (!wait_final(name, 30s))
    return make_error(ErrorCode::deadline_exceeded, "QEMU did not exit after SIGKILL");
  return {};
}

Status QemuHypervisor::reboot(const std::string& name) {
  auto t = target(name, {VmState::running, VmState::paused});
  if (!t) return tl::unexpected(t.error());
  auto r = t->qmp->system_reset(kQmpCommandTimeout);
  if (!r) return tl::unexpected(r.error());
  return {};
}

Status QemuHypervisor::pause(const std::string& name) {
  auto t = target(name, {VmState::running, VmState::paused});
  if (!t) return tl::unexpected(t.error());
  auto r = t->qmp->stop(kQmpCommandTimeout);
  if (!r) return tl::unexpected(r.error());
  {
    std::lock_guard lk(mu_);
    if (auto v = find_locked(name); v && (*v)->rec.state == VmState::running)
      set_state_locked(name, **v, VmState::paused, "paused");
  }
  flush_events();
  return {};
}

Status QemuHypervisor::resume(const std::string& name) {
  auto t = target(name, {VmState::running, VmState::paused});
  if (!t) return tl::unexpected(t.error());
  auto r = t->qmp->cont(kQmpCommandTimeout);
  if (!r) return tl::unexpected(r.error());
  {
    std::lock_guard lk(mu_);
    if (auto v = find_locked(name); v && (*v)->rec.state == VmState::paused)
      set_state_locked(name, **v, VmState::running, "resumed");
  }
  flush_events();
  return {};
}

}  // namespace strata::agent::qemu
