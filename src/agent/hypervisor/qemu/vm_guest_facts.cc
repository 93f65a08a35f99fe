// Guest facts: the poller that asks each running VM's qemu-guest-agent for its OS, host
// name and addresses (guest-get-osinfo, guest-get-host-name, guest-network-get-interfaces),
// at most once per QemuOptions::guest_facts_interval of clock time. The replies are checked
// and bounded by model/guest_facts.h before anything is kept; a VM without a guest agent
// just has no facts (and is asked again an interval later).
#include "qemu_hypervisor.h"
#include "strata/common/log.h"

namespace strata::agent::qemu {

using model::VmState;

void QemuHypervisor::poll_guest_facts() {
  struct Due {
    std::string name;
    int pid;
  };
  std::vector<Due> due;
  {
    std::lock_guard lk(mu_);
    const auto now = opts_.clock->now();
    for (auto& [name, vmp] : vms_) {
      Vm& vm = *vmp;
      // Only a running guest answers; a job (migration, snapshot) keeps the channel free.
      if (vm.rec.state != VmState::running || !vm.qmp || vm.job != VmJob::none) continue;
      if (vm.postcopy_incoming) continue;  // its memory is still arriving (qemu_hypervisor.h)
      if (vm.guest_asked_at && now - *vm.guest_asked_at < opts_.guest_facts_interval) continue;
      vm.guest_asked_at = now;  // asked now, whatever the answer: at most once per interval
      if (!vm.guest_first_asked_at) vm.guest_first_asked_at = now;
      due.push_back({name, vm.rec.pid});
    }
  }
  auto log = logger("agent.qemu");
  for (const auto& d : due) {
    model::GuestFacts facts;
    int good = 0;
    for (auto [command, apply] :
         {std::pair{"guest-get-osinfo", &model::apply_guest_osinfo},
          std::pair{"guest-get-host-name", &model::apply_guest_hostname},
          std::pair{"guest-network-get-interfaces", &model::apply_guest_interfaces}}) {
      auto reply = guest_agent(d.name, std::string(R"({"execute":")") + command + "\"}",
                               opts_.guest_facts_timeout);
      if (!reply) {
        // No guest agent (or not up yet): the next command would wait as long again.
        log->debug("guest facts vm={} command={} error={}", d.name, command,
                   reply.error().message);
        break;
      }
      if (auto s = apply(*reply, facts); !s) {
        // An older guest agent lacks a command (failed_precondition): nothing to report.
        // A malformed reply is worth a line (at most one per VM and interval).
        if (s.error().code == ErrorCode::failed_precondition)
          log->debug("guest facts vm={} command={} error={}", d.name, command,
                     s.error().message);
        else
          log->warn("guest facts vm={} command={} refused reply: {} ({})", d.name, command,
                    s.error().message, s.error().field);
        continue;
      }
      ++good;
    }
    if (good == 0) continue;  // nothing new: the last facts of this run stay
    facts.updated_unix_ms = wall_ms();
    std::lock_guard lk(mu_);
    auto it = vms_.find(d.name);
    // The same run of the VM, still running: another run's facts are not these.
    if (it == vms_.end() || it->second->rec.pid != d.pid ||
        it->second->rec.state != VmState::running)
      continue;
    it->second->guest = std::move(facts);
  }
}

}  // namespace strata::agent::qemu
