// QemuHypervisor: construction, define/undefine, status and state bookkeeping.
#include "qemu_hypervisor.h"

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <optional>
#include <random>
#include <set>

#include "strata/common/log.h"
#include "strata/common/process.h"
#include "strata/common/random.h"
#include "strata/model/validation.h"
#include "strata/model/vm_spec_json.h"

namespace strata::agent::qemu {

namespace fs = std::filesystem;

bool is_active(model::VmState s) {
  using S = model::VmState;
  return s == S::starting || s == S::running || s == S::paused || s == S::shutting_down;
}

QemuHypervisor::QemuHypervisor(QemuOptions options) : opts_(std::move(options)) {
  if (!opts_.clock) opts_.clock = system_clock();
  supervisor_ = std::thread([this] { supervise_loop(); });
  if (opts_.guest_facts_interval.count() > 0) {
    // Ticks finer than the interval, so a VM that starts is asked soon after; each VM is
    // still asked at most once per interval.
    auto tick = std::min<Clock::Duration>(opts_.guest_facts_interval, std::chrono::seconds(5));
    guest_poller_ =
        std::make_unique<PeriodicThread>(opts_.clock, tick, [this] { poll_guest_facts(); });
    guest_poller_->start();
  }
}

QemuHypervisor::~QemuHypervisor() {
  if (guest_poller_) guest_poller_->stop();
  {
    std::lock_guard lk(sup_mu_);
    stopping_ = true;
  }
  sup_cv_.notify_all();
  if (supervisor_.joinable()) supervisor_.join();
  // Drop our connections only; QEMU and its shim keep running (the agent may restart).
  std::vector<std::shared_ptr<QemuMonitor>> qmps;
  std::vector<std::shared_ptr<ConsoleHub>> hubs;
  {
    std::lock_guard lk(mu_);
    for (auto& [name, vm] : vms_) {
      qmps.push_back(std::move(vm->qmp));
      hubs.push_back(std::move(vm->console));
    }
  }
}

int64_t QemuHypervisor::wall_ms() const {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             opts_.clock->wall().time_since_epoch())
      .count();
}

Result<std::shared_ptr<Vm>> QemuHypervisor::find_locked(const std::string& name) const {
  auto it = vms_.find(name);
  if (it != vms_.end()) return it->second;
  // Being defined: not absent. A caller that took "not found" for final (a manager deleting
  // the VM's record) would leave the VM the define job is about to publish without one.
  if (defining_.contains(name))
    return make_error(ErrorCode::unavailable, "VM " + name + " is being defined; try again");
  return not_found("no VM named " + name);
}

VmStatus QemuHypervisor::status_locked(const Vm& vm) const {
  VmStatus s;
  s.spec = vm.spec;
  s.state = vm.rec.state;
  s.pid = is_active(vm.rec.state) ? vm.rec.pid : 0;
  s.accelerator = vm.rec.accelerator.empty() ? opts_.accelerator : vm.rec.accelerator;
  s.cpu_model = vm.rec.profile.version > 0 ? vm.rec.profile.cpu_model
                                           : (s.accelerator == "kvm" ? "host" : "max");
  s.last_exit = vm.rec.last_exit;
  s.state_changed_unix_ms = vm.rec.changed_unix_ms;
  VmFiles f = vm_files(vm.dir);
  s.qmp_socket = f.qmp_socket;
  s.vnc_socket = vm.spec.vnc ? f.vnc_socket : "";
  s.qga_socket = f.qga_socket;
  s.console_log = f.console_log;
  if (vm.rec.state == model::VmState::running || vm.rec.state == model::VmState::paused)
    s.guest = vm.guest;
  return s;
}

