// Explanation rendering: per-host lines and the per-filter summary.
#include "strata/sched/explanation.h"

#include <algorithm>

namespace strata::sched {

std::string_view to_string(Filter f) {
  switch (f) {
    case Filter::pin:
      return "pin";
    case Filter::state:
      return "state";
    case Filter::arch:
      return "arch";
    case Filter::accelerator:
      return "accelerator";
    case Filter::selector:
      return "selector";
    case Filter::avoid:
      return "avoid";
    case Filter::datastore:
      return "datastore";
    case Filter::network:
      return "network";
    case Filter::cpu_model:
      return "cpu-model";
    case Filter::anti_affinity:
      return "anti-affinity";
    case Filter::affinity:
      return "affinity";
    case Filter::cpu:
      return "cpu";
    case Filter::memory:
      return "memory";
  }
  return "unknown";
}

std::string Rejection::to_string() const {
  return host_name + ": " + std::string(sched::to_string(filter)) + ": " + reason;
}

std::string Explanation::summary() const {
  std::vector<size_t> order;
  for (size_t f = 0; f < kFilterCount; ++f) {
    if (rejected_by[f] > 0) order.push_back(f);
  }
  // Largest count first; equal counts in filter order (stable).
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return rejected_by[a] > rejected_by[b]; });
  std::string s;
  for (size_t f : order) {
    if (!s.empty()) s += ", ";
    s += std::string(sched::to_string(static_cast<Filter>(f))) + " filter rejected " +
         std::to_string(rejected_by[f]) + (rejected_by[f] == 1 ? " host" : " hosts");
  }
  return s;
}

}  // namespace strata::sched
