// Migration concurrency limits (see migration_slots.h).
#include "strata/manager/controllers/migration_slots.h"

#include <fmt/format.h>

#include <algorithm>

namespace strata::manager {

int MigrationSlots::in_use(const std::string& host_id) const {
  int n = 0;
  for (const auto& [vm, e] : running_) n += (e.source.id == host_id) + (e.target.id == host_id);
  return n;
}

bool MigrationSlots::Ends::shares_a_host_with(const Ends& o) const {
  return o.source.id == source.id || o.source.id == target.id || o.target.id == source.id ||
         o.target.id == target.id;
}

bool MigrationSlots::waiting(const std::string& vm_id) const {
  return std::any_of(waiting_.begin(), waiting_.end(),
                     [&](const auto& w) { return w.first == vm_id; });
}

bool MigrationSlots::fits(const Ends& e) const {
  return static_cast<int>(running_.size()) < limits_.total &&
         in_use(e.source.id) < limits_.per_host && in_use(e.target.id) < limits_.per_host;
}

std::string MigrationSlots::why_not(const Ends& e) const {
  if (static_cast<int>(running_.size()) >= limits_.total)
    return fmt::format("queued: {} migrations run (limit {} in all)", running_.size(),
                       limits_.total);
  for (const Host* h : {&e.source, &e.target})
    if (int n = in_use(h->id); n >= limits_.per_host)
      return fmt::format("queued: host {} runs {} migration{} (limit {} per host)", h->name, n,
                         n == 1 ? "" : "s", limits_.per_host);
  return "";
}

MigrationSlots::Admission MigrationSlots::admit(const std::string& vm_id, const Host& source,
                                                const Host& target, bool resumed) {
  if (running_.count(vm_id)) return {true, ""};
  Ends ends{source, target};
  auto self = std::find_if(waiting_.begin(), waiting_.end(),
                           [&](const auto& w) { return w.first == vm_id; });
  if (!resumed) {
    // Earlier waiters on one of the same hosts go first.
    int earlier = 0;
    const Host* shared = nullptr;
    for (auto it = waiting_.begin(); it != self && it != waiting_.end(); ++it) {
      if (!it->second.shares_a_host_with(ends)) continue;
      ++earlier;
      if (!shared) {
        const Ends& o = it->second;
        shared = (o.source.id == source.id || o.target.id == source.id) ? &source : &target;
      }
    }
    if (earlier > 0) {
      std::string why = fmt::format("queued: {} earlier migration{} on host {} wait{} first",
                                    earlier, earlier == 1 ? "" : "s", shared->name,
                                    earlier == 1 ? "s" : "");
      if (self == waiting_.end()) waiting_.emplace_back(vm_id, ends);
      return {false, why};
    }
    if (!fits(ends)) {
      std::string why = why_not(ends);
      if (self == waiting_.end())
        waiting_.emplace_back(vm_id, ends);
      else
        self->second = ends;
      return {false, why};
    }
  }
  if (self != waiting_.end()) waiting_.erase(self);
  running_[vm_id] = ends;
  return {true, ""};
}

std::vector<std::string> MigrationSlots::release(const std::string& vm_id) {
  running_.erase(vm_id);
  waiting_.erase(std::remove_if(waiting_.begin(), waiting_.end(),
                                [&](const auto& w) { return w.first == vm_id; }),
                 waiting_.end());
  // Who could start now, as admit() will decide it (arrival order, no overtaking).
  std::vector<std::string> ready;
  MigrationSlots probe = *this;
  for (const auto& [vm, e] : waiting_) {
    if (probe.admit(vm, e.source, e.target, false).started) ready.push_back(vm);
  }
  return ready;
}

}  // namespace strata::manager
