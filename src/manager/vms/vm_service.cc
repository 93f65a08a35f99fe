// VM lifecycle: one store transaction per change (see vm_service.h).
#include "strata/manager/vms/vm_service.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <map>
#include <random>

#include "strata/common/random.h"
#include "strata/manager/auth/tokens.h"
#include "strata/manager/controllers/datastores.h"
#include "strata/manager/controllers/image_distribution.h"
#include "strata/manager/controllers/vm_decision.h"
#include "strata/manager/tasks/task_tracker.h"
#include "strata/model/validation.h"
#include "strata/wire/api_level.h"

namespace strata::manager {

namespace {

// The verb's change of desired state, on the record and its document.
Status apply_verb(VmVerb verb, const VmActOptions& o, int64_t now_ms, store::VmRecord& vm,
                  VmDocument& doc) {
  switch (verb) {
    case VmVerb::start:
    case VmVerb::resume:
      vm.desired_state = "running";
      doc.control.paused = false;
      return {};
    case VmVerb::stop:
      vm.desired_state = "stopped";
      doc.control.paused = false;
      doc.control.stop_force = o.stop_force;
      doc.control.stop_timeout_s = o.stop_timeout_s;
      return {};
    case VmVerb::reboot:
    case VmVerb::pause:
      if (vm.desired_state != "running")
        return make_error(ErrorCode::failed_precondition, "the VM is not meant to run");
      if (verb == VmVerb::reboot)
        doc.control.reboot_generation = doc.control.generation;
      else
        doc.control.paused = true;
      return {};
    case VmVerb::remove:
      vm.deletion_requested = true;
      vm.deletion_requested_ms = now_ms;
      return {};
  }
  return make_error(ErrorCode::invalid_argument, "unknown VM action");
}

}  // namespace

const char* to_string(VmVerb verb) {
  switch (verb) {
    case VmVerb::start: return "start";
    case VmVerb::stop: return "stop";
    case VmVerb::reboot: return "reboot";
    case VmVerb::pause: return "pause";
    case VmVerb::resume: return "resume";
    case VmVerb::remove: return "delete";
  }
  return "unknown";
}

TaskKind task_kind(VmVerb verb) {
  switch (verb) {
    case VmVerb::start:
      return TaskKind::vm_start;
    case VmVerb::stop:
      return TaskKind::vm_stop;
    case VmVerb::reboot:
      return TaskKind::vm_reboot;
    case VmVerb::pause:
      return TaskKind::vm_pause;
    case VmVerb::resume:
      return TaskKind::vm_resume;
    case VmVerb::remove:
      return TaskKind::vm_delete;
  }
  return TaskKind::vm_delete;  // unreachable: every verb is above
}

VmService::VmService(store::Store& store, PlacementService& placement, EventLog& events,
                     ClockPtr clock, std::function<void(const std::string&)> on_change)
    : store_(store), placement_(placement), events_(events), clock_(std::move(clock)),
      on_change_(std::move(on_change)) {}

Result<VmChange> VmService::create(VmDocument doc, bool start, const std::string& actor) {
  auto completed = model::complete(doc.spec, &random_u64);
  if (!completed) return tl::unexpected(completed.error());
  doc.spec = std::move(*completed);
  if (auto st = check_image_kinds(store_, doc.spec); !st) return tl::unexpected(st.error());
  if (std::any_of(doc.spec.disks.begin(), doc.spec.disks.end(),
                  [](const model::DiskSpec& d) { return !d.datastore.empty(); })) {
    auto hosts = store_.list_hosts({});
    if (!hosts) return tl::unexpected(hosts.error());
    if (auto st = resolve_datastores(doc.spec, *hosts); !st) return tl::unexpected(st.error());
  }

  VmChange change;
  store::EventRecord audit;
  // The name is checked before a host is chosen (a taken name is 409 even when nothing fits);
  // the store's unique name still guards a create that races past the check.
  auto name_free = [&]() -> Status {
    if (store_.get_vm_by_name(doc.spec.name))
      return make_error(ErrorCode::already_exists,
                        fmt::format("a VM named '{}' already exists", doc.spec.name), "name");
    return {};
  };
  std::string admission_warning;
  // Under the placement lock, after the host is chosen.
  auto admit = [&](const store::HostRecord& host) -> Status {
    if (doc.ha.enabled && ha_admission_ != HaAdmission::off) {
      auto ok = placement_.check_ha_admission({PendingVm{doc.spec.name, host.id, doc}});
      if (!ok && ha_admission_ == HaAdmission::enforce) return tl::unexpected(ok.error());
      if (!ok) admission_warning = ok.error().message;
    }
    return {};
  };
  auto write = [&](const store::HostRecord& host) -> Result<store::VmRecord> {
    auto st = store_.transaction([&](store::Store& tx) -> Status {
      store::VmRecord vm;
      vm.name = doc.spec.name;
      vm.labels = doc.spec.labels;
      vm.host_id = host.id;
      vm.desired_state = start ? "running" : "stopped";
      VmStatusDoc status;
      status.state = "scheduled";
      vm.status = encode(status);
      vm.spec = encode(doc);
      auto stored = tx.create_vm(vm);
      if (!stored) return tl::unexpected(stored.error());
      auto task =
          create_task_in(tx, TaskKind::vm_create, "vm", stored->id, "scheduled on " + host.name);
      if (!task) return tl::unexpected(task.error());
      VmDocument with_task = doc;
      with_task.control.task_id = task->id;
      stored->spec = encode(with_task);
      auto updated = tx.update_vm(*stored);
      if (!updated) return tl::unexpected(updated.error());
      auto ev = EventLog::append_in(tx, actor, "vm.create", "vm/" + updated->name, "ok");
      if (!ev) return tl::unexpected(ev.error());
      change = {*updated, *task};
      audit = *ev;
      return {};
    });
    // A create of the same name that raced past name_free (the write runs after the
    // placement lock): the store's unique name refused it.
    if (!st && st.error().code == ErrorCode::already_exists)
      return make_error(ErrorCode::already_exists,
                        fmt::format("a VM named '{}' already exists", doc.spec.name), "name");
    if (!st) return tl::unexpected(st.error());
    return change.vm;
  };
  auto placed = placement_.place_and_write(doc, {}, write, name_free, admit);
  if (!placed) return tl::unexpected(placed.error());
  events_.published(audit);
  if (!admission_warning.empty())
    (void)events_.append(actor, "vm.ha_admission", "vm/" + doc.spec.name, "warning",
                         admission_warning);
  if (on_change_) on_change_(change.vm.id);
  return change;
}

Result<VmChange> VmService::act(const std::string& name, VmVerb verb, const VmActOptions& options,
                                const std::string& actor) {
  const std::string kind(task_kind_name(task_kind(verb)));
  VmChange change;
  store::EventRecord audit;
  auto st = store_.transaction_retrying([&](store::Store& tx) -> Status {
    auto vm = tx.get_vm_by_name(name);
    if (!vm) return tl::unexpected(vm.error());
    if (options.expected_version && *options.expected_version != vm->resource_version)
      return make_error(ErrorCode::conflict,
                        fmt::format("resource_version is {}, not {}", vm->resource_version,
                                    *options.expected_version),
                        "resource_version");
    if (vm->deletion_requested)
      return make_error(ErrorCode::failed_precondition, "the VM is being deleted");
    auto doc = decode_vm_document(vm->spec);
    if (!doc) return tl::unexpected(doc.error());
    if (doc->migration.active())
      return make_error(ErrorCode::failed_precondition,
                        fmt::format("the VM is migrating (task {}); try again when it ends",
                                    doc->migration.task_id));
    if (doc->is_template && verb != VmVerb::stop && verb != VmVerb::remove)
      return make_error(ErrorCode::conflict,
                        fmt::format("VM {} is a template: templates do not run; clone it "
                                    "(strata vm clone {} NEW)",
                                    vm->name, vm->name));
    if (doc->is_template && verb == VmVerb::remove) {
      auto clones = linked_clones_of(tx, vm->id);
      if (!clones) return tl::unexpected(clones.error());
      if (!clones->empty())
        return make_error(ErrorCode::conflict,
                          fmt::format("template {} has linked clones whose disks are overlays "
                                      "of its disks: {}; delete them first",
                                      vm->name, fmt::join(*clones, ", ")));
    }
    if (auto ok = apply_verb(verb, options, unix_ms(*clock_), *vm, *doc); !ok) return ok;
    auto task = create_task_in(tx, task_kind(verb), "vm", vm->id);
    if (!task) return tl::unexpected(task.error());
    // The VM's previous task (if still open) is superseded by this one: the controller only
    // ever finishes the task named in control.task_id, so it ends here or stays open.
    const std::string previous_task = doc->control.task_id;
    doc->control.generation += 1;
    doc->control.task_id = task->id;
    vm->spec = encode(*doc);
    auto updated = tx.update_vm(*vm);
    if (!updated) return tl::unexpected(updated.error());
    if (!previous_task.empty() && previous_task != task->id)
      if (auto f = fail_task_in(tx, previous_task, "superseded by " + kind + " task " + task->id);
          !f)
        return f;
    auto ev = EventLog::append_in(tx, actor, kind, "vm/" + updated->name, "ok");
    if (!ev) return tl::unexpected(ev.error());
    change = {*updated, *task};
    audit = *ev;
    return {};
  });
  if (!st) return tl::unexpected(st.error());
  events_.published(audit);
  if (on_change_) on_change_(change.vm.id);
  return change;
}

Result<VmChange> VmService::migrate(const std::string& name, const VmMigrateOptions& options,
                                    const std::string& actor) {
  if (options.downtime_max_ms < 0 || options.downtime_max_ms > 60000)
    return invalid_argument("downtime_max_ms", "must be between 0 and 60000");
  // Live for a running or paused VM; cold for a stopped one (defined on the target, its
  // local disks copied there, removed from the source).
  bool cold = false;
  auto checked = [&](const store::VmRecord& vm) -> Result<VmDocument> {
    if (vm.deletion_requested)
      return make_error(ErrorCode::failed_precondition, "the VM is being deleted");
    auto doc = decode_vm_document(vm.spec);
    if (!doc) return tl::unexpected(doc.error());
    if (doc->migration.active())
      return make_error(ErrorCode::conflict,
                        fmt::format("the VM is already migrating (task {})",
                                    doc->migration.task_id));
    if (!vm.host_id)
      return make_error(ErrorCode::failed_precondition, "the VM is not placed on a host yet");
    if (doc->is_template)
      return make_error(ErrorCode::conflict, "a template does not run, so it does not migrate");
    if (doc->clone_of.is_clone() && doc->clone_of.linked)
      return make_error(ErrorCode::failed_precondition,
                        fmt::format("a linked clone stays on its template's host: its disks are "
                                    "overlays of template {}'s files there",
                                    doc->clone_of.source_name));
    const std::string state = decode_vm_status(vm.status).state;
    cold = false;
    if (vm.desired_state == "running" && (state == "running" || state == "paused")) return doc;
    if (vm.desired_state == "running" || (state != "stopped" && state != "crashed" && state != "defined"))
      return make_error(ErrorCode::failed_precondition,
                        fmt::format("a VM migrates live when it runs, cold when it is stopped; it "
                                    "is {} (wanted {})",
                                    state, vm.desired_state));
    cold = true;
    return doc;
  };
  auto vm = store_.get_vm_by_name(name);
  if (!vm) return tl::unexpected(vm.error());
  auto doc = checked(*vm);
  if (!doc) return tl::unexpected(doc.error());
  auto source = store_.get_host(*vm->host_id);
  if (!source) return tl::unexpected(source.error());
  // A keep-together group moves as one: its other VMs on this host that can move now (live
  // or cold) go to the same target, chosen to hold them all. One that cannot (being
  // deleted, starting, already migrating) stays, and the move says so.
  const std::string group = doc->placement.affinity_group;
  std::vector<std::pair<std::string, VmDocument>> members{{vm->id, *doc}};
  std::map<std::string, std::string> read_spec{{vm->id, vm->spec}};  // as chosen on
  std::vector<std::string> left_behind;
  if (!group.empty()) {
    store::VmListOptions here;
    here.host_id = *vm->host_id;
    auto vms = store_.list_vms(here);
    if (!vms) return tl::unexpected(vms.error());
    for (const auto& other : *vms) {
      if (other.id == vm->id) continue;
      auto od = decode_vm_document(other.spec);
      if (!od || od->placement.affinity_group != group) continue;
      if (auto ok = checked(other)) {
        members.emplace_back(other.id, *ok);
        read_spec[other.id] = other.spec;
      } else
        left_behind.push_back(fmt::format("{} ({})", other.name, ok.error().message));
    }
    std::sort(members.begin() + 1, members.end(),
              [](const auto& a, const auto& b) { return a.second.spec.name < b.second.spec.name; });
  }
  // Choosing the target, recording the intent and reserving the VM's share of the target
  // happen under the placement lock, as a create's placement does: two migrations (or a
  // create) cannot both take the target's last room.
  std::unique_lock placing(placement_.mutex());
  auto target = members.size() > 1
                    ? placement_.place_group_migration(members, *source, options.target_host)
                    : placement_.place_migration(*doc, vm->id, *source, options.target_host);
  if (!target) return tl::unexpected(target.error());
  // The target must build the VM's devices (a watchdog needs hardware profile 3).
  if (auto hw = check_host_hardware(doc->spec, *target); !hw) return tl::unexpected(hw.error());
  // Post-copy needs both agents at its level (strata/wire/api_level.h): an older one would
  // ignore the request and copy before switching. Read from the hosts' inventories; the
  // target's answer to PrepareMigration is checked again when the migration runs.
  if (options.postcopy && !cold)
    for (const store::HostRecord* h : {&*source, &*target}) {
      constexpr auto feature = wire::AgentFeature::postcopy_migration;
      const uint32_t level = wire::inventory_api_level(h->inventory).value_or(0);
      if (!wire::supports(level, feature))
        return make_error(ErrorCode::failed_precondition,
                          fmt::format("host {}'s agent speaks API level {}; post-copy migration "
                                      "needs level {} on both hosts: upgrade its agent, or "
                                      "migrate without postcopy",
                                      h->name, wire::effective_api_level(level),
                                      wire::required_api_level(feature)),
                          "postcopy");
    }

  std::string with;
  if (members.size() > 1) {
    std::string names;
    for (size_t i = 0; i < members.size(); ++i)
      names += (i ? ", " : "") + members[i].second.spec.name;
    with = fmt::format("; keep-together group {} moves as one: {}", group, names);
    if (!left_behind.empty()) {
      with += "; staying for now: ";
      for (size_t i = 0; i < left_behind.size(); ++i) with += (i ? ", " : "") + left_behind[i];
    }
  }
  std::vector<VmChange> changes;
  std::vector<store::EventRecord> audits;
  // Each target was chosen for the VMs as read above. Their status moves all the time (the
  // controller writes it), which changes nothing here: only a changed document (spec,
  // control, migration) or host makes the choice stale. A lost compare-and-swap reruns.
  auto st = store_.transaction_retrying([&](store::Store& tx) -> Status {
    changes.clear();
    audits.clear();
    for (const auto& member : members) {
      const std::string& id = member.first;
      auto fresh = tx.get_vm(id);
      if (!fresh) return tl::unexpected(fresh.error());
      if (fresh->spec != read_spec[id] || fresh->host_id != vm->host_id)
        return make_error(ErrorCode::conflict,
                          "the VM changed meanwhile (its spec, an action or its host); try again");
      auto now = checked(*fresh);
      if (!now) {
        if (id == vm->id) return tl::unexpected(now.error());
        return make_error(ErrorCode::conflict,
                          fmt::format("VM {} of keep-together group {} changed meanwhile ({}); "
                                      "try again",
                                      fresh->name, group, now.error().message));
      }
      const std::string message = fmt::format("from {} to {}{}{}", source->name, target->name,
                                              cold ? " (cold: stopped)" : "", with);
      VmDocument next = *now;  // a fresh copy each run
      auto task = create_task_in(tx, TaskKind::vm_migrate, "vm", fresh->id, message);
      if (!task) return tl::unexpected(task.error());
      next.migration.target_host_id = target->id;
      next.migration.task_id = task->id;
      next.migration.seq += 1;
      next.migration.max_bandwidth = options.max_bandwidth;
      next.migration.downtime_max_ms = options.downtime_max_ms;
      next.migration.tls = options.tls.value_or(migration_tls_);
      next.migration.auto_converge = options.auto_converge && !cold;
      next.migration.postcopy = options.postcopy && !cold;
      next.migration.cold = cold;
      fresh->spec = encode(next);
      auto updated = tx.update_vm(*fresh);
      if (!updated) return tl::unexpected(updated.error());
      auto ev =
          EventLog::append_in(tx, actor, "vm.migrate", "vm/" + updated->name, "ok", message);
      if (!ev) return tl::unexpected(ev.error());
      changes.push_back({*updated, *task});
      audits.push_back(*ev);
    }
    return {};
  });
  if (!st) return tl::unexpected(st.error());
  for (const auto& c : changes) placement_.record(c.vm);  // the reservations on the target
  placing.unlock();
  for (const auto& a : audits) events_.published(a);
  if (on_change_)
    for (const auto& c : changes) on_change_(c.vm.id);
  return changes.front();
}

Result<VmChange> VmService::cancel_migration(const std::string& name, const std::string& actor) {
  VmChange change;
  store::EventRecord audit;
  bool recorded = false;
  std::string phase, source_host;
  int64_t seq = 0;
  auto st = store_.transaction_retrying([&](store::Store& tx) -> Status {
    recorded = false;  // each run starts over
    change = {};
    auto vm = tx.get_vm_by_name(name);
    if (!vm) return tl::unexpected(vm.error());
    auto doc = decode_vm_document(vm->spec);
    if (!doc) return tl::unexpected(doc.error());
    if (!doc->migration.active())
      return make_error(ErrorCode::failed_precondition, "the VM is not migrating");
    phase = decode_vm_status(vm->status).migration.phase;
    if (phase == "switching")
      return make_error(ErrorCode::failed_precondition,
                        "the migration is switching over to the target: too late to cancel; "
                        "it completes");
    auto task = tx.get_task(doc->migration.task_id);
    if (!task) return tl::unexpected(task.error());
    source_host = vm->host_id.value_or("");
    seq = doc->migration.seq;
    change.task = *task;
    if (!doc->migration.cancelled_by.empty()) {  // asked before: the same answer
      change.vm = *vm;
      return {};
    }
    doc->migration.cancelled_by = actor;
    vm->spec = encode(*doc);
    auto updated = tx.update_vm(*vm);
    if (!updated) return tl::unexpected(updated.error());
    auto ev = EventLog::append_in(tx, actor, "vm.migrate_cancel", "vm/" + updated->name, "ok",
                                  "phase " + (phase.empty() ? std::string("pending") : phase));
    if (!ev) return tl::unexpected(ev.error());
    change.vm = *updated;
    audit = *ev;
    recorded = true;
    return {};
  });
  if (!st) return tl::unexpected(st.error());
  if (!recorded) return change;
  events_.published(audit);
  // While the memory copies the controller is inside the source's PerformMigration: stop
  // the copy there now (the same request id the controller's own cancel uses); the
  // controller then gives the target up and ends the task. Failing here only delays it.
  if (phase == "copying" && agents_ && !source_host.empty())
    if (auto client = agents_(source_host))
      (void)client->cancel_migration(fmt::format("{}:migrate:{}:cancel", change.vm.id, seq),
                                     change.vm.name);
  if (on_change_) on_change_(change.vm.id);
  return change;
}

}  // namespace strata::manager
