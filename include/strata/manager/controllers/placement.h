// Builds the scheduler's snapshot from the store's hosts plus an in-memory cache of what
// placed VMs hold (AllocationCache: loaded from the store by load() at start, then kept
// current by record()/forget() wherever a VM gets or loses a host), and asks strata_sched
// for a host. A decision costs O(hosts), independent of the number of VMs. mutex()
// serializes decisions: place_and_write holds it while choosing and reserving (a hold in
// the cache until the VM is written), other callers around "place + write + record()", so
// two concurrent placements cannot both take the last free slot. After a crash the cache
// is rebuilt from the store by load().
#pragma once

#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "strata/common/error.h"
#include "strata/manager/controllers/allocation_cache.h"
#include "strata/manager/controllers/vm_document.h"
#include "strata/sched/balance.h"
#include "strata/sched/scheduler.h"
#include "strata/sched/snapshot.h"
#include "strata/store/store.h"

namespace strata::manager {

// A dry run of placement (POST /api/v1/placement): where a VM would go and why not
// elsewhere, from the same snapshot and filters as a create, writing nothing.
struct PlacementPreview {
  struct Choice {
    std::string host_id;
    std::string host_name;
    double score = 0;  // 0..100 under the configured strategy
  };
  std::vector<Choice> candidates;          // every host that fits, best first; [0] is the choice
  std::vector<sched::Rejection> rejected;  // every other host with the first filter that refused it
  std::string summary;                     // "memory filter rejected 2 hosts" ("" if none)
  size_t hosts = 0;                        // hosts considered
};

// A what-if answer (strata plan host-down; HA admission control): where the VMs of some
// hosts would go if those hosts were lost or drained, and which would not fit and why.
struct HostDownPlan {
  struct Move {
    std::string vm;
    std::string from_host;  // names
    std::string to_host;
    double score = 0;
    bool ha = false;
  };
  struct Stay {
    std::string vm;
    std::string from_host;
    std::string reason;  // the scheduler's explanation, or why the VM cannot move at all
    bool ha = false;
  };
  std::vector<std::string> hosts;  // the hosts taken away (names)
  std::vector<Move> moves;         // in placement order: HA priority, then larger first
  std::vector<Stay> stays;
  // "vm1 (reason); vm2 (reason)": the stays, for an error message.
  std::string stays_text() const;
};

// A capacity question (strata plan capacity): how many more VMs of one size fit, where
// they would go, and what runs out first. VMs are placed one after another on a private
// copy of the snapshot with the real scheduler until it refuses (or kCapacityPlanMax).
struct CapacityPlan {
  static constexpr uint32_t kMax = 100000;
  struct HostShare {
    std::string host;              // name
    uint32_t vms = 0;              // of the requested VMs placed here
    int64_t free_vcpus = 0;        // left after them (after overcommit; < 0 if overcommitted)
    int64_t free_memory_mib = 0;
  };
  uint32_t requested = 0;       // 0: only "how many fit"
  uint32_t fit = 0;             // how many fit in all (at most kMax)
  bool capped = false;          // stopped counting at kMax
  std::vector<HostShare> hosts; // where the requested ones (all that fit, when 0) would go,
                                // most first; only hosts taking at least one
  std::string runs_out_first;   // the filter that refused the most hosts once nothing fit
                                // ("memory", "cpu", ...; "" when capped)
  std::string summary;          // the scheduler's explanation of that refusal
};

// The balancer's proposal (balance.cc): the scheduler's balance plan with names, and the
// VMs that were left where they are and why.
struct BalanceProposal {
  struct Move {
    std::string vm;
    std::string from_host;  // names
    std::string to_host;
    double imbalance_before = 0;
    double imbalance_after = 0;
    uint64_t memory_mib = 0;
    uint64_t disk_bytes = 0;
    std::vector<std::string> together_with;  // its keep-together group's VMs moving with it
  };
  struct Held {
    std::string vm;
    std::string host;
    std::string reason;  // "pinned to its host", "stopped", "moved by the balancer ..."
  };
  double imbalance = 0;
  double imbalance_after = 0;
  std::vector<Move> moves;
  std::vector<Held> held;
  std::string stopped;  // sched::BalancePlan::stopped
  uint32_t hosts = 0;   // hosts that count (up, with capacity)
};

// A VM that is not in the store yet (being created), counted where it would be placed.
struct PendingVm {
  std::string name;
  std::string host_id;
  VmDocument doc;
};

// What a live migration's target must offer for this VM's CPU (sched::PlacementRequest::
// cpu_model): the model its QEMU runs with ("cpu-sig:..." of `host` for host/max), "" when
// the VM is not running or its agent did not say.
std::string live_cpu_requirement(const store::VmRecord& vm, const store::HostRecord& host);
// The same from the VM's status and its host's "cpu-sig:" token.
std::string live_cpu_requirement(const VmStatusDoc& st, const std::string& host_signature_token);

// What a snapshot reads from each host's inventory JSON besides its record: only the
// requests that need a part pay for parsing it.
struct SnapshotDetail {
  bool datastores = false;  // the datastores it mounts (VMs with datastore disks)
  bool cpus = false;        // the CPUs it offers (its cpu_models; live migrations)
  bool networks = false;    // its bridges and their VLAN support (VMs with bridge NICs)
  // What `request` needs.
  static SnapshotDetail of(const sched::PlacementRequest& request);
  // Everything (the balancer and what-if plans weigh many VMs at once).
  static SnapshotDetail all() { return {true, true, true}; }
  SnapshotDetail& operator|=(const SnapshotDetail& o);
};

class PlacementService {
 public:
  PlacementService(store::Store& store, sched::Scheduler scheduler)
      : store_(store), scheduler_(std::move(scheduler)) {}