void QemuHypervisor::set_state_locked(const std::string& name, Vm& vm, model::VmState state,
                                      const std::string& reason) {
  bool changed = vm.rec.state != state;
  vm.rec.state = state;
  if (state != model::VmState::running && state != model::VmState::paused) {
    // A new run of the VM starts without facts (another OS may boot).
    vm.guest.reset();
    vm.guest_asked_at.reset();
    vm.guest_first_asked_at.reset();
  }
  vm.rec.reason = reason;
  if (changed) vm.rec.changed_unix_ms = wall_ms();
  if (auto s = write_state_record(vm.dir, vm.rec); !s)
    logger("agent.qemu")->error("state write failed vm={} error={}", name, s.error().message);
  if (changed) {
    logger("agent.qemu")
        ->info("vm state vm={} state={} reason={}", name, model::to_string(state), reason);
    pending_events_.push_back(VmEvent{name, state, reason, vm.rec.changed_unix_ms});
  }
  state_cv_.notify_all();
}

void QemuHypervisor::flush_events() {
  std::lock_guard wl(watch_mu_);
  std::vector<VmEvent> events;
  {
    std::lock_guard lk(mu_);
    events.swap(pending_events_);
  }
  for (auto& e : events)
    for (auto& w : watchers_) w(e);
}

void QemuHypervisor::watch(VmEventCallback cb) {
  std::lock_guard wl(watch_mu_);
  watchers_.push_back(std::move(cb));
}

Result<std::map<std::string, std::string>> QemuHypervisor::machine_types() {
  std::lock_guard lk(probe_mu_);
  if (machines_) return *machines_;
  RunOptions ro;
  ro.timeout = std::chrono::seconds(60);
  auto r = run_process({opts_.qemu_binary, "-machine", "help"}, ro);
  if (!r) return tl::unexpected(r.error().wrap("listing QEMU's machine types"));
  auto m = parse_machine_help(r->out);
  if (!r->ok() || m.empty())
    return unavailable("cannot list the machine types of " + opts_.qemu_binary + ": " + r->err);
  machines_ = m;
  return m;
}

Status QemuHypervisor::begin_job_locked(const std::string& name, Vm& vm, VmJob job) {
  if (vm.job != VmJob::none)
    return make_error(ErrorCode::failed_precondition,
                      "VM " + name + " has a " + std::string(to_string(vm.job)) +
                          " job in progress; one long job per VM at a time");
  vm.job = job;
  return {};
}

void QemuHypervisor::end_job(const std::string& name, VmJob job) {
  std::lock_guard lk(mu_);
  auto it = vms_.find(name);
  if (it != vms_.end() && it->second->job == job) it->second->job = VmJob::none;
  state_cv_.notify_all();
}

Result<QemuHypervisor::DeviceJob> QemuHypervisor::begin_device_job(const std::string& name,
                                                                   VmJob job) {
  std::lock_guard lk(mu_);
  auto v = find_locked(name);
  if (!v) return tl::unexpected(v.error());
  Vm& vm = **v;
  const model::VmState s = vm.rec.state;
  const bool live = s == model::VmState::running || s == model::VmState::paused;
  const bool offline =
      s == model::VmState::defined || s == model::VmState::stopped || s == model::VmState::crashed;
  if (!live && !offline)
    return make_error(ErrorCode::failed_precondition,
                      "VM " + name + " is " + model::to_string(s) + "; try again when it settles");
  if (live && !vm.qmp)
    return unavailable("VM " + name + " is " + model::to_string(s) +
                       " but its QMP monitor is not connected yet (re-attaching); retry");
  if (auto st = begin_job_locked(name, vm, job); !st) return tl::unexpected(st.error());
  return DeviceJob{live ? vm.qmp : nullptr, vm.dir, vm.spec, vm.rec.profile};
}

Status QemuHypervisor::record_spec(const std::string& name, const std::string& dir,
                                   const model::VmSpec& spec) {
  if (auto s = write_file_atomic(dir + "/" + kSpecFile, model::to_json(spec).dump(2) + "\n",
                                 kVmFileMode);
      !s)
    return s;
  std::lock_guard lk(mu_);
  if (auto v = find_locked(name)) (*v)->spec = spec;
  return {};
}

