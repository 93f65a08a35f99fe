// The sim driver (strata/agent/sim_hypervisor.h): a map of VM records and a state machine
// whose timed steps (boot, guest shutdown) complete when the injected clock reaches them.
// Nothing here sleeps or starts a thread: tick() and the queries settle what is due.
#include "strata/agent/sim_hypervisor.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <mutex>
#include <random>
#include <vector>

#include "strata/common/random.h"
#include "strata/model/validation.h"

namespace strata::agent {

namespace {

using model::VmState;
using TimePoint = Clock::TimePoint;

Error unmodelled(const char* what) {
  return Error{ErrorCode::failed_precondition,
               fmt::format("the sim hypervisor does not model {} (simulated VM)", what), ""};
}

struct SimVm {
  VmStatus status;
  std::optional<TimePoint> due;  // when the current timed step (boot, shutdown) completes
  bool forced_at_due = false;    // the shutdown ends by its timeout, not the guest
  // CPU time accrued while the VM ran, up to `accrued_at`.
  double cpu_ns = 0;
  TimePoint accrued_at{};
};

class SimHypervisorImpl final : public SimHypervisor {
 public:
  explicit SimHypervisorImpl(SimOptions o) : opts_(std::move(o)), rng_(opts_.seed) {}

  Status recover() override { return {}; }  // nothing outlives the process: nothing to find

  Result<VmStatus> define(const model::VmSpec& spec) override {
    if (auto st = model::validate(spec); !st) return tl::unexpected(st.error());
    std::vector<VmEvent> events;
    VmStatus out;
    {
      std::lock_guard lock(mu_);
      if (vms_.contains(spec.name))
        return make_error(ErrorCode::already_exists, "vm " + spec.name + " exists");
      auto done = model::complete(spec, &random_u64);  // UUIDs and MACs: unique per process
      if (!done) return tl::unexpected(done.error());
      for (const auto& [_, vm] : vms_)
        if (vm.status.spec.uuid == done->uuid)
          return make_error(ErrorCode::already_exists, "a vm with uuid " + done->uuid +
                                                           " exists (" + vm.status.spec.name + ")");
      SimVm vm;
      vm.status.spec = std::move(*done);
      vm.status.accelerator = "kvm";
      vm.status.cpu_model = vm.status.spec.cpu_model;
      vm.accrued_at = opts_.clock->now();
      set_state(vm, VmState::defined, "defined", events);
      out = vm.status;
      vms_.emplace(spec.name, std::move(vm));
    }
    notify(events);
    return out;
  }

  Status adopt_cpu_model(const std::string& name, const std::string& cpu_model) override {
    std::lock_guard lock(mu_);
    auto vm = find(name);
    if (!vm) return tl::unexpected(vm.error());
    if (!has_process((*vm)->status.state)) (*vm)->status.spec.cpu_model = cpu_model;
    return {};
  }

  Status start(const std::string& name) override {
    std::vector<VmEvent> events;
    Status result;
    {
      std::lock_guard lock(mu_);
      settle(events);
      result = [&]() -> Status {
        auto vm = find(name);
        if (!vm) return tl::unexpected(vm.error());
        SimVm& v = **vm;
        if (has_process(v.status.state))
          return make_error(ErrorCode::failed_precondition,
                            std::string("vm ") + name + " is " + model::to_string(v.status.state));
        if (opts_.fail_start.contains(name) || draw_failure()) {
          v.status.last_exit = VmExit{false, 1, "sim-injected-start-failure", wall_ms()};
          set_state(v, VmState::crashed, "start-failed: sim: injected start failure", events);
          return internal_error("sim: injected start failure of vm " + name);
        }
        v.status.last_exit.reset();
        v.status.cpu_model = v.status.spec.cpu_model;
        v.accrued_at = opts_.clock->now();
        if (opts_.boot_time.count() == 0) {
          set_state(v, VmState::running, "started", events);
        } else {
          v.due = opts_.clock->now() + opts_.boot_time;
          set_state(v, VmState::starting, "starting", events);
        }
        return {};
      }();
    }
    notify(events);
    return result;
  }

  Status shutdown(const std::string& name, std::chrono::milliseconds timeout) override {
    if (timeout.count() < 0) return invalid_argument("timeout", "must not be negative");
    return act(name, [&](SimVm& v, std::vector<VmEvent>& events) -> Status {
      if (v.status.state == VmState::shutting_down) return {};  // joins the running stop
      if (!has_process(v.status.state))
        return make_error(ErrorCode::failed_precondition,
                          "vm " + name + " is " + model::to_string(v.status.state));
      auto wait = std::min(opts_.shutdown_time, timeout);
      v.forced_at_due = opts_.shutdown_time > timeout;
      if (wait.count() == 0) {
        stop(v, v.forced_at_due ? "killed" : "guest-shutdown", events);
        return {};
      }
      accrue(v);
      v.due = opts_.clock->now() + wait;
      set_state(v, VmState::shutting_down, "powerdown", events);
      return {};
    });
  }

