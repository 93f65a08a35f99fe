// How many live migrations may run at once: at most `per_host` on any host (incoming and
// outgoing together: both ends spend CPU and the same link on each stream) and at most
// `total` in the whole manager. A migration that may not start yet waits in arrival order;
// a later one never overtakes an earlier one that shares a host with it, so an evacuation
// drains in the order it was asked for. A migration resumed after a manager restart (it
// was already copying) always runs: it holds its slots even beyond the limits.
//
// Pure bookkeeping, no I/O and no lock: the VM controller owns one and guards it with its
// migration mutex (vm_controller.h).
#pragma once

#include <cstddef>
#include <map>
#include <string>
#include <vector>

namespace strata::manager {

struct MigrationLimits {
  int per_host = 2;
  int total = 8;
};

class MigrationSlots {
 public:
  explicit MigrationSlots(MigrationLimits limits) : limits_(limits) {}

  struct Admission {
    bool started = false;
    // Why it waits, for the task's message ("queued: host h1 runs 2 migrations (limit 2
    // per host)"); empty when started.
    std::string reason;
  };
  // A host: its id (the key) and its name (for messages).
  struct Host {
    std::string id, name;
  };

  // Starts the migration of `vm_id` from `source` to `target` when the limits allow it
  // and no earlier waiter shares a host with it; otherwise it (still) waits. Asking again
  // for a VM that runs answers started; `resumed` starts it whatever the limits.
  Admission admit(const std::string& vm_id, const Host& source, const Host& target,
                  bool resumed);

  // The migration of `vm_id` ended (or is no longer wanted, e.g. cancelled while it
  // waited): frees its slots or its place in the line. Returns the waiting VMs that may
  // start now, in arrival order (the caller asks admit() for each).
  std::vector<std::string> release(const std::string& vm_id);

  bool running(const std::string& vm_id) const { return running_.count(vm_id) > 0; }
  bool waiting(const std::string& vm_id) const;
  int in_use(const std::string& host_id) const;
  size_t total_running() const { return running_.size(); }
  const MigrationLimits& limits() const { return limits_; }

 private:
  struct Ends {
    Host source, target;
    bool shares_a_host_with(const Ends& o) const;
  };
  bool fits(const Ends& e) const;
  std::string why_not(const Ends& e) const;

  MigrationLimits limits_;
  std::map<std::string, Ends> running_;                     // vm -> its hosts
  std::vector<std::pair<std::string, Ends>> waiting_;      // arrival order
};

}  // namespace strata::manager
