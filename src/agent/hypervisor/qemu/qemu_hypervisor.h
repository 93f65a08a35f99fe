// The QEMU implementation of Hypervisor. Split over several files by concern:
//   qemu_hypervisor.cc  construction, define/undefine, status, state bookkeeping
//   vm_lifecycle.cc     start/stop/pause/..., QMP events, the supervision loop
//   vm_recover.cc       re-attaching to VMs after an agent restart
//   vm_queries.cc       stats, console, guest agent
// Locking: mu_ guards vms_ and every Vm field. QMP commands and other blocking I/O run
// with mu_ released (holding a shared_ptr to the client), because QMP callbacks take mu_.
#pragma once

#include <condition_variable>
#include <initializer_list>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "argv.h"
#include "console.h"
#include "qemu_monitor.h"
#include "strata/agent/qemu_hypervisor.h"
#include "vm_dir.h"

namespace strata::agent::qemu {

struct Vm {
  std::string dir;
  model::VmSpec spec;
  StateRecord rec;
  std::shared_ptr<QemuMonitor> qmp;  // the typed monitor; null while not connected
  std::shared_ptr<ConsoleHub> console;
  std::string shutdown_reason;  // from the last SHUTDOWN event
  bool kill_requested = false;  // force_off in progress: the exit is not a crash
  bool panicked = false;
  bool busy = false;  // start() in progress
  // Recovered with QEMU alive but QMP not connected: the supervisor retries from
  // qmp_retry_at (backing off), never concluding anything about the VM from the failure.
  bool qmp_pending = false;
  int qmp_attempts = 0;
  Clock::TimePoint qmp_retry_at{};
  std::shared_ptr<std::mutex> qga_mu = std::make_shared<std::mutex>();
};

// What an operation on a running VM needs, copied out from under mu_.
struct VmTarget {
  std::shared_ptr<QemuMonitor> qmp;
  int pid = 0;
  std::string uuid;
};

class QemuHypervisor final : public Hypervisor {
 public:
  explicit QemuHypervisor(QemuOptions options);
  ~QemuHypervisor() override;

  Status recover() override;
  Result<VmStatus> define(const model::VmSpec& spec) override;
  Status start(const std::string& name) override;
  Status shutdown(const std::string& name, std::chrono::milliseconds timeout) override;
  Status force_off(const std::string& name) override;
  Status reboot(const std::string& name) override;
  Status pause(const std::string& name) override;
  Status resume(const std::string& name) override;
  Status undefine(const std::string& name) override;
  Result<VmStatus> status(const std::string& name) const override;
  std::vector<VmStatus> list() const override;
  Result<VmStats> stats(const std::string& name) const override;
  Result<std::string> console_tail(const std::string& name, size_t max_bytes) const override;
  Result<ConsoleSubscriptionPtr> console_subscribe(
      const std::string& name, std::function<void(std::string_view)> on_data) override;
  Status console_write(const std::string& name, std::string_view data) override;
  Result<std::string> guest_agent(const std::string& name, const std::string& command_json,
                                  std::chrono::milliseconds timeout) override;
  void watch(VmEventCallback cb) override;

  // Runs one raw QMP command on the agent's connection (debugging and tests).
  Result<nlohmann::json> qmp(const std::string& name, const std::string& command,
                             const nlohmann::json& arguments = nullptr);

 private:
  std::string vm_dir(const std::string& name) const { return opts_.state_dir + "/vms/" + name; }
  Result<std::shared_ptr<Vm>> find_locked(const std::string& name) const;
  VmStatus status_locked(const Vm& vm) const;
  // Records a transition (state.json + a queued VmEvent). Needs mu_.
  void set_state_locked(const std::string& name, Vm& vm, model::VmState state,
                        const std::string& reason);
  // Delivers queued events to watchers; call without mu_.
  void flush_events();
  int64_t wall_ms() const;

  // Lifecycle helpers (vm_lifecycle.cc).
  Result<ResolvedVm> resolve(const std::string& name, const model::VmSpec& spec);
  Result<std::shared_ptr<QemuMonitor>> connect_qmp(const std::string& name, const std::string& dir,
                                                 std::chrono::milliseconds timeout,
                                                 std::function<bool()> keep_trying);
  void on_qmp_event(const std::string& name, const MonitorEvent& e);
  // Decides stopped/crashed from how QEMU ended and drops the connections. Needs mu_;
  // returns the connections so the caller destroys them without mu_.
  std::pair<std::shared_ptr<QemuMonitor>, std::shared_ptr<ConsoleHub>> finalize_locked(
      const std::string& name, Vm& vm, const std::optional<ExitRecord>& exit);
  // Supervision: reaps exited QEMUs, re-attaches pending QMPs, rotates console logs.
  void supervise_loop();
  void supervise_once();
  // One QMP connect attempt for a VM recovered without QMP (runs without mu_).
  void reattach_qmp(const std::string& name, const std::string& dir, int pid,
                    const std::string& uuid);
  bool wait_final(const std::string& name, std::chrono::milliseconds timeout);
  // The VM's QMP client etc. when its state is one of `allowed` (failed_precondition else).
  Result<VmTarget> target(const std::string& name,
                          std::initializer_list<model::VmState> allowed) const;
  std::vector<std::string> taps_of(const model::VmSpec& spec) const;

  QemuOptions opts_;
  mutable std::mutex mu_;
  std::condition_variable state_cv_;  // notified on every transition
  std::map<std::string, std::shared_ptr<Vm>> vms_;
  std::vector<VmEvent> pending_events_;

  std::mutex watch_mu_;  // also serializes delivery, so watchers see events in order
  std::vector<VmEventCallback> watchers_;

  std::mutex sup_mu_;
  std::condition_variable sup_cv_;
  bool stopping_ = false;
  bool sup_kick_ = false;
  std::thread supervisor_;
};

bool is_active(model::VmState s);

}  // namespace strata::agent::qemu
