// The scheduler's input: a read-only picture of the fleet (hosts, capacity, what is
// already allocated, labels, anti-affinity groups present). Built once from plain
// HostInfo values, then kept in a compact form (strings interned to integers, hosts
// sorted by id) so one placement decision can scan 10 000 hosts cheaply. The scheduler
// only reads it; apply_placement() (placement.h) updates a copy when placing batches.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "strata/common/error.h"

namespace strata::sched {

enum class HostState : uint8_t { up, unreachable, maintenance };
enum class Accelerator : uint8_t { kvm, tcg };

std::string_view to_string(HostState s);
std::string_view to_string(Accelerator a);

// One host as the manager knows it. Plain value: the input to Snapshot::build and the
// output of Snapshot::host().
struct HostInfo {
  std::string id;    // unique, non-empty; ties between equal scores go to the smaller id
  std::string name;  // for humans (explanations); defaults to id when empty
  HostState state = HostState::up;
  std::string arch = "x86_64";  // uname -m style: x86_64, aarch64
  Accelerator accelerator = Accelerator::kvm;
  uint32_t total_vcpus = 0;  // hardware threads
  uint64_t total_memory_mib = 0;
  uint32_t allocated_vcpus = 0;  // sum of vCPUs of VMs placed here
  uint64_t allocated_memory_mib = 0;
  std::map<std::string, std::string> labels;
  std::vector<std::string> anti_affinity_groups;  // groups with at least one VM on this host
  std::vector<std::string> affinity_groups;       // keep-together groups, the same way
  std::vector<std::string> datastores;  // UUIDs of the shared datastores this host mounts
  // The CPUs this host can run guests with: the named models its agent found usable, and
  // "cpu-sig:<hash>" of its own CPU (for guests started with "host"/"max"). Filled only
  // for decisions that need it (live migrations).
  std::vector<std::string> cpu_offers;
  // The networks this host can attach a VM's NICs to, as tokens (network_token()): every
  // Linux bridge it has, and each bridge that can also carry a NIC on an 802.1Q VLAN.
  // Filled only for decisions that need it (a VM with bridge NICs).
  std::vector<std::string> networks;
};

// The token a host offers and a bridge NIC needs: "bridge:br0", or "bridge-vlan:br0" for a
// NIC with a VLAN (the bridge must filter VLANs: CONFIG_BRIDGE_VLAN_FILTERING).
std::string network_token(std::string_view bridge, bool vlan);
// Why a host offering `offers` (its tokens, or a predicate over them) cannot attach a NIC
// needing `needed`: "has no bridge br0 (...)" or "bridge br0 cannot put a NIC on a VLAN
// (...)". The one wording for the scheduler's network filter and the hot-plug refusal.
std::string network_shortfall(const std::string& needed,
                              const std::function<bool(const std::string&)>& offers);

namespace detail {
struct SnapshotAccess;  // the scheduler's view of the compact form (src/sched only)
}

// The static, equality-matched part of a host, packed into 4 bytes so the hot loop
// checks state, arch and accelerator with one masked compare.
struct HostTraits {
  uint16_t arch = 0;  // interned
  HostState state = HostState::up;
  Accelerator accelerator = Accelerator::kvm;
};
static_assert(sizeof(HostTraits) == 4);

// Compact per-host record: what the filters and weights read on every decision.
struct HostRecord {
  uint32_t allocated_vcpus = 0;
  uint32_t total_vcpus = 0;
  uint64_t allocated_memory_mib = 0;
  uint64_t total_memory_mib = 0;
  double inv_total_vcpus = 0;       // 1 / total_vcpus (0 when total is 0)
  double inv_total_memory_mib = 0;  // 1 / total_memory_mib (0 when total is 0)
  uint32_t labels_begin = 0;        // range into the snapshot's label pool
  uint16_t labels_count = 0;
  HostTraits traits;
};

class Snapshot {
 public:
  Snapshot() = default;

  // Validates (unique non-empty ids, no allocation without capacity fields overflowing)
  // and compacts. Hosts end up ordered by id.
  static Result<Snapshot> build(std::vector<HostInfo> hosts);

  size_t size() const { return records_.size(); }
  // Index of the host with this id, if present.
  std::optional<uint32_t> find(std::string_view id) const;
  // The host at `index` (0 <= index < size()), reconstructed as a plain value.
  HostInfo host(uint32_t index) const;
  const HostRecord& record(uint32_t index) const { return records_[index]; }
  const std::string& id(uint32_t index) const { return ids_[index]; }
  const std::string& name(uint32_t index) const { return names_[index]; }

 private:
  friend struct detail::SnapshotAccess;

  uint32_t intern(std::string_view s);
  std::optional<uint32_t> lookup(std::string_view s) const;

  std::vector<HostRecord> records_;
  std::vector<std::string> ids_;
  std::vector<std::string> names_;

  // Heterogeneous lookup: finding a request's strings allocates nothing.
  struct StringHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  using StringIndex = std::unordered_map<std::string, uint32_t, StringHash, std::equal_to<>>;

  // Interned strings (arch, label keys and values, group names).
  std::vector<std::string> strings_;
  StringIndex string_ids_;
  StringIndex index_by_id_;

  // Labels: per host a sorted run of (key, value) ids in one pool.
  struct Label {
    uint32_t key;
    uint32_t value;
  };
  std::vector<Label> label_pool_;

  // Anti-affinity: per group (interned id) the sorted indices of hosts holding it, so a
  // scan in host order checks membership with one comparison per host.
  std::unordered_map<uint32_t, std::vector<uint32_t>> group_hosts_;
  // Keep-together groups the same way (their own map: a name may be both kinds of group).
  std::unordered_map<uint32_t, std::vector<uint32_t>> together_hosts_;
  // Datastores the same way: per datastore UUID (interned) the sorted hosts mounting it.
  std::unordered_map<uint32_t, std::vector<uint32_t>> datastore_hosts_;
  // CPU offers the same way: per CPU token (interned) the sorted hosts offering it.
  std::unordered_map<uint32_t, std::vector<uint32_t>> cpu_hosts_;
  // Networks the same way: per network token (interned) the sorted hosts offering it.
  std::unordered_map<uint32_t, std::vector<uint32_t>> network_hosts_;
};

}  // namespace strata::sched