std::vector<std::string> QemuHypervisor::taps_of(const model::VmSpec& spec) const {
  std::vector<std::string> taps;
  for (size_t i = 0; i < spec.nics.size(); ++i) {
    const auto& n = spec.nics[i];
    if (n.mode != model::NicMode::bridge)
      taps.emplace_back();
    else if (n.hotplug_slot != 0)
      taps.push_back(tap_name(spec.uuid, n.hotplug_slot, 'p'));
    else
      taps.push_back(tap_name(spec.uuid, i));
  }
  return taps;
}

namespace {

// An image must exist and, when the store knows its kind, be of the kind its use needs:
// a kernel used as a disk base would be opened by QEMU as a block device (format probing
// and all), a disk image passed as -kernel is at best a failed boot.
Status check_image_use(const ImageStore& images, const std::string& name, const std::string& want,
                       const std::string& field) {
  auto i = images.image(name);
  if (!i) return tl::unexpected(i.error().wrap(field));
  if (!i->kind.empty() && i->kind != want)
    return invalid_argument(field, "image " + name + " is a " + i->kind + " image; " + field +
                                       " needs a " + want + " image");
  return {};
}

}  // namespace

Result<VmStatus> QemuHypervisor::define(const model::VmSpec& input) {
  return define_with(input, [this](const model::VmSpec& spec, const model::DiskSpec& d) {
    return make_local_disk(spec, d);
  });
}

Result<VmStatus> QemuHypervisor::define_with(const model::VmSpec& input,
                                             const DiskMaker& make_disk) {
  auto completed = model::complete(input, &random_u64);
  if (!completed) return tl::unexpected(completed.error());
  model::VmSpec spec = std::move(*completed);
  std::string dir = vm_dir(spec.name);
  if (vm_files(dir).serial_socket.size() > kMaxSocketPath)
    return make_error(ErrorCode::failed_precondition,
                      "state_dir is too long for UNIX socket paths: " + opts_.state_dir);
  if (!spec.disks.empty() && !opts_.images)
    return make_error(ErrorCode::failed_precondition, "no image store configured");
  for (auto& n : spec.nics)
    if (n.mode == model::NicMode::bridge && !opts_.network)
      return make_error(ErrorCode::failed_precondition, "bridge NICs need host networking");
  if (spec.kernel_boot) {
    if (!opts_.images) return make_error(ErrorCode::failed_precondition, "no image store");
    if (auto st = check_image_use(*opts_.images, spec.kernel_boot->kernel, "kernel",
                                  "kernel_boot.kernel");
        !st)
      return tl::unexpected(st.error());
    if (!spec.kernel_boot->initrd.empty())
      if (auto st = check_image_use(*opts_.images, spec.kernel_boot->initrd, "initrd",
                                    "kernel_boot.initrd");
          !st)
        return tl::unexpected(st.error());
  }
  for (size_t i = 0; i < spec.disks.size(); ++i)
    if (!spec.disks[i].base_image.empty())
      if (auto st = check_image_use(*opts_.images, spec.disks[i].base_image, "disk",
                                    "disks[" + std::to_string(i) + "].base_image");
          !st)
        return tl::unexpected(st.error());
  if (auto st = check_datastores(spec); !st) return tl::unexpected(st.error());
  if (!spec.cdrom.empty())
    if (auto p = iso_path(spec.cdrom, "cdrom"); !p) return tl::unexpected(p.error());
  if (spec.firmware == model::Firmware::uefi)
    if (auto st = check_uefi_firmware(); !st) return tl::unexpected(st.error());

  // The hardware profile is fixed now, with the machine type this host's QEMU pins the
  // spec's alias to; the VM keeps it across QEMU upgrades.
  auto machines = machine_types();
  if (!machines) return tl::unexpected(machines.error());
  auto profile = new_hardware_profile(spec.machine, opts_.accelerator, *machines);
  if (!profile) return tl::unexpected(profile.error());
  // The guest CPU: the spec's (the manager sends its cluster's baseline), else the
  // accelerator's default.
  if (!spec.cpu_model.empty()) {
    if (auto st = check_cpu_model("cpu_model", spec.cpu_model); !st) return tl::unexpected(st.error());
    profile->cpu_model = spec.cpu_model;
  }
  profile->firmware = model::to_string(spec.firmware);
  if (spec.firmware == model::Firmware::uefi && !profile->cdrom)
    return invalid_argument("firmware", "UEFI needs a q35 machine");
  if (spec.watchdog) profile->watchdog = model::kWatchdogModel;
  settle_version(*profile);

  // The define job: reserve the name and UUID under mu_, create the folder and the disks
  // (qemu-img: seconds) without it, then publish the VM under mu_ again.
  {
    std::lock_guard lk(mu_);
    for (auto& [name, vm] : vms_) {
      if (name == spec.name) return make_error(ErrorCode::already_exists, "VM exists: " + name);
      if (vm->spec.uuid == spec.uuid)
        return make_error(ErrorCode::already_exists, "UUID in use by VM " + name);
    }
    for (auto& [name, uuid] : defining_) {
      if (name == spec.name)
        return make_error(ErrorCode::already_exists, "VM " + name + " is being defined");
      if (uuid == spec.uuid)
        return make_error(ErrorCode::already_exists, "UUID in use by VM " + name);
    }
    defining_[spec.name] = spec.uuid;
  }
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
    return make_error(ErrorCode::already_exists, "VM folder exists (not recovered?): " + dir);
  fs::create_directories(dir, ec);
  if (ec) return internal_error("mkdir " + dir + ": " + ec.message());
  std::vector<std::string> made_shared;
  auto fail = [&](const Error& e) -> Result<VmStatus> {
    undo_disks(spec, made_shared);
    fs::remove_all(dir, ec);
    return tl::unexpected(e);
  };
  if (spec.firmware == model::Firmware::uefi)
    if (auto st = create_uefi_vars(dir); !st) return fail(st.error());
  auto made = make_disks(spec, /*incoming=*/false, &make_disk);
  if (!made) return fail(made.error());
  made_shared = std::move(*made);
  if (auto s = write_file_atomic(dir + "/" + kSpecFile, model::to_json(spec).dump(2) + "\n",
                                kVmFileMode);
      !s)
    return fail(s.error());
  auto vm = std::make_shared<Vm>();
  vm->dir = dir;
  vm->spec = spec;
  vm->rec.accelerator = opts_.accelerator;
  vm->rec.profile = *profile;
  vm->rec.state = model::VmState::stopped;  // so set_state records "defined" as a change
  std::lock_guard lk(mu_);
  set_state_locked(spec.name, *vm, model::VmState::defined, "defined");
  vms_[spec.name] = vm;
  auto st = status_locked(*vm);
  return st;
}

