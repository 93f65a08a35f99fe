// Snapshot: validation and compaction of HostInfo values, and reconstruction for readers.
#include "strata/sched/snapshot.h"

#include <algorithm>
#include <limits>

namespace strata::sched {

std::string_view to_string(HostState s) {
  switch (s) {
    case HostState::up:
      return "up";
    case HostState::unreachable:
      return "unreachable";
    case HostState::maintenance:
      return "maintenance";
  }
  return "unknown";
}

std::string_view to_string(Accelerator a) {
  switch (a) {
    case Accelerator::kvm:
      return "kvm";
    case Accelerator::tcg:
      return "tcg";
  }
  return "unknown";
}

uint32_t Snapshot::intern(std::string_view s) {
  auto it = string_ids_.find(s);
  if (it != string_ids_.end()) return it->second;
  auto id = static_cast<uint32_t>(strings_.size());
  strings_.emplace_back(s);
  string_ids_.emplace(std::string(s), id);
  return id;
}

std::optional<uint32_t> Snapshot::lookup(std::string_view s) const {
  auto it = string_ids_.find(s);
  if (it == string_ids_.end()) return std::nullopt;
  return it->second;
}

Result<Snapshot> Snapshot::build(std::vector<HostInfo> hosts) {
  std::sort(hosts.begin(), hosts.end(),
            [](const HostInfo& a, const HostInfo& b) { return a.id < b.id; });
  if (hosts.size() >= std::numeric_limits<uint32_t>::max()) {
    return invalid_argument("hosts", "too many hosts");
  }
  Snapshot snap;
  snap.records_.reserve(hosts.size());
  snap.ids_.reserve(hosts.size());
  snap.names_.reserve(hosts.size());
  snap.index_by_id_.reserve(hosts.size());
  for (size_t i = 0; i < hosts.size(); ++i) {
    HostInfo& h = hosts[i];
    std::string field = "hosts[" + h.id + "]";
    if (h.id.empty()) return invalid_argument("hosts.id", "host id must not be empty");
    if (!snap.ids_.empty() && snap.ids_.back() == h.id) {  // sorted: duplicates are adjacent
      return invalid_argument(field + ".id", "duplicate host id '" + h.id + "'");
    }
    if (h.labels.size() > std::numeric_limits<uint16_t>::max()) {
      return invalid_argument(field + ".labels", "too many labels");
    }
    auto index = static_cast<uint32_t>(i);
    HostRecord r;
    r.allocated_vcpus = h.allocated_vcpus;
    r.total_vcpus = h.total_vcpus;
    r.allocated_memory_mib = h.allocated_memory_mib;
    r.total_memory_mib = h.total_memory_mib;
    r.inv_total_vcpus = h.total_vcpus ? 1.0 / h.total_vcpus : 0.0;
    r.inv_total_memory_mib =
        h.total_memory_mib ? 1.0 / static_cast<double>(h.total_memory_mib) : 0.0;
    r.traits.state = h.state;
    r.traits.accelerator = h.accelerator;
    uint32_t arch = snap.intern(h.arch);
    if (arch > std::numeric_limits<uint16_t>::max()) {
      return invalid_argument(field + ".arch", "too many distinct architectures");
    }
    r.traits.arch = static_cast<uint16_t>(arch);
    r.labels_begin = static_cast<uint32_t>(snap.label_pool_.size());
    r.labels_count = static_cast<uint16_t>(h.labels.size());
    // std::map iterates keys in order; interned ids are not ordered, so sort the run by
    // key id for the selector check.
    for (const auto& [k, v] : h.labels) {
      snap.label_pool_.push_back(Label{snap.intern(k), snap.intern(v)});
    }
    std::sort(snap.label_pool_.begin() + r.labels_begin, snap.label_pool_.end(),
              [](const Label& a, const Label& b) { return a.key < b.key; });
    for (const std::string& g : h.anti_affinity_groups) {
      std::vector<uint32_t>& members = snap.group_hosts_[snap.intern(g)];
      // Hosts are visited in index order, so members stay sorted; skip duplicates.
      if (members.empty() || members.back() != index) members.push_back(index);
    }
    for (const std::string& g : h.affinity_groups) {
      std::vector<uint32_t>& members = snap.together_hosts_[snap.intern(g)];
      if (members.empty() || members.back() != index) members.push_back(index);
    }
    for (const std::string& d : h.datastores) {
      std::vector<uint32_t>& members = snap.datastore_hosts_[snap.intern(d)];
      if (members.empty() || members.back() != index) members.push_back(index);
    }
    for (const std::string& m : h.cpu_offers) {
      std::vector<uint32_t>& members = snap.cpu_hosts_[snap.intern(m)];
      if (members.empty() || members.back() != index) members.push_back(index);
    }
    for (const std::string& n : h.networks) {
      std::vector<uint32_t>& members = snap.network_hosts_[snap.intern(n)];
      if (members.empty() || members.back() != index) members.push_back(index);
    }
    snap.records_.push_back(r);
    snap.names_.push_back(h.name.empty() ? h.id : std::move(h.name));
    snap.index_by_id_.emplace(h.id, index);
    snap.ids_.push_back(std::move(h.id));
  }
  return snap;
}

std::string network_token(std::string_view bridge, bool vlan) {
  return std::string(vlan ? "bridge-vlan:" : "bridge:") + std::string(bridge);
}

std::string network_shortfall(const std::string& needed,
                              const std::function<bool(const std::string&)>& offers) {
  constexpr std::string_view kVlan = "bridge-vlan:";
  if (needed.rfind(kVlan, 0) == 0) {
    std::string bridge = needed.substr(kVlan.size());
    if (offers(network_token(bridge, false)))
      return "bridge " + bridge +
             " cannot put a NIC on a VLAN (the host's kernel has no bridge VLAN filtering, "
             "CONFIG_BRIDGE_VLAN_FILTERING)";
    return "has no bridge " + bridge + " (a NIC of the VM joins it on a VLAN)";
  }
  return "has no bridge " + needed.substr(needed.find(':') + 1) + " (a NIC of the VM joins it)";
}

std::optional<uint32_t> Snapshot::find(std::string_view id) const {
  auto it = index_by_id_.find(id);
  if (it == index_by_id_.end()) return std::nullopt;
  return it->second;
}

HostInfo Snapshot::host(uint32_t index) const {
  const HostRecord& r = records_[index];
  HostInfo h;
  h.id = ids_[index];
  h.name = names_[index];
  h.state = r.traits.state;
  h.arch = strings_[r.traits.arch];
  h.accelerator = r.traits.accelerator;
  h.total_vcpus = r.total_vcpus;
  h.total_memory_mib = r.total_memory_mib;
  h.allocated_vcpus = r.allocated_vcpus;
  h.allocated_memory_mib = r.allocated_memory_mib;
  for (uint32_t i = 0; i < r.labels_count; ++i) {
    const Label& l = label_pool_[r.labels_begin + i];
    h.labels.emplace(strings_[l.key], strings_[l.value]);
  }
  for (const auto& [group, members] : group_hosts_) {
    if (std::binary_search(members.begin(), members.end(), index)) {
      h.anti_affinity_groups.push_back(strings_[group]);
    }
  }
  std::sort(h.anti_affinity_groups.begin(), h.anti_affinity_groups.end());
  for (const auto& [group, members] : together_hosts_)
    if (std::binary_search(members.begin(), members.end(), index))
      h.affinity_groups.push_back(strings_[group]);
  std::sort(h.affinity_groups.begin(), h.affinity_groups.end());
  for (const auto& [id, members] : datastore_hosts_)
    if (std::binary_search(members.begin(), members.end(), index))
      h.datastores.push_back(strings_[id]);
  std::sort(h.datastores.begin(), h.datastores.end());
  for (const auto& [id, members] : cpu_hosts_)
    if (std::binary_search(members.begin(), members.end(), index))
      h.cpu_offers.push_back(strings_[id]);
  std::sort(h.cpu_offers.begin(), h.cpu_offers.end());
  for (const auto& [id, members] : network_hosts_)
    if (std::binary_search(members.begin(), members.end(), index))
      h.networks.push_back(strings_[id]);
  std::sort(h.networks.begin(), h.networks.end());
  return h;
}

}  // namespace strata::sched
