// Builds the scheduler's snapshot from the store (hosts + what VMs already hold) and asks
// strata_sched for a host. Callers hold mutex() around "place + write the VM" so two
// concurrent creates cannot both take the last free slot.
#pragma once

#include <mutex>
#include <string>

#include "strata/common/error.h"
#include "strata/manager/controllers/vm_document.h"
#include "strata/sched/scheduler.h"
#include "strata/sched/snapshot.h"
#include "strata/store/store.h"

namespace strata::manager {

class PlacementService {
 public:
  PlacementService(store::Store& store, sched::Scheduler scheduler)
      : store_(store), scheduler_(std::move(scheduler)) {}

  // The chosen host. invalid_argument("host") for a pinned host that does not exist;
  // resource_exhausted (HTTP 422) with the scheduler's per-filter explanation otherwise.
  // `exclude_vm_id`: a VM whose own allocation is not counted (re-placement).
  Result<store::HostRecord> place(const VmDocument& doc, const std::string& exclude_vm_id = {});

  Result<sched::Snapshot> snapshot(const std::string& exclude_vm_id = {});

  std::mutex& mutex() { return mu_; }

 private:
  store::Store& store_;
  sched::Scheduler scheduler_;
  std::mutex mu_;
};

}  // namespace strata::manager