Status QemuHypervisor::check_cpu_model(const std::string& field, const std::string& model) const {
  if (auto st = model::validate_cpu_model(field, model); !st) return st;
  if (model.empty() || model == "max") return {};
  if (model == "host") {
    if (opts_.accelerator == "kvm") return {};
    return make_error(ErrorCode::failed_precondition,
                      "CPU model \"host\" needs KVM; this host runs guests with " + opts_.accelerator,
                      field);
  }
  if (!opts_.cpu_models_probed)
    return make_error(ErrorCode::failed_precondition,
                      "this host's QEMU did not report its CPU models: only host or max", field);
  if (!std::binary_search(opts_.cpu_models.begin(), opts_.cpu_models.end(), model))
    return make_error(ErrorCode::failed_precondition,
                      "this host cannot offer CPU model " + model +
                          " (not usable with " + opts_.accelerator + " here; see its inventory's cpu_models)",
                      field);
  return {};
}

Status QemuHypervisor::adopt_cpu_model(const std::string& name, const std::string& cpu_model) {
  if (auto st = check_cpu_model("cpu_model", cpu_model); !st) return st;
  std::lock_guard lk(mu_);
  auto v = find_locked(name);
  if (!v) return tl::unexpected(v.error());
  Vm& vm = **v;
  if (cpu_model.empty() || vm.rec.profile.cpu_model == cpu_model) return {};
  // A running VM (or one with a job) keeps its CPU; it adopts at a later start. A legacy
  // v0 profile has no recorded CPU to change.
  if (vm.job != VmJob::none || is_active(vm.rec.state) || vm.rec.profile.version == 0) return {};
  const std::string was = vm.rec.profile.cpu_model;
  vm.rec.profile.cpu_model = cpu_model;
  if (auto s = write_state_record(vm.dir, vm.rec); !s) {
    vm.rec.profile.cpu_model = was;
    return tl::unexpected(s.error().wrap("recording the CPU model"));
  }
  logger("agent.qemu")->info("vm cpu model vm={} was={} now={}", name, was, cpu_model);
  return {};
}

