// QemuHypervisor::recover: after an agent restart, rebuild the VM table from the state
// folder. A live QEMU (pid alive AND its command line carries the VM's uuid) is re-attached
// through QMP without restarting anything; a QEMU that ended while the agent was down is
// judged from the shim's exit.json.
#include <filesystem>
#include <fstream>

#include "qemu_hypervisor.h"
#include "shim.h"
#include "strata/common/log.h"
#include "strata/model/vm_spec_json.h"

namespace strata::agent::qemu {

namespace fs = std::filesystem;
using model::VmState;
using namespace std::chrono_literals;

namespace {

int read_int_file(const std::string& path) {
  std::ifstream in(path);
  int v = 0;
  in >> v;
  return v;
}

VmState state_from_query_status(const std::string& s) {
  if (s == "running") return VmState::running;
  if (s == "shutdown") return VmState::shutting_down;
  if (s == "guest-panicked" || s == "internal-error" || s == "io-error") return VmState::crashed;
  return VmState::paused;  // paused, suspended, prelaunch, debug, ...
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
      if (vms_.count(name)) continue;
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

    std::shared_ptr<QmpClient> qmp;
    std::optional<VmState> live_state;
    if (is_active(vm->rec.state)) {
      if (vm->rec.pid == 0) vm->rec.pid = read_int_file(vm_files(dir).pid_file);
      if (process_matches(vm->rec.pid, vm->spec.uuid)) {
        auto c = connect_qmp(name, dir, 10s,
                             [&] { return process_matches(vm->rec.pid, vm->spec.uuid); });
        if (c) {
          qmp = *c;
          auto st = qmp->execute("query-status", nullptr, 30s);
          live_state = st ? state_from_query_status(st->value("status", "")) : VmState::running;
        } else {
          log->warn("recover: QMP connect failed vm={} error={}", name, c.error().message);
        }
      }
    }

    std::pair<std::shared_ptr<QmpClient>, std::shared_ptr<ConsoleHub>> drop;
    {
      std::lock_guard lk(mu_);
      vms_[name] = vm;
      if (live_state) {
        vm->qmp = qmp;
        auto hub = ConsoleHub::connect(vm_files(dir).serial_socket, 5s);
        if (hub) vm->console = std::move(*hub);
        set_state_locked(name, *vm, *live_state, "recovered");
        log->info("recover: re-attached vm={} pid={} state={}", name, vm->rec.pid,
                  model::to_string(*live_state));
      } else if (is_active(vm->rec.state)) {
        // QEMU is gone. If its shim still lives it is about to write exit.json: wait a bit.
        int shim = read_int_file(dir + "/" + kShimPidFile);
        for (int i = 0; i < 50 && shim > 0 && process_matches(shim, dir); ++i)
          std::this_thread::sleep_for(100ms);
        auto exit = read_exit_record(dir);
        bool ours = exit && (vm->rec.pid == 0 || exit->qemu_pid == vm->rec.pid);
        drop = finalize_locked(name, *vm, ours ? std::optional(*exit) : std::nullopt);
        log->info("recover: vm={} ended while the agent was down state={}", name,
                  model::to_string(vm->rec.state));
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
