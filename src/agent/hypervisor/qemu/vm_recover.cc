// QemuHypervisor::recover: after an agent restart, rebuild the VM table from the state
// folder. A live QEMU (pid alive AND its command line carries the VM's uuid) is re-attached
// through QMP without restarting anything; a QEMU that ended while the agent was down is
// judged from the shim's exit.json (decide_recover, recover_decision.h). A live QEMU whose
// QMP does not answer stays active and is re-attached later (reattach_qmp).
#include <filesystem>
#include <fstream>

#include "qemu_hypervisor.h"
#include "recover_decision.h"
#include "shim.h"
#include "strata/common/log.h"
#include "strata/model/vm_spec_json.h"

namespace strata::agent::qemu {

namespace fs = std::filesystem;
using model::VmState;
using namespace std::chrono_literals;

namespace {

// The first attempt only: a VM whose QMP does not answer by then is re-attached in the
// background by the supervisor (reattach_qmp), so a busy monitor never delays the agent.
constexpr auto kRecoverQmpTimeout = 3s;

int read_int_file(const std::string& path) {
  std::ifstream in(path);
  int v = 0;
  in >> v;
  return v;
}

}  // namespace

Status QemuHypervisor::recover() {
  auto log = logger("agent.qemu");
  std::error_code ec;
  fs::directory_iterator it(opts_.state_dir + "/vms", ec);
  if (ec) return internal_error("scan " + opts_.state_dir + "/vms: " + ec.message());
  std::vector<std::string> failures;
  for (const auto& entry : it) {
    if (!entry.is_directory()) continue;
    std::string name = entry.path().filename().string();
    std::string dir = vm_dir(name);
    {
      std::lock_guard lk(mu_);
      if (vms_.count(name) || defining_.count(name)) continue;
    }
    auto text = read_small_file(dir + "/" + kSpecFile);
    if (!text) {
      failures.push_back(name + ": " + text.error().message);
      continue;
    }
    auto j = nlohmann::json::parse(*text, nullptr, false);
    auto spec = j.is_discarded() ? Result<model::VmSpec>(internal_error("bad JSON"))
                                 : model::vm_spec_from_json(j);
    if (!spec || spec->name != name) {
      failures.push_back(name + ": bad spec.json");
      continue;
    }
    auto vm = std::make_shared<Vm>();
    vm->dir = dir;
    vm->spec = *spec;
    auto rec = read_state_record(dir);
    if (rec) vm->rec = *rec;

    RecoverFacts facts;
    facts.recorded = vm->rec.state;
    std::shared_ptr<QemuMonitor> qmp;
    if (is_active(vm->rec.state)) {
      if (vm->rec.pid == 0) vm->rec.pid = read_int_file(vm_files(dir).pid_file);
      facts.qemu_alive = process_matches(vm->rec.pid, vm->spec.uuid);
      if (facts.qemu_alive) {
        auto c = connect_qmp(name, dir, kRecoverQmpTimeout,
                             [&] { return process_matches(vm->rec.pid, vm->spec.uuid); });
        if (c) {
          qmp = *c;
          facts.qmp_connected = true;
          if (auto st = qmp->query_status(30s))
            facts.qmp_state = state_from_query_status(st->status);
        } else {
          log->warn("recover: QMP not connected vm={} pid={} error={}; QEMU lives, so the VM "
                    "stays {} and QMP is retried",
                    name, vm->rec.pid, c.error().message, model::to_string(vm->rec.state));
        }
      }
    }
    const RecoverDecision d = decide_recover(facts);

    // The I/O each decision needs runs here, before mu_ is taken: the console connect (up
    // to 5 s) and the wait for a dying shim's exit record (up to 5 s).
    std::shared_ptr<ConsoleHub> hub;
    std::optional<ExitRecord> exit;
    if (d.action == RecoverAction::reattach) {
      if (auto h = ConsoleHub::connect(vm_files(dir).serial_socket, 5s)) hub = std::move(*h);
    } else if (d.action == RecoverAction::finalize) {
      // QEMU is gone. If its shim still lives it is about to write exit.json: wait a bit.
      int shim = read_int_file(dir + "/" + kShimPidFile);
      for (int i = 0; i < 50 && shim > 0 && process_matches(shim, dir); ++i)
        std::this_thread::sleep_for(100ms);
      auto x = read_exit_record(dir);
      if (x && (vm->rec.pid == 0 || x->qemu_pid == vm->rec.pid)) exit = *x;
    }

    std::pair<std::shared_ptr<QemuMonitor>, std::shared_ptr<ConsoleHub>> drop;
    {
      std::lock_guard lk(mu_);
      if (vms_.count(name) || defining_.count(name)) continue;  // appeared meanwhile
      vms_[name] = vm;
      switch (d.action) {
        case RecoverAction::keep:
          break;
        case RecoverAction::reattach: {
          vm->qmp = qmp;
          vm->adopted = true;
          if (hub) vm->console = std::move(hub);
          set_state_locked(name, *vm, d.state, "recovered");
          log->info("recover: re-attached vm={} pid={} state={}", name, vm->rec.pid,
                    model::to_string(d.state));
          break;
        }
        case RecoverAction::attach_later:
          vm->qmp_pending = true;  // the supervisor retries (reattach_qmp)
          vm->adopted = true;
          vm->qmp_retry_at = opts_.clock->now();
          set_state_locked(name, *vm, d.state, "recovered; QMP not connected yet");
          break;
        case RecoverAction::finalize: {
          drop = finalize_locked(name, *vm, exit);
          log->info("recover: vm={} ended while the agent was down state={}", name,
                    model::to_string(vm->rec.state));
          break;
        }
      }
    }
  }
  flush_events();
  if (!failures.empty()) {
    std::string msg = "could not recover:";
    for (auto& f : failures) msg += " " + f + ";";
    log->error("{}", msg);
    return internal_error(msg);
  }
  return {};
}

}  // namespace strata::agent::qemu
