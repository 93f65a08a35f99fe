// Human-readable reasons for filter rejections, built only when an explanation is asked
// for or when nothing fits (never in the hot path).
#include <algorithm>
#include <charconv>
#include <cmath>

#include "host_check.h"

namespace strata::sched::detail {
namespace {

std::string number(double v) {
  char buf[32];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  if (ec != std::errc()) return "?";
  return std::string(buf, end);
}

// What is left of a capacity, floored, never negative (allocation may exceed capacity
// after an overcommit ratio was lowered).
uint64_t free_units(double capacity, double allocated) {
  double left = std::floor(capacity - allocated);
  return left > 0 ? static_cast<uint64_t>(left) : 0;
}

std::string label_text(const Snapshot& snapshot, const HostRecord& h,
                       const std::vector<SnapshotAccess::Label>& pool,
                       const PlacementRequest& request) {
  // Walk the request's selector by string so unknown keys/values are named too.
  for (const auto& [key, want] : request.node_selector) {
    std::optional<uint32_t> key_id = SnapshotAccess::lookup(snapshot, key);
    const SnapshotAccess::Label* l = nullptr;
    if (key_id) {
      for (uint32_t i = 0; i < h.labels_count; ++i) {
        if (pool[h.labels_begin + i].key == *key_id) l = &pool[h.labels_begin + i];
      }
    }
    if (l == nullptr) return "label " + key + " missing, request needs " + key + "=" + want;
    const std::string& have = SnapshotAccess::string(snapshot, l->value);
    if (have != want) {
      return "label " + key + "=" + have + ", request needs " + key + "=" + want;
    }
  }
  return "labels do not match the node selector";
}

}  // namespace

std::string reason(const Snapshot& snapshot, const CompiledRequest& c, uint32_t index,
                   Filter filter) {
  const HostRecord& h = snapshot.record(index);
  const PlacementRequest& req = *c.request;
  switch (filter) {
    case Filter::pin:
      return "request is pinned to host " + req.pinned_host;
    case Filter::state:
      return h.traits.state == HostState::maintenance
                 ? "host is in maintenance"
                 : "host is " + std::string(to_string(h.traits.state));
    case Filter::arch:
      return "host arch is " + SnapshotAccess::string(snapshot, h.traits.arch) +
             ", request needs " + req.arch;
    case Filter::accelerator:
      return "host accelerator is " + std::string(to_string(h.traits.accelerator)) +
             ", request needs " + std::string(to_string(req.accelerator));
    case Filter::selector:
      return label_text(snapshot, h, SnapshotAccess::labels(snapshot), req);
    case Filter::datastore: {
      std::string missing;
      for (const std::string& d : req.datastores) {
        std::optional<uint32_t> id = SnapshotAccess::lookup(snapshot, d);
        const std::vector<uint32_t>* hosts = id ? SnapshotAccess::datastore_hosts(snapshot, *id) : nullptr;
        if (!hosts || !std::binary_search(hosts->begin(), hosts->end(), index))
          missing += (missing.empty() ? "" : ", ") + d;
      }
      return "does not mount datastore " + missing + " (the VM's disks are there)";
    }
    case Filter::network: {
      auto offered = [&](const std::string& token) {
        std::optional<uint32_t> id = SnapshotAccess::lookup(snapshot, token);
        const std::vector<uint32_t>* hosts =
            id ? SnapshotAccess::network_hosts(snapshot, *id) : nullptr;
        return hosts && std::binary_search(hosts->begin(), hosts->end(), index);
      };
      for (const std::string& n : req.networks)
        if (!offered(n)) return network_shortfall(n, offered);
      return "lacks a network the VM's NICs join";
    }
    case Filter::cpu_model:
      if (req.cpu_model.rfind("cpu-sig:", 0) == 0)
        return "the VM runs with its first host's own CPU (host/max), and this host's CPU differs";
      return "cannot offer CPU model " + req.cpu_model + " (the VM runs with it)";
    case Filter::anti_affinity:
      return "a VM of anti-affinity group " + req.anti_affinity_group +
             " already runs on this host";
    case Filter::avoid: {
      std::string pairs;
      for (const auto& [k, v] : req.avoid_selector) pairs += (pairs.empty() ? "" : ",") + k + "=" + v;
      return "the VM keeps off hosts labelled " + pairs;
    }
    case Filter::affinity: {
      std::string where;
      for (uint32_t i : c.together_up)
        where += (where.empty() ? "" : ", ") + snapshot.name(i);
      return "keep-together group " + req.affinity_group + " runs on " + where;
    }
    case Filter::cpu: {
      double capacity = h.total_vcpus * c.cpu_overcommit;
      std::string s = "needs " + std::to_string(req.vcpus) + " vCPUs, " +
                      std::to_string(free_units(capacity, h.allocated_vcpus)) + " free";
      s += " (capacity " + number(std::floor(capacity)) + " = " + std::to_string(h.total_vcpus) +
           " threads x " + number(c.cpu_overcommit) + ", " + std::to_string(h.allocated_vcpus) +
           " allocated)";
      return s;
    }
    case Filter::memory: {
      double capacity = static_cast<double>(h.total_memory_mib) * c.mem_overcommit;
      std::string s =
          "needs " + std::to_string(req.memory_mib) + " MiB, " +
          std::to_string(free_units(capacity, static_cast<double>(h.allocated_memory_mib))) +
          " MiB free";
      if (c.mem_overcommit != 1.0) {
        s += " (capacity " + number(std::floor(capacity)) +
             " MiB = " + std::to_string(h.total_memory_mib) + " MiB x " + number(c.mem_overcommit) +
             ")";
      }
      return s;
    }
  }
  return "rejected";
}

}  // namespace strata::sched::detail
