// The live migration pass of the VM controller: drives libvirt's phases across the two
// agents (begin + prepare, perform, finish, confirm) and records each phase in the VM's
// status before the step it names, so a manager killed at any point resumes from the
// record (docs/internals/migration.md):
//   preparing  -> on failure: abort the target; the VM never left the source
//   copying    -> follow the source's job again (same request id); on failure the source
//                 undid everything (the VM runs there): abort the target
//   switching  -> written once the source completed, before the target resumes: from here
//                 the migration only goes forward (resume the target, remove the source),
//                 so the guest never runs on both hosts, and never on neither for longer
//                 than the switch.
#include <arpa/inet.h>

#include <fmt/format.h>

#include "strata/common/log.h"
#include "strata/manager/auth/tokens.h"
#include "strata/manager/controllers/vm_controller.h"

namespace strata::manager {

namespace {

using namespace std::chrono_literals;

bool retryable(const Error& e) {
  return e.code == ErrorCode::unavailable || e.code == ErrorCode::deadline_exceeded ||
         e.code == ErrorCode::internal || e.code == ErrorCode::conflict;
}

// The IP literal of an agent's address, where its QEMU listens for the migration stream:
// "10.0.0.5:7443" -> "10.0.0.5", "[fd00::5]:7443" -> "fd00::5", "unix:..." -> 127.0.0.1.
Result<std::string> listen_host_of(const std::string& address) {
  if (address.rfind("unix:", 0) == 0) return std::string("127.0.0.1");
  std::string host = address;
  if (!host.empty() && host.front() == '[') {
    auto end = host.find(']');
    if (end == std::string::npos) return invalid_argument("address", "bad host address");
    host = host.substr(1, end - 1);
  } else if (auto colon = host.rfind(':'); colon != std::string::npos &&
                                           host.find(':') == colon) {
    host = host.substr(0, colon);
  }
  in_addr a4{};
  in6_addr a6{};
  if (inet_pton(AF_INET, host.c_str(), &a4) != 1 && inet_pton(AF_INET6, host.c_str(), &a6) != 1)
    return make_error(ErrorCode::failed_precondition,
                      fmt::format("the target's address {} is not an IP address", address));
  return host;
}

// How many times a broken post-copy stream is recovered before the guest is given up.
constexpr int64_t kMaxPostcopyRecoveries = 5;
// How many times a prepare that finds an earlier attempt's incoming VM is asked again.
constexpr int kMaxPrepareAttempts = 3;

// ConfirmMigration's answer when the post-copy stream broke with both QEMUs alive (both
// postcopy-paused, QemuHypervisor::confirm_out): unavailable, naming the stream.
bool postcopy_stream_broken(const Error& e) {
  return e.code == ErrorCode::unavailable &&
         e.message.find("post-copy stream") != std::string::npos;
}

int progress_percent(const pb::MigrationProgress& p) {
  if (p.phase() == "mirror")
    return 10 + (p.disk_total() ? int(30 * p.disk_done() / p.disk_total()) : 0);
  if (p.phase() == "ram") {
    uint64_t all = p.ram_transferred() + p.ram_remaining();
    return 40 + (all ? int(50 * p.ram_transferred() / all) : 0);
  }
  return 90;
}

std::string progress_message(const pb::MigrationProgress& p) {
  if (p.phase() == "mirror")
    return fmt::format("copying disks: {} of {} MiB", p.disk_done() >> 20, p.disk_total() >> 20);
  if (p.phase() == "ram")
    return fmt::format("copying memory: {} MiB sent, {} MiB left, pass {}, {:.0f} Mbit/s, "
                       "downtime limit {} ms{}",
                       p.ram_transferred() >> 20, p.ram_remaining() >> 20, p.passes(), p.mbps(),
                       p.downtime_limit_ms(),
                       p.cpu_throttle_percent() > 0
                           ? fmt::format(", guest vCPUs throttled {} %", p.cpu_throttle_percent())
                           : std::string());
  return "switching over";
}

}  // namespace

VmController::Outcome VmController::dispatch_migration(const store::VmRecord& vm,
                                                       const VmDocument& doc) {
  const bool resumed = !decode_vm_status(vm.status).migration.phase.empty();
  // Cancelled before it started: it ends now, without waiting for a slot.
  if (!resumed && !doc.migration.cancelled_by.empty()) {
    forget_queued_migration(vm.id);
    store::VmRecord v = vm;
    return migrate_vm(v, doc);
  }
  auto host = [&](const std::string& id) {
    auto h = store_.get_host(id);
    return MigrationSlots::Host{id, h ? h->name : id};
  };
  const MigrationSlots::Host source = host(*vm.host_id);
  const MigrationSlots::Host target = host(doc.migration.target_host_id);
  MigrationSlots::Admission admission;
  std::vector<std::thread> finished;
  {
    std::lock_guard lock(migration_mu_);
    finished.swap(finished_migrations_);
    admission = migration_slots_.admit(vm.id, source, target, resumed);
    if (admission.started && !migration_threads_.count(vm.id))
      migration_threads_.emplace(vm.id, std::thread([this, id = vm.id] { run_migration(id); }));
  }
  for (auto& t : finished) t.join();  // threads that already ended: returns at once
  if (admission.started) return Outcome::handed_off;
  if (!doc.migration.task_id.empty())
    tasks_.update(doc.migration.task_id, "pending", 0, admission.reason);
  // It waits: the migration that frees its slot queues it (run_migration), and the
  // resync covers a manager restart.
  return Outcome::done;
}

void VmController::forget_queued_migration(const std::string& vm_id) {
  std::vector<std::string> ready;
  {
    std::lock_guard lock(migration_mu_);
    if (!migration_slots_.waiting(vm_id)) return;
    ready = migration_slots_.release(vm_id);
  }
  for (const auto& id : ready) enqueue_vm(id);
}

void VmController::run_migration(const std::string& vm_id) {
  Outcome outcome = Outcome::done;
  if (auto vm = store_.get_vm(vm_id)) {
    auto doc = decode_vm_document(vm->spec);
    if (doc && doc->migration.active()) outcome = migrate_vm(*vm, *doc);
  } else if (vm.error().code != ErrorCode::not_found) {
    outcome = Outcome::retry;
  }
  std::vector<std::string> ready;
  {
    std::lock_guard lock(migration_mu_);
    if (auto it = migration_threads_.find(vm_id); it != migration_threads_.end()) {
      finished_migrations_.push_back(std::move(it->second));
      migration_threads_.erase(it);
    }
    ready = migration_slots_.release(vm_id);
  }
  for (const auto& id : ready) enqueue_vm(id);
  if (outcome == Outcome::retry) {
    requeue_later("vm:" + vm_id);
  } else {
    {
      std::lock_guard lock(mu_);
      attempts_.erase("vm:" + vm_id);
    }
    enqueue_vm(vm_id);  // the ordinary pass confirms the VM where it now runs
  }
}

VmController::Outcome VmController::migrate_vm(store::VmRecord& vm, const VmDocument& doc) {
  auto log = logger("manager.controller");
  const VmMigration& m = doc.migration;
  const std::string base = fmt::format("{}:migrate:{}", vm.id, m.seq);
  const std::string source_id = *vm.host_id;

  // Who asked to cancel this migration, as the record (vm, kept fresh) says; empty: nobody.
  auto cancelled_by = [&]() -> std::string {
    auto d = decode_vm_document(vm.spec);
    return d ? d->migration.cancelled_by : std::string();
  };
  // Writes the status (CAS-retried). With unless_cancelled, a cancel recorded meanwhile
  // wins: nothing is written and false is returned (the switch-over decision and a cancel
  // exclude each other: exactly one of them is in the record).
  auto write_status = [&](const std::function<void(VmStatusDoc&)>& fn,
                          bool unless_cancelled = false) -> bool {
    for (int attempt = 0; attempt < 5; ++attempt) {
      if (unless_cancelled && !cancelled_by().empty()) return false;
      VmStatusDoc st = decode_vm_status(vm.status);
      fn(st);
      st.observed_ms = unix_ms(*clock_);
      vm.status = encode(st);
      auto u = store_.update_vm(vm);
      if (u) {
        vm = *u;
        return true;
      }
      if (u.error().code != ErrorCode::conflict) return false;
      auto fresh = store_.get_vm(vm.id);
      if (!fresh) return false;
      vm = *fresh;
    }
    return false;
  };
  auto task = [&](int percent, const std::string& msg) {
    if (!m.task_id.empty()) tasks_.update(m.task_id, "running", percent, msg);
  };
  // Ends the migration: the VM stays on (or moves to) `host_id`; the task ends with it. A
  // live migration that succeeded leaves the VM running; a cold one leaves its state.
  auto end = [&](const std::string& host_id, bool ok, const std::string& message,
                 const nlohmann::json& result) -> Outcome {
    auto st = store_.transaction_retrying([&](store::Store& tx) -> Status {
      auto fresh = tx.get_vm(vm.id);
      if (!fresh) return tl::unexpected(fresh.error());
      auto d = decode_vm_document(fresh->spec);
      if (!d) return tl::unexpected(d.error());
      d->migration.target_host_id.clear();
      d->migration.task_id.clear();
      d->migration.cancelled_by.clear();
      fresh->spec = encode(*d);
      fresh->host_id = host_id;
      VmStatusDoc s = decode_vm_status(fresh->status);
      s.migration = {};
      if (ok && !m.cold) {
        s.state = s.agent_state = "running";
        s.last_error.clear();
      } else if (ok) {
        s.last_error.clear();
      } else {
        s.last_error = message;
      }
      s.observed_ms = unix_ms(*clock_);
      fresh->status = encode(s);
      auto u = tx.update_vm(*fresh);
      if (!u) return tl::unexpected(u.error());
      if (!m.task_id.empty()) {
        auto t = tx.get_task(m.task_id);
        if (t && !task_is_terminal(t->state)) {
          t->state = ok ? "succeeded" : "failed";
          t->progress = 100;
          t->message = message;
          t->result = result.dump();
          if (auto w = tx.update_task(*t); !w) return tl::unexpected(w.error());
        }
      }
      vm = *u;
      return {};
    });
    if (!st) {
      log->warn("migration end not recorded vm={} error={}", vm.name, st.error().to_string());
      return Outcome::retry;
    }
    placement_.record(vm);
    events_.append("controller:vm", "vm.migrate", "vm/" + vm.name, ok ? "ok" : "error", message);
    log->info("migration ended vm={} ok={} {}", vm.name, ok, message);
    return Outcome::done;
  };

  // A live migration cancelled before its first step was recorded: neither host was asked
  // anything yet, so it ends now, without them. Otherwise a migration waiting for a target
  // that never comes back ("waiting for both hosts to be connected") could not be
  // cancelled at all.
  if (!m.cold && !cancelled_by().empty() && decode_vm_status(vm.status).migration.phase.empty())
    return end(source_id, false, "cancelled by " + cancelled_by() + "; the VM runs on its host",
               nlohmann::json::object());

  auto source = agents_.client(source_id);
  auto target = agents_.client(m.target_host_id);
  auto target_host = store_.get_host(m.target_host_id);
  if (!target_host) {
    if (target_host.error().code != ErrorCode::not_found) return Outcome::retry;
    // The target was deleted before the switch: the VM is (still) on the source.
    if (decode_vm_status(vm.status).migration.phase == "switching") return Outcome::retry;
    if (source) (void)source->cancel_migration(base + ":cancel", vm.name);
    return end(source_id, false, "the target host was deleted", nlohmann::json::object());
  }
  if (!source || !target || agents_.liveness(source_id) != Liveness::up ||
      agents_.liveness(m.target_host_id) != Liveness::up) {
    task(5, "waiting for both hosts to be connected");
    return Outcome::retry;
  }

  if (m.cold) {
    // Cold: the target defines the stopped VM (its catalog images first), its local disks
    // are copied (datastore disks, shared, are not), the record moves, the source
    // undefines it (keeping the datastore disks). Each step is idempotent by its request
    // id: a pass that was cut short (a manager restart) runs again from the top.
    if (!cancelled_by().empty()) {
      (void)target->undefine_vm(base + ":abort", vm.name);
      return end(source_id, false, "cancelled by " + cancelled_by() + "; the VM stays on its host",
                 nlohmann::json::object());
    }
    task(10, "defining on " + target_host->name);
    if (images_) {
      auto ensured = images_->ensure(m.target_host_id, *target, doc.spec,
                                     [&](const std::string& msg) { task(10, msg); });
      if (!ensured) {
        if (retryable(ensured.error())) return Outcome::retry;
        return end(source_id, false, "cold migration failed: " + ensured.error().message,
                   nlohmann::json::object());
      }
    }
    model::VmSpec spec = doc.spec;
    spec.labels[kVmIdLabel] = vm.id;
    if (auto defined = target->define_vm(base + ":define", spec); !defined) {
      if (retryable(defined.error())) return Outcome::retry;
      return end(source_id, false, "cold migration failed: " + defined.error().message,
                 nlohmann::json::object());
    }
    // Local disks: each one's file, as it is on the source (an overlay on a catalog image
    // the target now has too, or a blank disk), replaces the fresh disk the define made.
    uint64_t copied_bytes = 0;
    int copied_disks = 0;
    for (const auto& d : spec.disks) {
      if (!d.datastore.empty()) continue;
      task(20, fmt::format("copying disk {} to {}", d.name, target_host->name));
      auto last = std::chrono::steady_clock::now();
      auto copied = source->copy_disk_to(
          *target, base + ":disk:" + d.name, vm.name, d.name, [&](uint64_t done, uint64_t size) {
            auto now = std::chrono::steady_clock::now();
            if (now - last < 1s) return;
            last = now;
            task(20 + (size ? int(60 * std::min(done, size) / size) : 0),
                 fmt::format("copying disk {} to {}: {} of {} MiB", d.name, target_host->name,
                             done >> 20, size >> 20));
          });
      if (!copied) {
        if (retryable(copied.error())) return Outcome::retry;
        (void)target->undefine_vm(base + ":abort", vm.name);
        return end(source_id, false,
                   fmt::format("cold migration failed: disk {}: {}", d.name,
                               copied.error().message),
                   nlohmann::json::object());
      }
      copied_bytes += *copied;
      ++copied_disks;
    }
    // A UEFI VM's variables (its NVRAM: boot entries, settings) are a file on the source
    // host: copied over the fresh template copy the target's define made.
    if (spec.firmware == model::Firmware::uefi) {
      task(60, "copying the UEFI variables to " + target_host->name);
      auto vars = source->read_uefi_vars(vm.name);
      Status copied = vars ? target->write_uefi_vars(base + ":uefi-vars", vm.name, *vars)
                           : Status(tl::unexpected(vars.error()));
      if (!copied) {
        if (retryable(copied.error())) return Outcome::retry;
        (void)target->undefine_vm(base + ":abort", vm.name);
        return end(source_id, false,
                   "cold migration failed: UEFI variables: " + copied.error().message,
                   nlohmann::json::object());
      }
    }
    const Outcome ended =
        end(m.target_host_id, true,
            copied_disks == 0
                ? fmt::format("moved to {} (cold: the VM is stopped and its disks are on shared "
                              "storage)",
                              target_host->name)
                : fmt::format("moved to {} (cold: the VM is stopped; {} local disk{} copied, "
                              "{} MiB)",
                              target_host->name, copied_disks, copied_disks == 1 ? "" : "s",
                              (copied_bytes + (1 << 20) - 1) >> 20),
            nlohmann::json{{"from_host", source_id},
                           {"to_host", m.target_host_id},
                           {"to_host_name", target_host->name},
                           {"cold", true},
                           {"disks_copied", copied_disks},
                           {"bytes_copied", copied_bytes}});
    if (ended != Outcome::done) return ended;
    if (auto u = source->undefine_vm(base + ":undefine", vm.name, /*delete_shared_disks=*/false);
        !u && u.error().code != ErrorCode::not_found) {
      log->warn("cold migration: undefine on the source failed vm={} error={} (removed by the "
                "source host's reconcile)",
                vm.name, u.error().to_string());
      requeue_later("host:" + source_id);
    }
    return Outcome::done;
  }

  VmMigrationStatus ms = decode_vm_status(vm.status).migration;
  // The target is given up (before the switch only): the source keeps or takes back the VM.
  auto give_up = [&](const Error& why) -> Outcome {
    // Past a post-copy switch-over the source refuses (conflict): its CPU state left, and
    // QEMU will not resume it. The target holds only part of the memory and no recovery
    // (migrate-recover) is driven yet, so the guest is lost: the task must say so, not
    // "the VM runs on its host". The target is aborted as usual (the target host's
    // reconcile would remove its copy anyway: the record stays on the source).
    bool lost = false;
    if (auto c = source->cancel_migration(base + ":cancel", vm.name); !c) {
      if (c.error().code == ErrorCode::unavailable) return Outcome::retry;  // job still runs
      lost = c.error().code == ErrorCode::conflict;
      if (lost)
        log->error("migration failed after the post-copy switch-over vm={} error={}", vm.name,
                   why.to_string());
      else
        log->warn("migration cancel on the source failed vm={} error={}", vm.name,
                  c.error().to_string());
    }
    if (auto a = target->abort_migration(base + ":abort", vm.name); !a && retryable(a.error()))
      return Outcome::retry;
    if (lost)
      return end(source_id, false,
                 "migration failed after the post-copy switch-over began: " + why.message +
                     "; the guest is lost (it cannot resume on its host, its QEMU stays paused)",
                 nlohmann::json::object());
    if (auto fresh = store_.get_vm(vm.id)) vm = *fresh;
    const std::string by = cancelled_by();
    return end(source_id, false,
               by.empty() ? "migration failed: " + why.message + "; the VM runs on its host"
                          : "cancelled by " + by + "; the VM runs on its host",
               nlohmann::json::object());
  };
  const Error cancelled{ErrorCode::failed_precondition, "cancelled", {}};
  if (!cancelled_by().empty() && ms.phase != "switching") return give_up(cancelled);
  // Where the time goes, step by step (this pass only; a resumed migration times what it
  // still does): in the task's result as phases_ms, and in the log.
  nlohmann::json phases = nlohmann::json::object();
  auto lap_at = clock_->now();
  auto lap = [&](const char* step) {
    const auto now = clock_->now();
    phases[step] = std::chrono::duration_cast<std::chrono::milliseconds>(now - lap_at).count();
    lap_at = now;
  };

  if (ms.phase.empty() || ms.phase == "preparing") {
    if (ms.phase.empty() && !write_status([](VmStatusDoc& s) { s.migration.phase = "preparing"; }))
      return Outcome::retry;
    task(5, "preparing the target " + target_host->name);
    lap("record_preparing");
    auto begin = source->begin_migration(vm.name);
    if (!begin) return retryable(begin.error()) ? Outcome::retry : give_up(begin.error());
    lap("begin");
    // The target defines the VM from the same catalog images (kernel, initrd, the disks'
    // bases): they are copied there first, as before a VM is defined on a host.
    if (images_) {
      auto ensured = images_->ensure(m.target_host_id, *target, doc.spec,
                                     [&](const std::string& msg) { task(5, msg); });
      if (!ensured) return retryable(ensured.error()) ? Outcome::retry : give_up(ensured.error());
      lap("images");
    }
    auto listen = listen_host_of(target_host->address);
    if (!listen) return give_up(listen.error());
    auto prepared =
        target->prepare_migration(base + ":prepare", *begin, *listen, m.tls, m.postcopy);
    // A target agent that died while it prepared (its QEMU listening, its answer lost with
    // the process) leaves that incoming VM behind, and its new process answers the retry
    // `already_exists`. The leftover is aborted (the agent aborts only a VM that migrates
    // in: a VM of that name that runs there stays, and the migration fails on it) and the
    // prepare asked again under a new id. The agent remembers every answer under its id,
    // so a manager that restarts replays the same sequence and reaches the same prepared
    // VM; an attempt that dies too moves on to the next, at most kMaxPrepareAttempts.
    for (int k = 1; !prepared && prepared.error().code == ErrorCode::already_exists &&
                    k <= kMaxPrepareAttempts;
         ++k) {
      log->warn("migration target holds an incoming VM already vm={} attempt={} error={}", vm.name,
                k, prepared.error().to_string());
      const std::string id = fmt::format("{}:prepare:{}", base, k);
      if (auto a = target->abort_migration(id + ":abort", vm.name); !a) {
        if (retryable(a.error())) return Outcome::retry;
        break;  // not an incoming VM: that answer stands
      }
      prepared = target->prepare_migration(id, *begin, *listen, m.tls, m.postcopy);
    }
    if (!prepared) {
      if (retryable(prepared.error())) return Outcome::retry;
      return give_up(prepared.error());
    }
    lap("prepare");
    // An agent that predates TLS migration ignores the request: never stream in the clear
    // when TLS was asked for.
    if (m.tls && !prepared->tls())
      return give_up(Error{ErrorCode::failed_precondition,
                           "the target's agent cannot receive a TLS migration (upgrade it, or "
                           "migrate with \"tls\": false on a trusted network)",
                           {}});
    if (m.postcopy && !prepared->postcopy())
      return give_up(Error{ErrorCode::failed_precondition,
                           "the target's agent cannot receive a post-copy migration (upgrade it)",
                           {}});
    if (!write_status([&](VmStatusDoc& s) {
          s.migration.phase = "copying";
          s.migration.migration_uri = prepared->migration_uri();
          s.migration.nbd_host = prepared->nbd_host();
          s.migration.nbd_port = prepared->nbd_port();
        }))
      return Outcome::retry;
    ms = decode_vm_status(vm.status).migration;
    lap("record_copying");
  }

  if (ms.phase == "copying") {
    pb::PerformMigrationRequest req;
    req.set_request_id(base + ":perform");
    req.set_name(vm.name);
    req.set_migration_uri(ms.migration_uri);
    req.set_nbd_host(ms.nbd_host);
    req.set_nbd_port(ms.nbd_port);
    if (m.max_bandwidth) req.mutable_policy()->set_max_bandwidth(m.max_bandwidth);
    if (m.downtime_max_ms) req.mutable_policy()->set_downtime_max_ms(m.downtime_max_ms);
    req.mutable_policy()->set_auto_converge(m.auto_converge);
    req.mutable_policy()->set_postcopy(m.postcopy);
    req.set_tls(m.tls);
    // A cancel recorded since this pass began: the copy does not start.
    if (auto fresh = store_.get_vm(vm.id)) vm = *fresh;
    if (!cancelled_by().empty()) return give_up(cancelled);
    task(10, "copying to " + target_host->name);
    lap("start_copy");
    auto last_update = std::chrono::steady_clock::now() - 1h;
    std::string last_phase;
    // The job is bounded by its own deadline (60 s + 60 s per GiB); the call a bit longer.
    auto deadline = 5min + std::chrono::milliseconds(doc.spec.memory_mib * 60000 / 1024);
    auto out = source->perform_migration(req, deadline, [&](const pb::MigrationProgress& p) {
      auto now = std::chrono::steady_clock::now();
      if (p.phase() != last_phase || now - last_update >= 1s) {
        last_phase = p.phase();
        last_update = now;
        task(progress_percent(p), progress_message(p));
      }
    });
    if (!out) {
      const Error& e = out.error();
      // A broken stream (an agent or network hiccup) is followed again; the job's own
      // failure (undone on the source) gives the target up.
      if (e.code == ErrorCode::unavailable && e.message.find("migration cancelled") ==
                                                  std::string::npos &&
          e.message.find("keeps running") == std::string::npos)
        return Outcome::retry;
      return give_up(e);
    }
    lap("copy");
    // The decision: written before the target resumes.
    if (!write_status([&](VmStatusDoc& s) {
          s.migration.phase = "switching";
          s.migration.stop_at_us = out->stop_at_us();
          s.migration.qemu_downtime_ms = out->qemu_downtime_ms();
          s.migration.total_ms = out->total_ms();
          s.migration.ram_transferred = out->ram_transferred();
          s.migration.ram_copied_paused = out->ram_copied_paused();
          s.migration.postcopy = out->postcopy_ready();
        }, /*unless_cancelled=*/true)) {
      // Cancelled after the copy completed, before the switch: the source (paused, its
      // memory sent) takes the guest back; the target never resumes.
      if (!cancelled_by().empty()) return give_up(cancelled);
      return Outcome::retry;
    }
    ms = decode_vm_status(vm.status).migration;
    lap("record_switching");
  }

  if (ms.phase != "switching") {
    log->error("unknown migration phase vm={} phase={}", vm.name, ms.phase);
    return give_up(Error{ErrorCode::internal, "unknown migration phase " + ms.phase, {}});
  }
  // Post-copy: the copy waits at its switch-over point; the decision is recorded, so the
  // source switches now (asked again after a crash, it answers the same outcome).
  bool switched_postcopy = false;
  if (ms.postcopy) {
    task(90, "switching over to " + target_host->name + " (post-copy)");
    auto sw = source->switchover_migration(base + ":switchover", vm.name);
    if (!sw) {
      if (retryable(sw.error())) return Outcome::retry;
      // Refused before post-copy began: the agent undid the copy and the guest runs on the
      // source. Broken after it began: the guest's state is split and it cannot resume on
      // the source; the target is given up too, and the task says so.
      return give_up(sw.error());
    }
    ms.stop_at_us = sw->stop_at_us();
    ms.qemu_downtime_ms = sw->qemu_downtime_ms();
    ms.total_ms = sw->total_ms();
    ms.ram_transferred = sw->ram_transferred();
    switched_postcopy = sw->postcopy();
    lap("switchover");
  }
  task(95, "resuming on " + target_host->name);
  auto finished = target->finish_migration(base + ":finish", vm.name);
  if (!finished) {
    log->warn("migration finish failed vm={} error={}", vm.name, finished.error().to_string());
    if (finished.error().code == ErrorCode::not_found) {
      // The incoming VM is gone (its host lost it): the source still holds the paused guest,
      // unless it switched over in post-copy (then the guest is lost: the source refuses).
      auto c = source->cancel_migration(base + ":cancel", vm.name);
      if (!c && c.error().code == ErrorCode::conflict)
        return end(
            source_id, false,
            "the target lost the incoming VM after the post-copy switch-over: " + c.error().message,
            nlohmann::json::object());
      return end(source_id, false,
                 "the target lost the incoming VM; the VM runs on its host again",
                 nlohmann::json::object());
    }
    // Refused for good: the agent answers failed_precondition only after it checked that
    // the guest does not run there (AgentService::FinishMigration), and remembers that
    // answer under this request id, so a retry would never get another one and the guest
    // would stay paused on both hosts. The source still holds it: it takes it back.
    if (finished.error().code == ErrorCode::failed_precondition) return give_up(finished.error());
    return Outcome::retry;
  }
  lap("finish");
  // Post-copy: the guest runs on the target, but the memory it has not touched yet is still
  // only on the source. The migration ends once the source has sent the last page
  // (ConfirmMigration waits for QEMU's "completed"). A stream that broke meanwhile with both
  // QEMUs alive (both postcopy-paused) is recovered, as libvirt's --postcopy-resume: the
  // target listens again (PrepareRecoverMigration), the source reconnects
  // (ResumeMigration), and the confirm is asked again. Each attempt is recorded before it
  // starts and a failed one is retried after the controller's backoff (the injected
  // clock), so a restarted manager goes on from the same attempt (phase "switching":
  // switch-over and finish answer again from their request ids). Only a side that is gone
  // (its VM not found) or kMaxPostcopyRecoveries failed attempts (an agent that cannot
  // recover fails each one) lose the guest, as before.
  bool confirmed = false;
  int64_t recoveries = ms.recover_attempts;
  if (switched_postcopy) {
    auto lost = [&](const std::string& why) -> Outcome {
      log->error("post-copy migration cannot be recovered vm={} attempts={} error={}", vm.name,
                 recoveries, why);
      events_.append("controller:vm", "vm.migration.recovery_failed", "vm/" + vm.name, "error",
                     fmt::format("post-copy stream broken after the switch-over, {} recovery "
                                 "attempt(s): {}",
                                 recoveries, why));
      return end(source_id, false,
                 "migration failed after the post-copy switch-over began: " + why +
                     "; the guest is lost (it cannot resume on its host, its QEMU stays paused)",
                 nlohmann::json::object());
    };
    const std::chrono::milliseconds tail_deadline(150000 +
                                                  int64_t(doc.spec.memory_mib) * 60000 / 1024);
    for (;;) {
      task(97, recoveries == 0
                   ? "copying the rest of the memory from the source (post-copy)"
                   : fmt::format("post-copy stream broken, recovering (attempt {}): copying the "
                                 "rest of the memory",
                                 recoveries));
      const std::string confirm_id =
          recoveries == 0 ? base + ":confirm" : fmt::format("{}:confirm:{}", base, recoveries);
      auto c = source->confirm_migration(confirm_id, vm.name, tail_deadline);
      if (c) {
        confirmed = true;
        break;
      }
      if (!postcopy_stream_broken(c.error())) {
        // Slow or unreachable, not broken: the guest runs on the target; the migration ends
        // as an ordinary one and the source host's reconcile confirms the copy later.
        log->warn(
            "post-copy confirm failed vm={} error={} (the source's copy is removed by a "
            "reconcile of its host)",
            vm.name, c.error().to_string());
        break;
      }
      if (recoveries >= kMaxPostcopyRecoveries)
        return lost(fmt::format("the stream stayed broken after {} recoveries ({})", recoveries,
                                c.error().message));
      ++recoveries;
      log->warn("post-copy stream broken vm={} attempt={} error={}", vm.name, recoveries,
                c.error().to_string());
      if (!write_status([&](VmStatusDoc& s) { s.migration.recover_attempts = recoveries; }))
        return Outcome::retry;
      task(96, fmt::format("post-copy stream broken, recovering (attempt {})", recoveries));
      const std::string rid = fmt::format("{}:recover:{}", base, recoveries);
      auto listen = listen_host_of(target_host->address);
      if (!listen) return lost(listen.error().message);
      auto uri = target->prepare_recover_migration(rid + ":prepare", vm.name, *listen);
      if (!uri) {
        if (uri.error().code == ErrorCode::not_found)
          return lost("the target cannot take the stream again: " + uri.error().message);
        log->warn("post-copy recovery: the target did not listen vm={} attempt={} error={}",
                  vm.name, recoveries, uri.error().to_string());
        return Outcome::retry;  // the next attempt after the backoff
      }
      if (auto r = source->resume_migration(rid + ":resume", vm.name, *uri); !r) {
        if (r.error().code == ErrorCode::not_found)
          return lost("the source cannot resume the stream: " + r.error().message);
        log->warn("post-copy recovery: the source did not reconnect vm={} attempt={} error={}",
                  vm.name, recoveries, r.error().to_string());
        return Outcome::retry;
      }
      log->info("post-copy stream resumed vm={} attempt={} uri={}", vm.name, recoveries, *uri);
    }
    lap("confirm");
    if (confirmed && recoveries > 0)
      events_.append("controller:vm", "vm.migration.recovered", "vm/" + vm.name, "ok",
                     fmt::format("post-copy stream broken after the switch-over, recovered "
                                 "(attempts: {})",
                                 recoveries));
  }
  // The guest runs on the target: the migration has succeeded, and says so now. The
  // source's copy (paused, its memory sent; post-copy: confirmed above) is removed after
  // that (confirm), outside the
  // time the user waits; if confirm fails, or the manager dies first, the source host's
  // next reconcile finds a copy of a VM that lives elsewhere and removes it without
  // running it (remove_stale_copy in vm_controller.cc), as libvirt's confirm would.
  int64_t downtime_ms =
      finished->resume_at_us() && ms.stop_at_us ? (finished->resume_at_us() - ms.stop_at_us) / 1000
                                                : -1;
  nlohmann::json result = {{"from_host", source_id},
                           {"to_host", m.target_host_id},
                           {"to_host_name", target_host->name},
                           {"tls", m.tls},
                           {"downtime_ms", downtime_ms},
                           {"qemu_downtime_ms", ms.qemu_downtime_ms},
                           {"total_ms", ms.total_ms},
                           {"ram_transferred", ms.ram_transferred},
                           {"ram_copied_paused", ms.ram_copied_paused},
                           {"postcopy", switched_postcopy},
                           {"phases_ms", phases}};
  if (switched_postcopy) result["postcopy_recoveries"] = recoveries;
  const Outcome ended =
      end(m.target_host_id, true,
          fmt::format("migrated to {} (downtime {} ms{})", target_host->name, downtime_ms,
                      switched_postcopy      ? ", post-copy"
                      : ms.ram_copied_paused ? ", memory copied paused: TCG"
                                             : ""),
          result);
  if (ended != Outcome::done) return ended;  // recorded by the retry, which confirms too
  lap("record_end");
  if (!switched_postcopy) {
    if (auto c = source->confirm_migration(base + ":confirm", vm.name, 90s); !c) {
      log->warn(
          "migration confirm failed vm={} error={} (the source's copy is removed by a "
          "reconcile of its host)",
          vm.name, c.error().to_string());
      requeue_later("host:" + source_id);
    }
    lap("confirm");
  } else if (!confirmed) {
    requeue_later("host:" + source_id);
  }
  log->info("migration phases vm={} {}", vm.name, phases.dump());
  return Outcome::done;
}

}  // namespace strata::manager
