// Templates and clones in the manager (see vm_service.h): a template is a flag on the VM's
// document; a clone is a new VM record (clone_of: its source, pending while its disks are
// made) written with its task in one transaction, then made on the source's host by a
// worker (the agent's CloneVm) that follows a full copy's progress in the task.
#include <fmt/format.h>

#include <random>

#include "strata/common/log.h"
#include "strata/common/random.h"
#include "strata/manager/auth/tokens.h"
#include "strata/manager/tasks/task_tracker.h"
#include "strata/manager/vms/vm_service.h"
#include "strata/model/validation.h"

namespace strata::manager {

namespace {

// A full copy takes as long as the disks need; a linked clone is instant.
constexpr std::chrono::hours kCloneTimeout{6};

bool is_stopped_state(const std::string& s) {
  return s == "stopped" || s == "defined" || s == "crashed";
}

}  // namespace

Result<std::vector<std::string>> VmService::linked_clones_of(store::Store& tx,
                                                             const std::string& template_id) {
  auto all = tx.list_vms({});
  if (!all) return tl::unexpected(all.error());
  std::vector<std::string> out;
  for (const auto& vm : *all) {
    auto doc = decode_vm_document(vm.spec);
    if (doc && doc->clone_of.linked && doc->clone_of.source_id == template_id)
      out.push_back(vm.name);
  }
  return out;
}

Result<store::VmRecord> VmService::make_template(const std::string& name,
                                                 const std::string& actor) {
  store::VmRecord result;
  std::optional<store::EventRecord> audit;
  auto st = store_.transaction_retrying([&](store::Store& tx) -> Status {
    audit.reset();  // each run starts over
    auto vm = tx.get_vm_by_name(name);
    if (!vm) return tl::unexpected(vm.error());
    auto doc = decode_vm_document(vm->spec);
    if (!doc) return tl::unexpected(doc.error());
    if (doc->is_template) {  // already one: the same answer
      result = *vm;
      return {};
    }
    if (vm->deletion_requested)
      return make_error(ErrorCode::failed_precondition, "the VM is being deleted");
    if (doc->migration.active())
      return make_error(ErrorCode::failed_precondition, "the VM is migrating");
    if (doc->clone_of.pending)
      return make_error(ErrorCode::failed_precondition, "the VM's disks are still being cloned");
    if (!vm->host_id)
      return make_error(ErrorCode::failed_precondition, "the VM is not placed on a host yet");
    const std::string state = decode_vm_status(vm->status).state;
    if (vm->desired_state != "stopped" || !is_stopped_state(state))
      return make_error(ErrorCode::failed_precondition,
                        fmt::format("only a stopped VM becomes a template; VM {} is {} (stop it "
                                    "first: strata vm stop {} --wait)",
                                    name, state, name));
    doc->is_template = true;
    doc->ha = {};  // a template never runs, so never restarts elsewhere
    vm->spec = encode(*doc);
    auto updated = tx.update_vm(*vm);
    if (!updated) return tl::unexpected(updated.error());
    auto ev = EventLog::append_in(tx, actor, "vm.template", "vm/" + name, "ok");
    if (!ev) return tl::unexpected(ev.error());
    result = *updated;
    audit = *ev;
    return {};
  });
  if (!st) return tl::unexpected(st.error());
  if (audit) events_.published(*audit);
  return result;
}

Result<VmChange> VmService::clone(const std::string& source, const std::string& name,
                                  std::optional<bool> linked_option, const std::string& actor) {
  if (auto st = model::validate_name("name", name); !st) return tl::unexpected(st.error());
  if (!agents_) return make_error(ErrorCode::unavailable, "no agent connections");
  auto src = store_.get_vm_by_name(source);
  if (!src) return tl::unexpected(src.error());
  auto src_doc = decode_vm_document(src->spec);
  if (!src_doc) return tl::unexpected(src_doc.error());
  if (src->deletion_requested)
    return make_error(ErrorCode::failed_precondition, "VM " + source + " is being deleted");
  if (!src->host_id)
    return make_error(ErrorCode::failed_precondition,
                      "VM " + source + " is not placed on a host yet");
  if (src_doc->migration.active())
    return make_error(ErrorCode::failed_precondition, "VM " + source + " is migrating");
  if (src_doc->clone_of.pending)
    return make_error(ErrorCode::failed_precondition,
                      "VM " + source + " is itself still being cloned");
  for (const auto& d : src_doc->spec.disks)
    if (!d.datastore.empty())
      return make_error(ErrorCode::failed_precondition,
                        fmt::format("VM {} has disk {} on datastore {}: cloning datastore disks "
                                    "is not supported yet",
                                    source, d.name, d.datastore));
  const bool linked = linked_option.value_or(src_doc->is_template);
  if (linked && !src_doc->is_template)
    return make_error(ErrorCode::failed_precondition,
                      fmt::format("a linked clone reads its source's disks, which must never "
                                  "change again: make {} a template first (strata vm template "
                                  "{}) or clone it --full",
                                  source, source));
  if (!src_doc->is_template) {
    const std::string state = decode_vm_status(src->status).state;
    if (src->desired_state != "stopped" || !is_stopped_state(state))
      return make_error(ErrorCode::failed_precondition,
                        fmt::format("only a stopped VM is cloned; VM {} is {} (stop it first)",
                                    source, state));
  }
  auto host = store_.get_host(*src->host_id);
  if (!host) return tl::unexpected(host.error());

  // The clone: the source's spec under a new name, uuid and MACs.
  VmDocument doc;
  doc.spec = src_doc->spec;
  doc.spec.name = name;
  doc.spec.uuid.clear();
  for (auto& n : doc.spec.nics) n.mac.clear();
  // cloud-init: the clone is a new instance (new uuid = new instance-id); its host name is
  // its own VM name, not the source's.
  if (doc.spec.cloud_init) doc.spec.cloud_init->hostname.clear();
  auto completed = model::complete(doc.spec, &random_u64);
  if (!completed) return tl::unexpected(completed.error());
  doc.spec = std::move(*completed);
  doc.placement = src_doc->placement;
  doc.placement.host = host->name;  // where the source's disks are
  doc.clone_of = {src->id, src->name, linked, /*pending=*/true};
  // A full clone may move later (its disks are its own); a linked one stays pinned.
  VmDocument stored_doc = doc;
  if (!linked) stored_doc.placement.host = src_doc->placement.host;

  VmChange change;
  store::EventRecord audit;
  const std::string message =
      fmt::format("{} clone of {} on {}", linked ? "linked" : "full", source, host->name);
  auto name_free = [&]() -> Status {
    if (store_.get_vm_by_name(name))
      return make_error(ErrorCode::already_exists,
                        fmt::format("a VM named '{}' already exists", name), "name");
    return {};
  };
  auto write = [&](const store::HostRecord& chosen) -> Result<store::VmRecord> {
    auto st = store_.transaction([&](store::Store& tx) -> Status {
      store::VmRecord vm;
      vm.name = name;
      vm.labels = stored_doc.spec.labels;
      vm.host_id = chosen.id;
      vm.desired_state = "stopped";
      VmStatusDoc status;
      status.state = "cloning";
      vm.status = encode(status);
      vm.spec = encode(stored_doc);
      auto created = tx.create_vm(vm);
      if (!created) return tl::unexpected(created.error());
      auto task = create_task_in(tx, TaskKind::vm_clone, "vm", created->id, message);
      if (!task) return tl::unexpected(task.error());
      VmDocument with_task = stored_doc;
      with_task.control.task_id = task->id;
      created->spec = encode(with_task);
      auto updated = tx.update_vm(*created);
      if (!updated) return tl::unexpected(updated.error());
      auto ev = EventLog::append_in(tx, actor, "vm.clone", "vm/" + name, "ok", message);
      if (!ev) return tl::unexpected(ev.error());
      change = {*updated, *task};
      audit = *ev;
      return {};
    });
    if (!st) return tl::unexpected(st.error());
    return change.vm;
  };
  auto placed = placement_.place_and_write(doc, {}, write, name_free);
  if (!placed) return tl::unexpected(placed.error());
  events_.published(audit);
  workers_.start([this, host_id = host->id, source, vm_id = change.vm.id, linked,
                  task = change.task.id] { run_clone(host_id, source, vm_id, linked, task); });
  return change;
}

void VmService::drop_clone(const std::string& vm_id, bool only_pending) {
  for (int attempt = 0; attempt < 5; ++attempt) {
    auto vm = store_.get_vm(vm_id);
    if (!vm) return;
    auto doc = decode_vm_document(vm->spec);
    // Only the clone's own worker clears `pending`: a VM that is not pending was made.
    if (only_pending && (!doc || !doc->clone_of.pending)) return;
    if (doc) {
      doc->clone_of.pending = false;
      vm->spec = encode(*doc);
    }
    vm->deletion_requested = true;
    vm->deletion_requested_ms = unix_ms(*clock_);
    if (store_.update_vm(*vm)) break;
  }
  if (on_change_) on_change_(vm_id);
}

void VmService::abandon_clone(const store::TaskRecord& task) {
  if (task.kind != "vm.clone" || task.target_kind != "vm" || task.state != "failed") return;
  logger("manager.vms")
      ->warn("dropping the clone whose manager stopped vm_id={} task={}", task.target_id, task.id);
  drop_clone(task.target_id, /*only_pending=*/true);
}

void VmService::run_clone(std::string host_id, std::string source, std::string vm_id, bool linked,
                          std::string task_id) {
  auto lease = RunningTasks::enter(running_, TaskKind::vm_clone, task_id);
  TaskTracker tasks(store_);
  // A clone that cannot be made is removed again (the controller undoes whatever the host
  // made), and its task says why.
  auto give_up = [&](const std::string& why) {
    (void)tasks.fail(task_id, "clone failed: " + why);
    drop_clone(vm_id, /*only_pending=*/false);
  };
  auto vm = store_.get_vm(vm_id);
  if (!vm) return give_up(vm.error().message);
  auto doc = decode_vm_document(vm->spec);
  if (!doc) return give_up(doc.error().message);
  (void)tasks.update(task_id, "running", 0,
                     fmt::format("{} clone of {}: making the disks", linked ? "linked" : "full",
                                 source));
  AgentClientPtr client = agents_(host_id);
  if (!client) return give_up("the source's host is not connected");
  model::VmSpec spec = doc->spec;
  spec.labels[kVmIdLabel] = vm_id;
  int last_pct = -1;
  auto made = client->clone_vm(task_id, source, spec, linked, kCloneTimeout,
                               [&](uint64_t done, uint64_t total) {
                                 if (total == 0) return;
                                 int pct = static_cast<int>(std::min<uint64_t>(done, total) * 99 /
                                                            total);
                                 if (pct == last_pct) return;
                                 last_pct = pct;
                                 (void)tasks.update(task_id, "running", pct,
                                                    fmt::format("copying the disks of {}: {}%",
                                                                source, pct));
                               });
  if (!made) return give_up(made.error().message);

  // The clone exists on the host: record its disks as they are (no base image, the
  // source's sizes) and hand the VM to the controller.
  std::string state = "defined";
  for (int attempt = 0; attempt < 5; ++attempt) {
    auto fresh = store_.get_vm(vm_id);
    if (!fresh) return;  // deleted meanwhile: the controller undefines it on the host
    auto d = decode_vm_document(fresh->spec);
    if (!d) return give_up(d.error().message);
    d->clone_of.pending = false;
    for (const auto& pd : made->spec().disks())
      for (auto& disk : d->spec.disks)
        if (disk.name == pd.name()) {
          disk.base_image = pd.base_image();
          disk.size_bytes = pd.size_bytes();
        }
    fresh->spec = encode(*d);
    VmStatusDoc st = decode_vm_status(fresh->status);
    st.state = state;
    st.agent_state = state;
    st.last_error.clear();
    fresh->status = encode(st);
    if (store_.update_vm(*fresh)) break;
  }
  (void)tasks.update(task_id, "succeeded", 100,
                     fmt::format("{} clone of {} made", linked ? "linked" : "full", source),
                     nlohmann::json{{"vm", vm->name}, {"source", source}, {"linked", linked}});
  if (on_change_) on_change_(vm_id);
}

}  // namespace strata::manager
