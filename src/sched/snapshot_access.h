// Private to src/sched: the scheduler's and placement helper's access to the compact
// snapshot (records, interned strings, label pool, anti-affinity membership).
#pragma once

#include <optional>
#include <string_view>
#include <vector>

#include "strata/sched/snapshot.h"

namespace strata::sched::detail {

struct SnapshotAccess {
  using Label = Snapshot::Label;

  static const std::vector<HostRecord>& records(const Snapshot& s) { return s.records_; }
  static std::vector<HostRecord>& records(Snapshot& s) { return s.records_; }
  static const std::vector<Label>& labels(const Snapshot& s) { return s.label_pool_; }
  static const std::string& string(const Snapshot& s, uint32_t id) { return s.strings_[id]; }
  static std::optional<uint32_t> lookup(const Snapshot& s, std::string_view str) {
    return s.lookup(str);
  }
  static uint32_t intern(Snapshot& s, std::string_view str) { return s.intern(str); }
  // Sorted host indices holding `group`, or nullptr when no host holds it.
  static const std::vector<uint32_t>* group_hosts(const Snapshot& s, uint32_t group) {
    auto it = s.group_hosts_.find(group);
    return it == s.group_hosts_.end() ? nullptr : &it->second;
  }
  static std::vector<uint32_t>& group_hosts(Snapshot& s, uint32_t group) {
    return s.group_hosts_[group];
  }
  // Sorted host indices holding keep-together `group`, or nullptr when none does.
  static const std::vector<uint32_t>* together_hosts(const Snapshot& s, uint32_t group) {
    auto it = s.together_hosts_.find(group);
    return it == s.together_hosts_.end() ? nullptr : &it->second;
  }
  static std::vector<uint32_t>& together_hosts(Snapshot& s, uint32_t group) {
    return s.together_hosts_[group];
  }
  // Sorted host indices offering CPU token `id`, or nullptr when none does.
  static const std::vector<uint32_t>* cpu_hosts(const Snapshot& s, uint32_t id) {
    auto it = s.cpu_hosts_.find(id);
    return it == s.cpu_hosts_.end() ? nullptr : &it->second;
  }
  // Sorted host indices offering network token `id`, or nullptr when none does.
  static const std::vector<uint32_t>* network_hosts(const Snapshot& s, uint32_t id) {
    auto it = s.network_hosts_.find(id);
    return it == s.network_hosts_.end() ? nullptr : &it->second;
  }
  // Sorted host indices mounting datastore `id`, or nullptr when none does.
  static const std::vector<uint32_t>* datastore_hosts(const Snapshot& s, uint32_t id) {
    auto it = s.datastore_hosts_.find(id);
    return it == s.datastore_hosts_.end() ? nullptr : &it->second;
  }
};

}  // namespace strata::sched::detail