Status QemuHypervisor::check_datastores(const model::VmSpec& spec) const {
  for (size_t i = 0; i < spec.disks.size(); ++i) {
    const auto& d = spec.disks[i];
    if (d.datastore.empty()) continue;
    const std::string field = "disks[" + std::to_string(i) + "].datastore";
    if (!opts_.datastores)
      return make_error(ErrorCode::failed_precondition,
                        field + ": this host mounts no datastore (agent --datastore)");
    if (auto ds = opts_.datastores->find(d.datastore, d.datastore_id); !ds)
      return tl::unexpected(ds.error().wrap(field));
  }
  return {};
}

Status QemuHypervisor::make_local_disk(const model::VmSpec& spec, const model::DiskSpec& d) {
  auto r = d.base_image.empty()
               ? opts_.images->create_blank(spec.name, d.name, d.size_bytes)
               : opts_.images->create_overlay(spec.name, d.name, d.base_image, d.size_bytes);
  if (!r) return tl::unexpected(r.error());
  return {};
}

Result<std::vector<std::string>> QemuHypervisor::make_disks(const model::VmSpec& spec,
                                                            bool incoming,
                                                            const DiskMaker* local_maker) {
  std::vector<std::string> made_shared;
  auto fail = [&](const Error& e) -> Result<std::vector<std::string>> {
    undo_disks(spec, made_shared);
    return tl::unexpected(e);
  };
  for (auto& d : spec.disks) {
    if (d.datastore.empty() && local_maker) {
      if (auto r = (*local_maker)(spec, d); !r) return fail(r.error().wrap("disk " + d.name));
      continue;
    }
    if (d.datastore.empty()) {
      // Same bases as on any other host: a migration's mirror fills in the overlay.
      if (auto r = make_local_disk(spec, d); !r) return fail(r.error().wrap("disk " + d.name));
      continue;
    }
    if (!opts_.datastores)
      return fail(Error{ErrorCode::failed_precondition, "this host mounts no datastore", {}});
    if (incoming) {
      auto r = opts_.datastores->disk_info(d.datastore, d.datastore_id, spec.uuid, d.name);
      if (!r)
        return fail(r.error().wrap("disk " + d.name + " on datastore " + d.datastore +
                                   " (the source runs from it)"));
      continue;
    }
    std::optional<ImageInfo> base;
    if (!d.base_image.empty()) {
      auto b = opts_.images->image(d.base_image);
      if (!b) return fail(b.error().wrap("disk " + d.name));
      base = *b;
    }
    auto r = opts_.datastores->ensure_disk(d.datastore, d.datastore_id, spec.uuid, d.name,
                                           base ? &*base : nullptr, d.size_bytes);
    if (!r) return fail(r.error().wrap("disk " + d.name));
    if (r->created) made_shared.push_back(d.name);
    else
      logger("agent.qemu")
          ->info("datastore disk adopted vm={} disk={} datastore={}", spec.name, d.name,
                 d.datastore);
  }
  return made_shared;
}

void QemuHypervisor::undo_disks(const model::VmSpec& spec,
                                const std::vector<std::string>& made_shared) {
  if (opts_.images) (void)opts_.images->delete_vm_disks(spec.name);
  if (!opts_.datastores) return;
  for (auto& d : spec.disks)
    if (std::find(made_shared.begin(), made_shared.end(), d.name) != made_shared.end())
      (void)opts_.datastores->delete_disk(d.datastore, d.datastore_id, spec.uuid, d.name);
}

