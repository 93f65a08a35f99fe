// The cluster CPU baseline (see cpu_baseline.h).
#include "strata/sched/cpu_baseline.h"

#include <algorithm>
#include <set>

namespace strata::sched {
namespace {

// "a, b, c, +5 more": at most `max` names of `total` (>= v.size()).
std::string join(const std::vector<std::string>& v, size_t max = 6, size_t total = 0) {
  std::string out;
  for (size_t i = 0; i < v.size() && i < max; ++i) out += (i ? ", " : "") + v[i];
  size_t shown = std::min(v.size(), max);
  total = std::max(total, v.size());
  if (total > shown) out += ", +" + std::to_string(total - shown) + " more";
  return out;
}

size_t lacking_total(const HostCpu& h, const std::string& model) {
  auto it = h.lacking_count.find(model);
  return it == h.lacking_count.end() ? 0 : it->second;
}

bool is_deprecated(const HostCpu& h, const std::string& model) {
  return std::find(h.deprecated.begin(), h.deprecated.end(), model) != h.deprecated.end();
}

// Orders candidate models best first: not deprecated, most features, then by name.
struct Ranked {
  std::string model;
  bool deprecated = false;
  size_t features = 0;
  bool operator<(const Ranked& o) const {
    if (deprecated != o.deprecated) return !deprecated;
    if (features != o.features) return features > o.features;
    return model > o.model;  // a tie goes to the later version ("-v4" over "-v3")
  }
};

}  // namespace

bool host_dependent_cpu(const std::string& model) { return model == "host" || model == "max"; }

Baseline compute_baseline(const std::vector<HostCpu>& hosts) {
  Baseline out;
  std::vector<const HostCpu*> probed;
  std::vector<std::string> unprobed;
  for (const auto& h : hosts) (h.probed ? probed.push_back(&h) : unprobed.push_back(h.host));
  std::string unprobed_note =
      unprobed.empty() ? ""
                       : "; not probed (no named models until their agent reports them): " +
                             join(unprobed);
  if (probed.empty()) {
    out.reason = hosts.empty() ? "no hosts" : "no host reported its CPU models" + unprobed_note;
    return out;
  }
  // Every model some host offers, ranked by what the first host that offers it says
  // (a model's features are QEMU's definition: the same on every host of one QEMU).
  std::map<std::string, Ranked> candidates;
  for (const HostCpu* h : probed)
    for (const auto& [model, features] : h->usable) {
      auto& r = candidates[model];
      r.model = model;
      r.features = std::max(r.features, features);
      r.deprecated = r.deprecated || is_deprecated(*h, model);
    }
  std::vector<Ranked> ranked;
  for (auto& [_, r] : candidates) ranked.push_back(r);
  std::sort(ranked.begin(), ranked.end());
  auto offered_by_all = [&](const std::string& model) {
    return std::all_of(probed.begin(), probed.end(),
                       [&](const HostCpu* h) { return h->usable.count(model) > 0; });
  };
  const Ranked* best = nullptr;
  const Ranked* better = nullptr;  // the best model that some but not all hosts offer
  for (const auto& r : ranked) {
    if (offered_by_all(r.model)) {
      best = &r;
      break;
    }
    if (!better) better = &r;
  }
  if (!best) {
    out.reason = "the " + std::to_string(probed.size()) +
                 " hosts share no named CPU model (different vendors?)" + unprobed_note;
    return out;
  }
  out.model = best->model;
  out.reason = best->model + (probed.size() == 1
                                  ? std::string(": the most capable model the one host offers")
                                  : ": the most capable model all " +
                                        std::to_string(probed.size()) + " hosts offer");
  if (better) {
    std::vector<std::string> short_hosts;
    for (const HostCpu* h : probed)
      if (!h->usable.count(better->model)) {
        auto it = h->lacking.find(better->model);
        short_hosts.push_back(h->host + (it != h->lacking.end() && !it->second.empty()
                                             ? " lacks " + join(it->second, 4, lacking_total(*h, better->model))
                                             : " does not know it"));
      }
    out.reason += "; " + better->model + " would need: ";
    for (size_t i = 0; i < short_hosts.size() && i < 4; ++i) out.reason += (i ? "; " : "") + short_hosts[i];
    if (short_hosts.size() > 4) out.reason += "; +" + std::to_string(short_hosts.size() - 4) + " more hosts";
  }
  out.reason += unprobed_note;
  return out;
}

std::optional<std::string> cannot_offer(const HostCpu& host, const std::string& model,
                                        const std::string& signature) {
  if (model.empty()) return std::nullopt;
  if (host_dependent_cpu(model)) {
    if (signature.empty() || signature == host.signature) return std::nullopt;
    return "the VM runs with CPU '" + model +
           "' (the CPU of the host it started on), and this host's CPU differs";
  }
  if (!host.probed) return "its agent reported no CPU models";
  if (host.usable.count(model)) return std::nullopt;
  auto it = host.lacking.find(model);
  if (it == host.lacking.end()) return "its QEMU does not know CPU model " + model;
  return "lacks " + join(it->second, 6, lacking_total(host, model)) + " for CPU model " + model;
}

}  // namespace strata::sched
