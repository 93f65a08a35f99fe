// Clusters and their CPU baseline (what VMware calls EVC; docs/internals/clusters.md).
// Every host belongs to one cluster ("default" unless chosen); a VM whose spec names no
// CPU model starts with its host's cluster baseline, so any host of the cluster can run
// it and take it in a live migration. The baseline is either computed ("auto": the most
// capable model every host of the cluster offers, lowered when a host that cannot offer
// it joins) or fixed (a model name: a host that cannot offer it is refused). VMs that
// run with another CPU keep it until their next start, when they adopt the baseline.
#pragma once

#include <chrono>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "strata/common/clock.h"
#include "strata/common/error.h"
#include "strata/manager/events/event_log.h"
#include "strata/store/store.h"

namespace strata::manager {

inline constexpr const char* kDefaultCluster = "default";

// One host of a cluster as `clusters show` presents it.
struct ClusterHostView {
  std::string name;
  std::string state;
  bool probed = false;      // its agent reported its CPU models
  bool offers = false;      // it can run the baseline in force
  std::string why_not;      // when it cannot
  std::string best_model;   // the most capable model it offers alone
};

struct ClusterView {
  store::ClusterRecord cluster;
  std::vector<ClusterHostView> hosts;  // by name
};

class ClusterService {
 public:
  ClusterService(store::Store& store, EventLog& events, ClockPtr clock);

  // Creates "default" when it does not exist (at manager start).
  Status ensure_default();

  // The cluster with its baseline in force, recomputed from its hosts when the stored one
  // is older than `kRecompute` of clock time or was invalidated; a change is written with
  // a cluster.cpu_baseline event. not_found for an unknown name.
  Result<store::ClusterRecord> current(const std::string& name);
  // The CPU model a VM gets on `host` when its spec names none ("" when the cluster has
  // no baseline yet: the host's own default then).
  Result<std::string> cpu_model_for(const store::HostRecord& host);

  Result<std::vector<store::ClusterRecord>> list();
  Result<ClusterView> view(const std::string& name);
  // invalid_argument (naming the field) on a bad name or baseline; already_exists.
  Result<store::ClusterRecord> create(const std::string& name, const std::string& cpu_baseline,
                                      const std::string& actor);
  // A fixed model every host of the cluster must offer (failed_precondition naming those
  // that cannot), or "auto".
  Result<store::ClusterRecord> set_baseline(const std::string& name,
                                            const std::string& cpu_baseline,
                                            const std::string& actor);
  // Refused for "default" and for a cluster that still has hosts (naming them).
  Status remove(const std::string& name, const std::string& actor);
  // Whether a host with this inventory may join `cluster`: not_found for an unknown
  // cluster (field "cluster"); failed_precondition when the cluster's baseline is fixed
  // and the host cannot offer it (saying what it lacks).
  Status admit(const std::string& cluster, const std::string& host_name,
               const std::string& inventory_json);
  // The next current() of this cluster recomputes (a host joined, left or re-probed).
  void invalidate(const std::string& name);

  static constexpr std::chrono::seconds kRecompute{30};

 private:
  Result<store::ClusterRecord> recompute(store::ClusterRecord c);

  store::Store& store_;
  EventLog& events_;
  ClockPtr clock_;
  // Guards computed_at_ (when each cluster's baseline was last recomputed, on the
  // clock). Store calls happen outside it.
  std::mutex mu_;
  std::map<std::string, Clock::TimePoint> computed_at_;
};

}  // namespace strata::manager