Status QemuHypervisor::undefine(const std::string& name, bool delete_shared_disks) {
  std::shared_ptr<Vm> vm;
  {
    std::lock_guard lk(mu_);
    auto v = find_locked(name);
    if (!v) return tl::unexpected(v.error());
    vm = *v;
    if (vm->job != VmJob::none)
      return make_error(
          ErrorCode::failed_precondition,
          "VM " + name + " has a " + std::string(to_string(vm->job)) + " job in progress");
    if (is_active(vm->rec.state))
      return make_error(ErrorCode::failed_precondition,
                        std::string("VM is ") + model::to_string(vm->rec.state));
    if (auto clones = linked_clones_locked(name); !clones.empty()) {
      std::string list;
      for (const auto& c : clones) list += (list.empty() ? "" : ", ") + c;
      return make_error(ErrorCode::failed_precondition,
                        "VM " + name + " has linked clones whose disks are overlays of its "
                        "disks: " + list + "; delete them first");
    }
    vms_.erase(name);
  }
  if (opts_.network)
    for (auto& tap : taps_of(vm->spec))
      if (!tap.empty() && opts_.network->link_exists(tap))
        if (auto s = opts_.network->delete_tap(tap); !s)
          logger("agent.qemu")->warn("tap delete failed vm={} tap={}", name, tap);
  if (opts_.images)
    if (auto s = opts_.images->delete_vm_disks(name); !s)
      return tl::unexpected(s.error().wrap("delete disks of " + name));
  // Datastore disks: only when the VM itself is deleted (hypervisor.h).
  if (delete_shared_disks && opts_.datastores) {
    std::set<std::pair<std::string, std::string>> stores;
    for (auto& d : vm->spec.disks)
      if (!d.datastore.empty()) stores.insert({d.datastore, d.datastore_id});
    for (auto& [ds, id] : stores)
      if (auto s = opts_.datastores->delete_vm(ds, id, vm->spec.uuid); !s)
        return tl::unexpected(s.error().wrap("delete the disks of " + name + " on " + ds));
  }
  std::error_code ec;
  fs::remove_all(vm->dir, ec);
  if (ec) return internal_error("remove " + vm->dir + ": " + ec.message());
  logger("agent.qemu")->info("vm undefined vm={} delete_shared_disks={}", name, delete_shared_disks);
  return {};
}

Result<VmStatus> QemuHypervisor::status(const std::string& name) const {
  std::lock_guard lk(mu_);
  auto v = find_locked(name);
  if (!v) return tl::unexpected(v.error());
  return status_locked(**v);
}

std::vector<VmStatus> QemuHypervisor::list() const {
  std::lock_guard lk(mu_);
  std::vector<VmStatus> out;
  for (auto& [name, vm] : vms_) out.push_back(status_locked(*vm));
  return out;
}

}  // namespace strata::agent::qemu

namespace strata::agent {

Result<HypervisorPtr> make_qemu_hypervisor(QemuOptions options) {
  if (options.state_dir.empty() || options.state_dir.front() != '/')
    return invalid_argument("state_dir", "must be an absolute path");
  if (options.accelerator != "kvm" && options.accelerator != "tcg")
    return invalid_argument("accelerator", "must be kvm or tcg");
  if (!options.clock) options.clock = system_clock();
  if (options.shim_exe.empty()) {
    std::error_code ec;
    options.shim_exe = std::filesystem::read_symlink("/proc/self/exe", ec).string();
    if (ec) return internal_error("cannot find own executable for the shim");
  }
  std::error_code ec;
  std::filesystem::create_directories(options.state_dir + "/vms", ec);
  if (ec) return internal_error("mkdir " + options.state_dir + "/vms: " + ec.message());
  if (options.run_as) {
    // Fail now, with the folder to fix, rather than at each VM start with EACCES from QEMU.
    if (auto s = check_searchable_by(options.state_dir + "/vms", *options.run_as); !s)
      return tl::unexpected(s.error());
    if (options.images)
      if (auto s = check_searchable_by(options.images->root(), *options.run_as); !s)
        return tl::unexpected(s.error());
  }
  return HypervisorPtr(std::make_unique<qemu::QemuHypervisor>(std::move(options)));
}

}  // namespace strata::agent