  // (Re)builds the allocation cache from every VM in the store (one pass; at start).
  Status load();

  // The chosen host. invalid_argument("host") for a pinned host that does not exist;
  // resource_exhausted (HTTP 422) with the scheduler's per-filter explanation otherwise.
  // `exclude_vm_id`: a VM whose own allocation is not counted (re-placement).
  Result<store::HostRecord> place(const VmDocument& doc, const std::string& exclude_vm_id = {});

  // The one placement path (the VM service's create and the controller's re-placement):
  // under mutex(), runs `precheck` (when given), chooses a host, runs `admit` on it (when
  // given; HA admission control) and holds the VM's share of that host in the cache; then,
  // without the lock, lets `write` store the VM on it (one store transaction, say) and
  // turns the hold into the VM's allocation when `write` succeeded (drops it otherwise).
  // Only the decision is serialized, not the commit: concurrent creates share the store's
  // syncs, and none can take room another was given. Errors of any step are returned as
  // they are; nothing is recorded then.
  using PlacedWrite = std::function<Result<store::VmRecord>(const store::HostRecord& host)>;
  using PlacedCheck = std::function<Status(const store::HostRecord& host)>;
  Result<store::VmRecord> place_and_write(const VmDocument& doc, const std::string& exclude_vm_id,
                                          const PlacedWrite& write,
                                          const std::function<Status()>& precheck = {},
                                          const PlacedCheck& admit = {});

  // The scheduler's explanation for `doc` (no lock taken, nothing recorded): the host a
  // create would choose now (candidates[0]), the other fitting hosts, and every host
  // refused with its reason. invalid_argument("host") for a pinned host that does not
  // exist; no fitting host is not an error here (candidates is empty).
  Result<PlacementPreview> preview(const VmDocument& doc, const std::string& exclude_vm_id = {});

  // A live migration's target for VM `vm_id` (now on `source`): the host named
  // `target_name` when given (it must pass every filter), else the best other host. Only
  // hosts with the source's accelerator qualify (a guest's CPU model cannot change). The
  // VM's own allocation is not counted; the source is never chosen.
  Result<store::HostRecord> place_migration(const VmDocument& doc, const std::string& vm_id,
                                            const store::HostRecord& source,
                                            const std::string& target_name);

  // A keep-together group's move: `members` (VM id and document; the first is the VM the
  // user asked to move, all on `source`) go to one host together. It must hold them all
  // at once (their resources summed), pass each member's own filters (selectors, groups,
  // datastores, the CPU each runs with) and offer the source's accelerator: the best such
  // host, or `target_name`. resource_exhausted with the scheduler's reasons when none does.
  Result<store::HostRecord> place_group_migration(
      const std::vector<std::pair<std::string, VmDocument>>& members,
      const store::HostRecord& source, const std::string& target_name);

  Result<sched::Snapshot> snapshot(const std::string& exclude_vm_id = {},
                                   const std::string& exclude_host_id = {},
                                   SnapshotDetail detail = {});

