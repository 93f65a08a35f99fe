// Clusters and their CPU baseline (see clusters.h).
#include "strata/manager/controllers/clusters.h"

#include <fmt/format.h>

#include <algorithm>

#include "strata/common/log.h"
#include "strata/manager/controllers/cpu_models.h"
#include "strata/model/validation.h"
#include "strata/sched/cpu_baseline.h"

namespace strata::manager {

namespace {

constexpr const char* kActor = "controller:cluster";

Status validate_baseline_setting(const std::string& v) {
  if (v == "auto") return {};
  if (v.empty()) return invalid_argument("cpu_baseline", "cpu_baseline is \"auto\" or a CPU model name");
  if (sched::host_dependent_cpu(v))
    return invalid_argument("cpu_baseline",
                            "a cluster baseline must be a named model; \"" + v +
                                "\" differs from host to host");
  return model::validate_cpu_model("cpu_baseline", v);
}

Result<std::vector<store::HostRecord>> members(store::Store& store, const std::string& cluster) {
  auto hosts = store.list_hosts({});
  if (!hosts) return tl::unexpected(hosts.error());
  std::vector<store::HostRecord> out;
  for (auto& h : *hosts)
    if (h.cluster == cluster) out.push_back(std::move(h));
  return out;
}

std::vector<sched::HostCpu> cpus_of(const std::vector<store::HostRecord>& hosts) {
  std::vector<sched::HostCpu> out;
  out.reserve(hosts.size());
  for (const auto& h : hosts) out.push_back(host_cpu(h.name, h.inventory));
  return out;
}

// The baseline in force for a cluster and why.
sched::Baseline baseline_of(const store::ClusterRecord& c, const std::vector<sched::HostCpu>& cpus) {
  if (c.cpu_baseline == "auto") return sched::compute_baseline(cpus);
  sched::Baseline b;
  b.model = c.cpu_baseline;
  std::vector<std::string> short_hosts;
  for (const auto& h : cpus)
    if (auto why = sched::cannot_offer(h, c.cpu_baseline)) short_hosts.push_back(h.host + ": " + *why);
  b.reason = c.cpu_baseline + ": fixed for the cluster";
  if (!short_hosts.empty()) {
    b.reason += "; hosts that cannot offer it (their VMs keep their CPU, no VM moves there): ";
    for (size_t i = 0; i < short_hosts.size(); ++i) b.reason += (i ? "; " : "") + short_hosts[i];
  }
  return b;
}

}  // namespace

ClusterService::ClusterService(store::Store& store, EventLog& events, ClockPtr clock)
    : store_(store), events_(events), clock_(std::move(clock)) {}

Status ClusterService::ensure_default() {
  auto c = store_.get_cluster_by_name(kDefaultCluster);
  if (c) return {};
  if (c.error().code != ErrorCode::not_found) return tl::unexpected(c.error());
  store::ClusterRecord rec;
  rec.name = kDefaultCluster;
  auto made = store_.create_cluster(rec);
  if (!made && made.error().code != ErrorCode::already_exists) return tl::unexpected(made.error());
  return {};
}

Result<store::ClusterRecord> ClusterService::recompute(store::ClusterRecord c) {
  auto hosts = members(store_, c.name);
  if (!hosts) return tl::unexpected(hosts.error());
  sched::Baseline b = baseline_of(c, cpus_of(*hosts));
  {
    std::lock_guard lock(mu_);
    computed_at_[c.name] = clock_->now();
  }
  if (b.model == c.cpu_model && b.reason == c.cpu_reason) return c;
  const std::string was = c.cpu_model;
  c.cpu_model = b.model;
  c.cpu_reason = b.reason;
  auto written = store_.update_cluster(c);
  if (!written) {
    // Another writer got there first: theirs is as fresh; read it back.
    if (written.error().code == ErrorCode::conflict) return store_.get_cluster_by_name(c.name);
    return written;
  }
  if (was != b.model) {
    logger("manager.clusters")
        ->info("cluster baseline cluster={} was={} now={} reason=\"{}\"", c.name, was, b.model,
               b.reason);
    events_.append(kActor, "cluster.cpu_baseline", "cluster/" + c.name,
                   b.model.empty() ? "warning" : "ok",
                   fmt::format("CPU baseline {} -> {}: {}", was.empty() ? "(none)" : was,
                               b.model.empty() ? "(none)" : b.model, b.reason));
  }
  return written;
}

Result<store::ClusterRecord> ClusterService::current(const std::string& name) {
  auto c = store_.get_cluster_by_name(name);
  if (!c) return c;
  bool fresh = false;
  {
    std::lock_guard lock(mu_);
    auto it = computed_at_.find(name);
    fresh = it != computed_at_.end() && clock_->now() - it->second < kRecompute;
  }
  if (fresh) return c;
  return recompute(std::move(*c));
}

Result<std::string> ClusterService::cpu_model_for(const store::HostRecord& host) {
  auto c = current(host.cluster);
  if (!c) {
    if (c.error().code == ErrorCode::not_found) return std::string();
    return tl::unexpected(c.error());
  }
  // A host of a fixed cluster that cannot offer its model (its CPU changed since it
  // joined) runs new VMs with its own default rather than fail them.
  if (!c->cpu_model.empty() && sched::cannot_offer(host_cpu(host.name, host.inventory), c->cpu_model))
    return std::string();
  return c->cpu_model;
}

Result<std::vector<store::ClusterRecord>> ClusterService::list() {
  auto all = store_.list_clusters();
  if (!all) return all;
  for (auto& c : *all)
    if (auto cur = current(c.name)) c = std::move(*cur);
  return all;
}

Result<ClusterView> ClusterService::view(const std::string& name) {
  auto c = current(name);
  if (!c) return tl::unexpected(c.error());
  auto hosts = members(store_, name);
  if (!hosts) return tl::unexpected(hosts.error());
  ClusterView v;
  v.cluster = std::move(*c);
  for (const auto& h : *hosts) {
    sched::HostCpu cpu = host_cpu(h.name, h.inventory);
    ClusterHostView hv;
    hv.name = h.name;
    hv.state = h.state;
    hv.probed = cpu.probed;
    auto why = sched::cannot_offer(cpu, v.cluster.cpu_model);
    hv.offers = !v.cluster.cpu_model.empty() && !why;
    if (why) hv.why_not = *why;
    hv.best_model = sched::compute_baseline({cpu}).model;
    v.hosts.push_back(std::move(hv));
  }
  std::sort(v.hosts.begin(), v.hosts.end(),
            [](const ClusterHostView& a, const ClusterHostView& b) { return a.name < b.name; });
  return v;
}

Result<store::ClusterRecord> ClusterService::create(const std::string& name,
                                                    const std::string& cpu_baseline,
                                                    const std::string& actor) {
  if (auto st = model::validate_name("name", name); !st) return tl::unexpected(st.error());
  std::string setting = cpu_baseline.empty() ? "auto" : cpu_baseline;
  if (auto st = validate_baseline_setting(setting); !st) return tl::unexpected(st.error());
  store::ClusterRecord rec;
  rec.name = name;
  rec.cpu_baseline = setting;
  if (setting != "auto") {
    rec.cpu_model = setting;
    rec.cpu_reason = setting + ": fixed for the cluster";
  }
  store::ClusterRecord made;
  auto st = store_.transaction([&](store::Store& tx) -> Status {
    auto c = tx.create_cluster(rec);
    if (!c) return tl::unexpected(c.error());
    made = *c;
    auto e = EventLog::append_in(tx, actor, "cluster.create", "cluster/" + name, "ok",
                                 "CPU baseline " + setting);
    if (!e) return tl::unexpected(e.error());
    return {};
  });
  if (!st) return tl::unexpected(st.error());
  return made;
}

Result<store::ClusterRecord> ClusterService::set_baseline(const std::string& name,
                                                          const std::string& cpu_baseline,
                                                          const std::string& actor) {
  if (auto st = validate_baseline_setting(cpu_baseline); !st) return tl::unexpected(st.error());
  auto c = store_.get_cluster_by_name(name);
  if (!c) return c;
  auto hosts = members(store_, name);
  if (!hosts) return tl::unexpected(hosts.error());
  if (cpu_baseline != "auto") {
    std::vector<std::string> refused;
    for (const auto& cpu : cpus_of(*hosts))
      if (auto why = sched::cannot_offer(cpu, cpu_baseline)) refused.push_back(cpu.host + " " + *why);
    if (!refused.empty()) {
      std::string msg = "not every host of cluster " + name + " can offer " + cpu_baseline + ": ";
      for (size_t i = 0; i < refused.size(); ++i) msg += (i ? "; " : "") + refused[i];
      return make_error(ErrorCode::failed_precondition, msg, "cpu_baseline");
    }
  }
  c->cpu_baseline = cpu_baseline;
  auto updated = store_.update_cluster(*c);
  if (!updated) return updated;
  events_.append(actor, "cluster.update", "cluster/" + name, "ok", "CPU baseline setting " + cpu_baseline);
  invalidate(name);
  return current(name);
}

Status ClusterService::remove(const std::string& name, const std::string& actor) {
  if (name == kDefaultCluster)
    return make_error(ErrorCode::failed_precondition, "the default cluster cannot be deleted", "name");
  auto c = store_.get_cluster_by_name(name);
  if (!c) return tl::unexpected(c.error());
  auto hosts = members(store_, name);
  if (!hosts) return tl::unexpected(hosts.error());
  if (!hosts->empty()) {
    std::string names;
    for (const auto& h : *hosts) names += (names.empty() ? "" : ", ") + h.name;
    return make_error(ErrorCode::failed_precondition,
                      "cluster " + name + " still has hosts (move them first): " + names, "name");
  }
  if (auto st = store_.delete_cluster(c->id, c->resource_version); !st) return st;
  events_.append(actor, "cluster.delete", "cluster/" + name, "ok", "");
  std::lock_guard lock(mu_);
  computed_at_.erase(name);
  return {};
}

Status ClusterService::admit(const std::string& cluster, const std::string& host_name,
                             const std::string& inventory_json) {
  auto c = store_.get_cluster_by_name(cluster);
  if (!c) {
    if (c.error().code == ErrorCode::not_found)
      return invalid_argument("cluster", "no cluster named " + cluster);
    return tl::unexpected(c.error());
  }
  if (c->cpu_baseline == "auto") return {};
  if (auto why = sched::cannot_offer(host_cpu(host_name, inventory_json), c->cpu_baseline))
    return make_error(ErrorCode::failed_precondition,
                      "host " + host_name + " cannot join cluster " + cluster + ", whose CPU baseline is fixed at " +
                          c->cpu_baseline + ": " + *why +
                          " (lower the cluster's baseline, or set it to auto)",
                      "cluster");
  return {};
}

void ClusterService::invalidate(const std::string& name) {
  std::lock_guard lock(mu_);
  computed_at_.erase(name);
}

}  // namespace strata::manager
