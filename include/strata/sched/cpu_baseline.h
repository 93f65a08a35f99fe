// The cluster CPU baseline (what VMware calls EVC), pure: which named CPU model every host
// of a cluster can offer, so a VM started with it can run on, and live-migrate to, any
// of them. The input is what each host's agent probed (agent/cpu_models.h): per QEMU
// model, usable or not with that host's accelerator (and what it lacks), and the
// features of the usable ones. QEMU 7.2 has no x86 query-cpu-model-baseline, so the
// baseline is computed here: of the models every host offers, the one with the most
// features (a newer generation of a family is a superset of the older one: Westmere's
// features include Nehalem's), deprecated models last, ties to the later name (version).
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

namespace strata::sched {

// One host's CPU, as its agent probed it.
struct HostCpu {
  std::string host;         // name, for explanations
  std::string accelerator;  // "kvm" | "tcg"
  bool probed = false;      // false: the agent reported no models (older agent, failed probe)
  // Usable models -> how many features each has (its static expansion).
  std::map<std::string, size_t> usable;
  // Models the host cannot offer -> the features it lacks for them (the agent names at
  // most 8; lacking_count has the total).
  std::map<std::string, std::vector<std::string>> lacking;
  std::map<std::string, size_t> lacking_count;
  std::vector<std::string> deprecated;  // model names QEMU marks deprecated
  // The host CPU as /proc/cpuinfo and QEMU describe it (vendor, model name, flags,
  // accelerator, QEMU version): VMs running with "host" or "max" can move only between
  // hosts with equal signatures.
  std::string signature;
};

struct Baseline {
  std::string model;  // "" when the hosts share no named model (or none was probed)
  // One line for people: which model, how many hosts, and what keeps it from being higher
  // ("Haswell-v4 would need avx2, fma on h3").
  std::string reason;
};

// The best model every probed host offers. Hosts that were not probed are left out and
// named in the reason (they cannot take VMs with a named model until they are).
Baseline compute_baseline(const std::vector<HostCpu>& hosts);

// Whether `host` can run a VM whose CPU is `model`: nullopt if yes, else why not
// ("lacks avx2, fma for Haswell-v1", "does not know model X"). "host"/"max" need
// `signature` equal to the host's (the CPU the VM was started on).
std::optional<std::string> cannot_offer(const HostCpu& host, const std::string& model,
                                        const std::string& signature = "");

// Whether `model` is a special, host-dependent CPU ("host", "max").
bool host_dependent_cpu(const std::string& model);

}  // namespace strata::sched