  Status force_off(const std::string& name) override {
    return act(name, [&](SimVm& v, std::vector<VmEvent>& events) -> Status {
      if (!has_process(v.status.state))
        return make_error(ErrorCode::failed_precondition,
                          "vm " + name + " is " + model::to_string(v.status.state));
      stop(v, "killed", events);
      return {};
    });
  }

  // A reset: the VM stays running (as QEMU's system_reset); watchers hear it.
  Status reboot(const std::string& name) override {
    return act(name, [&](SimVm& v, std::vector<VmEvent>& events) -> Status {
      if (v.status.state != VmState::running)
        return make_error(ErrorCode::failed_precondition,
                          "vm " + name + " is " + model::to_string(v.status.state));
      events.push_back(VmEvent{name, VmState::running, "reset", wall_ms()});
      return {};
    });
  }

  Status pause(const std::string& name) override {
    return act(name, [&](SimVm& v, std::vector<VmEvent>& events) -> Status {
      if (v.status.state != VmState::running)
        return make_error(ErrorCode::failed_precondition,
                          "vm " + name + " is " + model::to_string(v.status.state));
      accrue(v);
      set_state(v, VmState::paused, "paused", events);
      return {};
    });
  }

  Status resume(const std::string& name) override {
    return act(name, [&](SimVm& v, std::vector<VmEvent>& events) -> Status {
      if (v.status.state != VmState::paused)
        return make_error(ErrorCode::failed_precondition,
                          "vm " + name + " is " + model::to_string(v.status.state));
      v.accrued_at = opts_.clock->now();
      set_state(v, VmState::running, "resumed", events);
      return {};
    });
  }

  using Hypervisor::undefine;
  Status undefine(const std::string& name, bool) override {
    std::vector<VmEvent> events;
    Status result;
    {
      std::lock_guard lock(mu_);
      settle(events);
      auto it = vms_.find(name);
      if (it == vms_.end()) {
        result = not_found("vm " + name + " not found");
      } else if (has_process(it->second.status.state)) {
        result = make_error(ErrorCode::failed_precondition,
                            "vm " + name + " is " + model::to_string(it->second.status.state));
      } else {
        vms_.erase(it);
      }
    }
    notify(events);
    return result;
  }

  Result<VmStatus> status(const std::string& name) const override {
    std::vector<VmEvent> events;
    Result<VmStatus> out;
    {
      std::lock_guard lock(mu_);
      settle(events);
      auto it = vms_.find(name);
      if (it == vms_.end())
        out = not_found("vm " + name + " not found");
      else
        out = it->second.status;
    }
    notify(events);
    return out;
  }

  std::vector<VmStatus> list() const override {
    std::vector<VmEvent> events;
    std::vector<VmStatus> out;
    {
      std::lock_guard lock(mu_);
      settle(events);
      out.reserve(vms_.size());
      for (const auto& [_, vm] : vms_) out.push_back(vm.status);
    }
    notify(events);
    return out;
  }

  Result<VmStats> stats(const std::string& name) const override {
    std::vector<VmEvent> events;
    Result<VmStats> out;
    {
      std::lock_guard lock(mu_);
      settle(events);
      auto it = vms_.find(name);
      if (it == vms_.end()) {
        out = not_found("vm " + name + " not found");
      } else {
        const SimVm& v = it->second;
        VmStats s;
        s.cpu_time_ns = static_cast<uint64_t>(v.cpu_ns + running_cpu_ns(v));
        if (has_process(v.status.state)) s.rss_bytes = resident_bytes(v);
        out = s;
      }
    }
    notify(events);
    return out;
  }

  Result<std::string> console_tail(const std::string&, size_t) const override {
    return tl::unexpected(unmodelled("a serial console"));
  }
  Result<ConsoleSubscriptionPtr> console_subscribe(const std::string&,
                                                   std::function<void(std::string_view)>) override {
    return tl::unexpected(unmodelled("a serial console"));
  }
  Status console_write(const std::string&, std::string_view) override {
    return tl::unexpected(unmodelled("a serial console"));
  }
  Result<std::string> guest_agent(const std::string&, const std::string&,
                                  std::chrono::milliseconds) override {
    return tl::unexpected(unmodelled("a guest agent"));
  }

  void watch(VmEventCallback cb) override {
    std::lock_guard lock(watch_mu_);
    watchers_.push_back(std::move(cb));
  }

  void tick() override {
    std::vector<VmEvent> events;
    {
      std::lock_guard lock(mu_);
      settle(events);
    }
    notify(events);
  }

  Usage usage() const override {
    std::vector<VmEvent> events;
    Usage u;
    {
      std::lock_guard lock(mu_);
      settle(events);
      u.vms = static_cast<uint32_t>(vms_.size());
      for (const auto& [_, v] : vms_) {
        if (!has_process(v.status.state)) continue;
        ++u.active;
        u.vcpus += v.status.spec.vcpus;
        if (v.status.state == VmState::running) u.cpus_busy += v.status.spec.vcpus * opts_.cpu_busy;
        u.resident_bytes += resident_bytes(v);
      }
    }
    notify(events);
    return u;
  }

