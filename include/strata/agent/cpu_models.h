// Which named CPU models this host can offer to guests, probed from QEMU over QMP with
// the host's accelerator: query-cpu-definitions says, per model, which of its features
// the host lacks ("unavailable-features"; empty = usable), and
// query-cpu-model-expansion(static) lists each usable model's features, so the manager
// can rank models and compute a cluster's baseline (sched/cpu_baseline.h). QEMU 7.2 has
// no query-cpu-model-baseline/-comparison on x86 (s390x only): this is the input the
// manager computes them from. The transcript parser is pure so recorded transcripts of
// other CPU generations can be unit-tested.
#pragma once

#include <chrono>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "strata/common/error.h"

namespace strata::agent {

struct CpuModel {
  std::string name;                      // "Westmere-v1" (concrete models only)
  bool usable = false;                   // the host can offer it with its accelerator
  bool deprecated = false;
  std::vector<std::string> unavailable;  // the features it needs that the host lacks
  std::vector<std::string> features;     // its features (static expansion), when usable
};

struct CpuModelProbe {
  std::string accelerator;       // "kvm" | "tcg": the answers hold for this one only
  std::vector<CpuModel> models;  // sorted by name
};

// The stdin for `qemu-system-* -machine none,accel=ACCEL -qmp stdio`: the definitions,
// then one static expansion per model in `names` (QemuCapabilities::cpu_model_names).
std::string cpu_model_probe_script(const std::vector<std::string>& names);

// Parses that session. Models whose definition is missing are left out; a usable model
// whose expansion failed is reported unusable (unavailable: ["expansion-failed"]). Error
// (invalid_argument, field naming the reply) on a malformed transcript or definitions.
Result<CpuModelProbe> parse_cpu_model_transcript(std::string_view transcript,
                                                 const std::string& accelerator);

// Runs the probe (about 0.1 s for QEMU 7.2's 74 x86 models).
Result<CpuModelProbe> probe_cpu_models(const std::string& qemu_binary,
                                       const std::string& accelerator,
                                       const std::vector<std::string>& names,
                                       std::chrono::milliseconds timeout);

// {"accelerator", "models": [{"name", "usable", "feature_count" (usable),
// "unavailable" (at most 8 names), "unavailable_count", "deprecated" (when true)}]}.
nlohmann::json to_json(const CpuModelProbe& probe);

}  // namespace strata::agent
