// Why the scheduler chose what it chose: the filter that rejected each host and why, a
// per-filter count, and the ranked survivors. Computed only on request (Scheduler::explain)
// or when nothing fits (the no-fit error message is built from it).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace strata::sched {

// Filters in evaluation order; a host is reported against the first one that rejects it.
enum class Filter : uint8_t {
  pin,            // request pinned to another host
  state,          // host not up (unreachable, maintenance)
  arch,           // CPU architecture differs
  accelerator,    // kvm/tcg differs from the requirement
  selector,       // a node-selector label is missing or has another value
  avoid,          // the host carries every label the request keeps off
  datastore,      // the host does not mount a datastore the VM's disks are on
  network,        // the host lacks a bridge a NIC joins (or cannot put it on its VLAN)
  cpu_model,      // the host cannot offer the VM's CPU model (a live migration's target)
  anti_affinity,  // a VM of the request's anti-affinity group already runs there
  affinity,       // the request's keep-together group runs on another host (that is up)
  cpu,            // not enough vCPUs left (after CPU overcommit)
  memory,         // not enough memory left (after memory overcommit)
};
inline constexpr size_t kFilterCount = 13;

std::string_view to_string(Filter f);

struct Rejection {
  uint32_t host_index = 0;
  std::string host_id;
  std::string host_name;
  Filter filter = Filter::state;
  std::string reason;  // "needs 4096 MiB, 1024 MiB free"

  // "host-3: memory: needs 4096 MiB, 1024 MiB free" (uses the name).
  std::string to_string() const;
};

struct Candidate {
  uint32_t host_index = 0;
  std::string host_id;
  double score = 0;  // 0..100, higher is better
};

struct Explanation {
  std::vector<Rejection> rejections;                 // in host order
  std::array<uint32_t, kFilterCount> rejected_by{};  // count per Filter
  std::vector<Candidate> candidates;                 // hosts that passed every filter, best first
                                                     // (ties: smaller host id first)

  // "memory filter rejected 7 hosts, state filter rejected 2 hosts" (largest first;
  // empty when nothing was rejected).
  std::string summary() const;
};

}  // namespace strata::sched