 private:
  int64_t wall_ms() const {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               opts_.clock->wall().time_since_epoch())
        .count();
  }

  bool draw_failure() {
    if (opts_.start_failure_rate <= 0) return false;
    return std::uniform_real_distribution<double>(0.0, 1.0)(rng_) < opts_.start_failure_rate;
  }

  Result<SimVm*> find(const std::string& name) {
    auto it = vms_.find(name);
    if (it == vms_.end()) return not_found("vm " + name + " not found");
    return &it->second;
  }

  // Runs `fn` on the named VM under the lock (after settling what is due), then notifies.
  Status act(const std::string& name,
             const std::function<Status(SimVm&, std::vector<VmEvent>&)>& fn) {
    std::vector<VmEvent> events;
    Status result;
    {
      std::lock_guard lock(mu_);
      settle(events);
      auto vm = find(name);
      result = vm ? fn(**vm, events) : Status(tl::unexpected(vm.error()));
    }
    notify(events);
    return result;
  }

  void set_state(SimVm& v, VmState s, std::string detail, std::vector<VmEvent>& events) const {
    v.status.state = s;
    v.status.state_changed_unix_ms = wall_ms();
    if (s != VmState::starting && s != VmState::shutting_down) v.due.reset();
    events.push_back(
        VmEvent{v.status.spec.name, s, std::move(detail), v.status.state_changed_unix_ms});
  }

  void stop(SimVm& v, const char* reason, std::vector<VmEvent>& events) const {
    accrue(v);
    bool killed = std::string_view(reason) == "killed";
    v.status.last_exit = VmExit{killed, killed ? 9 : 0, reason, wall_ms()};
    set_state(v, VmState::stopped, reason, events);
  }

  double running_cpu_ns(const SimVm& v) const {
    if (v.status.state != VmState::running) return 0;
    auto ran = std::chrono::duration<double, std::nano>(opts_.clock->now() - v.accrued_at).count();
    return std::max(0.0, ran) * v.status.spec.vcpus * opts_.cpu_busy;
  }
  void accrue(SimVm& v) const {
    v.cpu_ns += running_cpu_ns(v);
    v.accrued_at = opts_.clock->now();
  }
  uint64_t resident_bytes(const SimVm& v) const {
    return static_cast<uint64_t>(static_cast<double>(v.status.spec.memory_mib) * 1024 * 1024 *
                                 opts_.memory_resident);
  }

  // Completes every timed step that is due. Called with mu_ held.
  void settle(std::vector<VmEvent>& events) const {
    auto now = opts_.clock->now();
    for (auto& [_, v] : vms_) {
      if (!v.due || *v.due > now) continue;
      if (v.status.state == VmState::starting) {
        v.accrued_at = *v.due;
        set_state(v, VmState::running, "booted", events);
      } else if (v.status.state == VmState::shutting_down) {
        stop(v, v.forced_at_due ? "killed" : "guest-shutdown", events);
      } else {
        v.due.reset();
      }
    }
  }

  void notify(const std::vector<VmEvent>& events) const {
    if (events.empty()) return;
    std::lock_guard lock(watch_mu_);
    for (const auto& e : events)
      for (const auto& cb : watchers_) cb(e);
  }

  SimOptions opts_;
  mutable std::mutex mu_;
  mutable std::map<std::string, SimVm> vms_;  // settle() completes steps from const queries
  std::mt19937_64 rng_;
  mutable std::mutex watch_mu_;  // held while calling watchers: events arrive in order
  std::vector<VmEventCallback> watchers_;
};

}  // namespace

Status validate(const SimOptions& o) {
  if (!o.clock) return invalid_argument("clock", "the sim driver needs a clock");
  if (o.boot_time.count() < 0) return invalid_argument("boot_time", "must not be negative");
  if (o.shutdown_time.count() < 0) return invalid_argument("shutdown_time", "must not be negative");
  auto fraction = [](double x) { return x >= 0.0 && x <= 1.0; };  // false for NaN
  if (!fraction(o.start_failure_rate))
    return invalid_argument("start_failure_rate", "must be between 0 and 1");
  if (!fraction(o.cpu_busy)) return invalid_argument("cpu_busy", "must be between 0 and 1");
  if (!fraction(o.memory_resident))
    return invalid_argument("memory_resident", "must be between 0 and 1");
  for (const auto& name : o.fail_start)
    if (auto st = model::validate_name("fail_start", name); !st) return st;
  return {};
}

Result<SimHypervisorPtr> make_sim_hypervisor(SimOptions options) {
  if (auto st = validate(options); !st) return tl::unexpected(st.error());
  return std::make_unique<SimHypervisorImpl>(std::move(options));
}

}  // namespace strata::agent