  // What-if (what_if.cc): the VMs placed on `host_ids` re-placed on the other hosts, one
  // after another on a private copy of the snapshot (each placement counted before the
  // next), HA priority first, then larger memory first, so the answer is what an HA
  // restart or an evacuation would do now; a VM's pin moves with it, as in a migration.
  // `ha_only`: only HA VMs (an HA restart moves
  // nothing else). `pending`: VMs not stored yet, counted on their host (and moved too
  // when their host is in `host_ids`). Reads only; takes no lock but the cache's.
  // `running_only`: only VMs running or paused (what an evacuation live-migrates).
  Result<HostDownPlan> plan_host_down(const std::vector<std::string>& host_ids, bool ha_only,
                                      const std::vector<PendingVm>& pending = {},
                                      bool running_only = false);
  // What-if capacity: `size` (resources and constraints; no pin, no group) placed
  // repeatedly. `count` > 0: the first `count` are the ones reported per host. Reads only.
  Result<CapacityPlan> plan_capacity(const sched::PlacementRequest& size, uint32_t count);
  // Load balancing: the moves that even out what the VMs hold across the hosts that are
  // up (sched::plan_balance), with the same snapshot and filters as a migration (a target
  // offers the source's accelerator). Only running or paused VMs that are not pinned,
  // templates, linked clones, migrating or in `hold` (VM ids with the reason) move. Reads
  // only.
  Result<BalanceProposal> plan_balance(const sched::BalanceConfig& config,
                                       const std::map<std::string, std::string>& hold = {});
  // HA admission control: with `pending` added, every host's HA VMs would still restart
  // elsewhere if that one host failed. failed_precondition naming the host whose loss
  // would strand HA VMs, which ones and why; ok otherwise.
  Status check_ha_admission(const std::vector<PendingVm>& pending);

  // Keep the cache in step with the store: after writing a VM whose host was set or
  // changed (record) and after deleting one (forget). A VM without a host is forgotten.
  void record(const store::VmRecord& vm);
  void record(const std::string& vm_id, const std::string& host_id, const VmDocument& doc);
  void forget(const std::string& vm_id);

  // What the placed VMs hold per host id: the numbers the scheduler adds to the hosts'
  // records (the dashboard summary). Hosts holding nothing are absent.
  struct HostUse {
    uint64_t vcpus = 0;
    uint64_t memory_mib = 0;
    uint32_t vms = 0;
  };
  std::unordered_map<std::string, HostUse> allocated_by_host() const;

  // Copy of one VM's cached allocation (tests, diagnostics).
  std::optional<VmAllocation> cached(const std::string& vm_id) const;
  size_t cached_vm_count() const;

  const sched::Scheduler& scheduler() const { return scheduler_; }

  std::mutex& mutex() { return mu_; }

 private:
  // The scheduler's request for a VM (resources, selector, group, pinned host id).
  Result<sched::PlacementRequest> request_for(const VmDocument& doc);
  // snapshot() without any of `exclude_host_ids`, not counting `exclude_vm_ids`.
  Result<sched::Snapshot> snapshot_without(const std::vector<std::string>& exclude_vm_ids,
                                           const std::vector<std::string>& exclude_host_ids,
                                           SnapshotDetail detail);

  void record_locked(const std::string& vm_id, const std::string& host_id,
                     const VmDocument& doc);  // cache_mu_ held

  // A host as the store last gave it, decoded for the scheduler. A snapshot asks the store
  // only for every host's version and fetches the hosts written since (a heartbeat is a
  // write): reading and decoding every host's record and inventory for each create made a
  // placement cost O(hosts) of store reads (58 creates/s at 1 000 hosts, 360 at 20).
  struct CachedHost {
    int64_t version = 0;
    sched::HostInfo base;  // the record's fields; no allocations, no inventory detail
    std::string inventory;
    // Inventory detail, parsed when a request first needs it (per version).
    std::optional<std::vector<std::string>> datastores, networks, cpu_offers;
  };
  static CachedHost cached_host(const store::HostRecord& h);

  store::Store& store_;
  sched::Scheduler scheduler_;
  std::mutex mu_;
  mutable std::mutex cache_mu_;  // guards cache_ and holds_ (taken inside, never around, mu_)
  AllocationCache cache_;
  uint64_t holds_ = 0;  // place_and_write's holds, numbered
  // Guards hosts_. Taken before cache_mu_ and released before it is taken (never both);
  // held across the store reads that refresh hosts_ (a snapshot at a time).
  std::mutex hosts_mu_;
  std::unordered_map<std::string, CachedHost> hosts_;  // by host id
};

}  // namespace strata::manager
