// One reconcile pass for one VM: desired state in the store vs the agent's view.
#include <fmt/format.h>

#include "strata/common/log.h"
#include "strata/manager/auth/tokens.h"
#include "strata/manager/controllers/vm_controller.h"
#include "strata/manager/controllers/vm_decision.h"

namespace strata::manager {

namespace {

bool is_active(const std::string& s) {
  return s == "running" || s == "paused" || s == "starting" || s == "shutting_down";
}
bool is_retryable(const Error& e) {
  return e.code == ErrorCode::unavailable || e.code == ErrorCode::deadline_exceeded ||
         e.code == ErrorCode::internal || e.code == ErrorCode::conflict;
}
std::string rid(const store::VmRecord& vm, std::string_view op, int64_t gen) {
  return fmt::format("{}:{}:{}", vm.id, op, gen);
}

}  // namespace

VmController::Outcome VmController::reconcile_vm(const std::string& vm_id) {
  auto log = logger("manager.controller");
  {
    // A migration thread owns the VM until its pass ends; it queues the VM then.
    std::lock_guard lock(migration_mu_);
    if (migration_threads_.count(vm_id)) return Outcome::handed_off;
  }
  auto vm = store_.get_vm(vm_id);
  if (!vm) {
    if (vm.error().code != ErrorCode::not_found) return Outcome::retry;
    forget_queued_migration(vm_id);
    return Outcome::done;
  }
  auto doc = decode_vm_document(vm->spec);
  if (!doc) {
    log->error("vm document unreadable vm={} error={}", vm->name, doc.error().to_string());
    return Outcome::done;
  }
  if (!doc->migration.active() || vm->deletion_requested) forget_queued_migration(vm_id);
  const int64_t gen = doc->control.generation;
  const std::string task_id = doc->control.task_id;

  // Writes the status (CAS-retried against concurrent API edits of the record), unless it
  // is what the record holds already and this process recorded it before (observed_).
  // `also` runs in the same transaction (the task the status ends); true when it ran.
  auto write_status = [&](const std::function<void(VmStatusDoc&)>& fn,
                          const std::function<Status(store::Store&)>& also = {}) -> bool {
    for (int attempt = 0; attempt < 5; ++attempt) {
      VmStatusDoc st = decode_vm_status(vm->status);
      VmStatusDoc was = st;
      fn(st);
      // What a pass observes, apart from when: the observation and the guest facts' read
      // times do not make a write (they would every pass).
      VmStatusDoc a = st, b = was;
      a.observed_ms = b.observed_ms = 0;
      if (a.guest && b.guest) a.guest->updated_unix_ms = b.guest->updated_unix_ms = 0;
      if (encode(a) == encode(b) && observed_before(vm_id)) return false;
      st.observed_ms = unix_ms(*clock_);
      vm->status = encode(st);
      Result<store::VmRecord> u = *vm;
      if (also) {
        auto done = store_.transaction([&](store::Store& tx) -> Status {
          u = tx.update_vm(*vm);
          if (!u) return tl::unexpected(u.error());
          return also(tx);
        });
        if (!done && u) u = tl::unexpected(done.error());
      } else {
        u = store_.update_vm(*vm);
      }
      if (u) {
        *vm = *u;
        mark_observed(vm_id, true);
        return static_cast<bool>(also);
      }
      if (u.error().code != ErrorCode::conflict) return false;
      auto fresh = store_.get_vm(vm_id);
      if (!fresh) return false;
      *vm = *fresh;
    }
    return false;
  };
  auto fail_task = [&](const std::string& msg) {
    if (!task_id.empty()) tasks_.fail(task_id, msg);
  };
  // The record and its delete task go in one transaction: a manager killed between two
  // commits left a pending task for a VM that no longer exists (seen in the crash e2e).
  auto delete_record = [&]() -> bool {
    auto st = store_.transaction([&](store::Store& tx) -> Status {
      if (auto d = tx.delete_vm(vm->id, std::nullopt); !d) return d;
      if (!task_id.empty())
        if (auto t = succeed_task_in(tx, task_id, "deleted"); !t) return t;
      // Any other unfinished task of this VM (a create or start the delete overtook) can
      // never finish now: it ends here, with the record, instead of staying pending.
      store::TaskListOptions o;
      o.target_id = vm->id;
      auto open = tx.list_tasks(o);
      if (!open) return tl::unexpected(open.error());
      for (auto t : *open) {
        if (task_is_terminal(t.state)) continue;
        t.state = "failed";
        t.progress = 100;
        t.message = "the VM was deleted";
        if (auto u = tx.update_task(t); !u) return tl::unexpected(u.error());
      }
      return {};
    });
    return static_cast<bool>(st);
  };
  auto retry_with = [&](const std::string& state, const std::string& msg) {
    write_status([&](VmStatusDoc& st) {
      if (!state.empty()) st.state = state;
      st.last_error = msg;
    });
    if (!task_id.empty()) tasks_.update(task_id, "running", 10, "waiting: " + msg);
    return Outcome::retry;
  };

  // Not placed yet (or its host was deleted): schedule.
  if (!vm->host_id) {
    if (vm->deletion_requested) {
      if (!delete_record()) return Outcome::retry;
      mark_observed(vm_id, false);
      placement_.forget(vm->id);
      events_.append("controller:vm", "vm.deleted", "vm/" + vm->name, "ok");
      return Outcome::done;
    }
    // The same placement path as the VM service's create (placement.h).
    bool chosen = false;
    auto placed = placement_.place_and_write(
        *doc, vm->id, [&](const store::HostRecord& host) -> Result<store::VmRecord> {
          chosen = true;
          store::VmRecord next = *vm;
          next.host_id = host.id;
          return store_.update_vm(next);
        });
    if (!placed) return chosen ? Outcome::retry : retry_with("pending", placed.error().message);
    *vm = *placed;
  }
  // A clone whose disks are being made belongs to the clone worker until it ends
  // (vms/vm_clones.cc); it tells the controller then. A delete waits for it the same way
  // (the host answers "being defined" until the clone is there).
  if (doc->clone_of.pending && !vm->deletion_requested) return Outcome::done;
  // A live migration in progress owns the VM until it ends (vm_migration.cc).
  if (doc->migration.active() && !vm->deletion_requested) return dispatch_migration(*vm, *doc);

  const std::string host_id = *vm->host_id;
  auto client = agents_.client(host_id);
  Liveness live = agents_.liveness(host_id);
  if (!client || live != Liveness::up) {
    return retry_with(live == Liveness::unreachable ? "unknown" : "",
                      live == Liveness::unreachable ? "host unreachable"
                                                    : "waiting for the host to connect");
  }

  // The guest CPU this host should run the VM with: the spec's, else the host's cluster
  // baseline ("" when there is none: the host's own default). Sent at define and at each
  // start, so a stopped VM adopts a new baseline when it next starts.
  std::string cpu_model = doc->spec.cpu_model;
  if (cpu_model.empty() && clusters_) {
    auto host = store_.get_host(host_id);
    if (!host) return retry_with("", host.error().message);
    auto m = clusters_->cpu_model_for(*host);
    if (!m) return retry_with("", m.error().message);
    cpu_model = *m;
  }

  auto agent_vm = client->get_vm(vm->name);
  if (!agent_vm && agent_vm.error().code != ErrorCode::not_found)
    return is_retryable(agent_vm.error()) ? retry_with("", agent_vm.error().message)
                                          : Outcome::retry;
  std::string agent_state =
      agent_vm ? vm_state_name(agent_vm->state()) : std::string("absent");

  // Deletion: force off, undefine, drop the record.
  if (vm->deletion_requested) {
    if (agent_vm) {
      if (is_active(agent_state)) {
        auto off = client->force_off_vm(rid(*vm, "delete-off", gen), vm->name);
        if (!off) return retry_with("deleting", off.error().message);
      }
      auto undef = client->undefine_vm(rid(*vm, "delete", gen), vm->name,
                                        /*delete_shared_disks=*/true);
      if (!undef && undef.error().code != ErrorCode::not_found)
        return retry_with("deleting", undef.error().message);
    }
    if (!delete_record()) return Outcome::retry;
    mark_observed(vm_id, false);
    placement_.forget(vm->id);
    events_.append("controller:vm", "vm.deleted", "vm/" + vm->name, "ok");
    return Outcome::done;
  }

  // Define where missing (the label lets a restarted manager adopt it later).
  if (!agent_vm) {
    model::VmSpec spec = doc->spec;
    spec.labels[kVmIdLabel] = vm->id;
    spec.cpu_model = cpu_model;
    if (images_) {
      auto ensured = images_->ensure(host_id, *client, doc->spec, [&](const std::string& msg) {
        if (!task_id.empty()) tasks_.update(task_id, "running", 20, msg);
      });
      if (!ensured) {
        if (is_retryable(ensured.error())) return retry_with("", ensured.error().message);
        write_status([&](VmStatusDoc& st) {
          st.state = "error";
          st.last_error = ensured.error().message;
        });
        fail_task("image distribution failed: " + ensured.error().message);
        return Outcome::done;
      }
    }
    if (auto host = store_.get_host(host_id); host)
      if (auto hw = check_host_hardware(spec, *host); !hw) {
        write_status([&](VmStatusDoc& st) {
          st.state = "error";
          st.last_error = hw.error().message;
        });
        fail_task("define failed: " + hw.error().message);
        return Outcome::done;
      }
    // No progress write for the define itself: it is quick (image copies, the slow part,
    // report their own), and a create storm paid a commit per VM for it.
    auto defined = client->define_vm(rid(*vm, "define", gen), spec);
    if (!defined) {
      if (is_retryable(defined.error())) return retry_with("", defined.error().message);
      write_status([&](VmStatusDoc& st) {
        st.state = "error";
        st.last_error = defined.error().message;
      });
      fail_task("define failed: " + defined.error().message);
      return Outcome::done;
    }
    agent_vm = *defined;
    agent_state = vm_state_name(agent_vm->state());
  }

  // Drive towards the desired state (the decision is pure: vm_decision.h).
  Result<pb::VmStatus> acted = *agent_vm;
  const VmAction action =
      decide_vm_action(vm->desired_state, *doc, decode_vm_status(vm->status), agent_state);
  switch (action) {
    case VmAction::none: break;
    case VmAction::start:
      if (!task_id.empty()) tasks_.update(task_id, "running", 60, "starting");
      acted = client->start_vm(rid(*vm, "start", gen), vm->name, cpu_model);
      break;
    case VmAction::pause: acted = client->pause_vm(rid(*vm, "pause", gen), vm->name); break;
    case VmAction::resume: acted = client->resume_vm(rid(*vm, "resume", gen), vm->name); break;
    case VmAction::reboot: acted = client->reboot_vm(rid(*vm, "reboot", gen), vm->name); break;
    case VmAction::force_off:
    case VmAction::shutdown:
      if (!task_id.empty()) tasks_.update(task_id, "running", 50, "stopping");
      acted = action == VmAction::force_off
                  ? client->force_off_vm(rid(*vm, "stop", gen), vm->name)
                  : client->shutdown_vm(rid(*vm, "stop", gen), vm->name,
                                        doc->control.stop_timeout_s * 1000);
      break;
  }
  // Started for an intent that wants it paused: pause right after.
  if (acted && vm->desired_state == "running" && doc->control.paused &&
      vm_state_name(acted->state()) == "running")
    acted = client->pause_vm(rid(*vm, "pause", gen), vm->name);
  if (!acted) {
    if (is_retryable(acted.error())) return retry_with("", acted.error().message);
    write_status([&](VmStatusDoc& st) {
      st.state = "error";
      st.last_error = acted.error().message;
    });
    fail_task(acted.error().message);
    events_.append("controller:vm", "vm.reconcile", "vm/" + vm->name, "error",
                   acted.error().message);
    return Outcome::done;
  }

  // Record what we observed; a concurrent new intent (generation) gets its own pass.
  std::string observed = vm_state_name(acted->state());
  // The guest's facts as its host agent last read them (none once the VM stops).
  std::optional<model::GuestFacts> guest = guest_facts_of(*acted);
  std::optional<std::string> guest_change;
  // The status and the task it ends commit together (one transaction, not two).
  const std::string done_message = "vm is " + observed;
  std::function<Status(store::Store&)> end_task;
  if (!task_id.empty())
    end_task = [&](store::Store& tx) { return succeed_task_in(tx, task_id, done_message); };
  const bool task_ended = write_status(
      [&](VmStatusDoc& st) {
        st.state = observed;
        st.agent_state = observed;
        st.last_error.clear();
        st.applied_generation = std::max(st.applied_generation, gen);
        guest_change = guest_facts_change(st.guest, guest);
        st.guest = guest;
        st.cpu_model = acted->cpu_model();
      },
      end_task);
  // Said only when what the guest reports changed (not at each read): live pages reload.
  if (guest_change)
    events_.append("controller:vm", "vm.guest", "vm/" + vm->name, "ok", *guest_change);
  if (!task_id.empty() && !task_ended) tasks_.succeed(task_id, done_message);
  if (auto fresh = decode_vm_document(vm->spec); fresh && fresh->control.generation != gen)
    return Outcome::retry;
  return Outcome::done;
}

bool VmController::observed_before(const std::string& vm_id) {
  std::lock_guard lock(observed_mu_);
  return observed_.count(vm_id) > 0;
}

void VmController::mark_observed(const std::string& vm_id, bool observed) {
  std::lock_guard lock(observed_mu_);
  if (observed)
    observed_.insert(vm_id);
  else
    observed_.erase(vm_id);
}

}  // namespace strata::manager
