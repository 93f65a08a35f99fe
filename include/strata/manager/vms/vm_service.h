// The VM lifecycle's one home in the manager: create, act (start, stop, reboot, pause,
// resume) and delete. Each call validates, decides (placement through PlacementService's
// one placement path) and writes in ONE store transaction: the VM record, its new task,
// the superseded task's end and the audit event commit together or not at all. Then the
// controller is told (on_change) and drives the agent. HTTP routes only parse the request
// into these calls and render what they return (api/vm_rest.h); errors are values:
//   invalid_argument / not_found / already_exists / conflict (resource_version) /
//   failed_precondition (being deleted, not meant to run) / resource_exhausted (no host).
// Thread-safe: the store serializes transactions; creates hold the placement lock.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "strata/common/clock.h"
#include "strata/common/error.h"
#include "strata/manager/controllers/placement.h"
#include "strata/manager/controllers/vm_document.h"
#include "strata/manager/events/event_log.h"
#include "strata/store/store.h"

namespace strata::manager {

enum class VmVerb { start, stop, reboot, pause, resume, remove };

// "start", "stop", ... "delete"; the task kind and audit action is "vm." + this.
const char* to_string(VmVerb verb);

struct VmActOptions {
  std::optional<int64_t> expected_version;  // compare-and-swap on resource_version
  bool stop_force = false;                  // stop: force off instead of ACPI
  uint32_t stop_timeout_s = 0;              // stop: ACPI wait (0: agent default)
};

// What a change committed: the VM as stored and the task that tracks the intent.
struct VmChange {
  store::VmRecord vm;
  store::TaskRecord task;
};

class VmService {
 public:
  // on_change(vm_id) runs after every committed change (the controller's enqueue_vm);
  // null: nothing is told (tests).
  VmService(store::Store& store, PlacementService& placement, EventLog& events, ClockPtr clock,
            std::function<void(const std::string& vm_id)> on_change = {});

  // Completes the spec (uuid, MACs), checks its images, places it and stores it with a
  // "vm.create" task. `actor` is who asked (the audit event's actor).
  Result<VmChange> create(VmDocument doc, bool start, const std::string& actor);

  // A new intent for the VM named `name`: bumps control.generation, replaces the current
  // task (the previous open one fails as superseded).
  Result<VmChange> act(const std::string& name, VmVerb verb, const VmActOptions& options,
                       const std::string& actor);

  Result<VmChange> remove(const std::string& name, std::optional<int64_t> expected_version,
                          const std::string& actor) {
    VmActOptions o;
    o.expected_version = expected_version;
    return act(name, VmVerb::remove, o, actor);
  }

 private:
  store::Store& store_;
  PlacementService& placement_;
  EventLog& events_;
  ClockPtr clock_;
  std::function<void(const std::string&)> on_change_;
};

}  // namespace strata::manager
