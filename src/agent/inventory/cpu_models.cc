// Probes the named CPU models a host can offer, over QMP with its accelerator.
#include "strata/agent/cpu_models.h"

#include <algorithm>

#include "strata/agent/inventory_qemu.h"
#include "strata/common/process.h"

namespace strata::agent {
namespace {

using nlohmann::json;

constexpr size_t kMaxLackingShown = 8;

tl::unexpected<Error> bad_model_probe(const std::string& field, const std::string& msg) {
  return invalid_argument("qmp." + field, "CPU model probe: " + msg);
}

// A feature or model name as QEMU spells them: letters, digits, "._-", at most 64 bytes.
bool plain_name(const std::string& s) {
  return !s.empty() && s.size() <= 64 && std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '.' || c == '_' || c == '-';
  });
}

Result<CpuModelProbe> parse_unchecked(std::string_view transcript, const std::string& accelerator) {
  auto collected = qmp_transcript_replies(transcript);
  if (!collected) return tl::unexpected(collected.error());
  const auto& replies = *collected;
  auto defs = replies.find("cpu-defs");
  if (defs == replies.end())
    return bad_model_probe("cpu-defs", "no reply to query-cpu-definitions");
  if (defs->second.contains("error") || !defs->second.contains("return") ||
      !defs->second["return"].is_array())
    return bad_model_probe("cpu-defs", "query-cpu-definitions failed or returned no list");

  CpuModelProbe out;
  out.accelerator = accelerator;
  for (const json& d : defs->second["return"]) {
    if (!d.is_object() || !d.contains("name") || !d["name"].is_string()) continue;
    if (d.contains("alias-of")) continue;
    CpuModel m;
    m.name = d["name"].get<std::string>();
    if (m.name == "max" || m.name == "host" || m.name == "base" || !plain_name(m.name)) continue;
    if (d.contains("deprecated") && d["deprecated"].is_boolean()) m.deprecated = d["deprecated"].get<bool>();
    if (!d.contains("unavailable-features") || !d["unavailable-features"].is_array()) {
      // Without the list the host's support is unknown: not offered.
      m.unavailable.push_back("unknown");
    } else {
      for (const json& f : d["unavailable-features"])
        if (f.is_string() && plain_name(f.get<std::string>())) m.unavailable.push_back(f.get<std::string>());
        else
          return bad_model_probe("cpu-defs",
                                 "model " + m.name + " has a malformed unavailable feature");
      if (m.unavailable.size() > 512)
        return bad_model_probe("cpu-defs", "model " + m.name + " lists too many features");
    }
    m.usable = m.unavailable.empty();
    std::sort(m.unavailable.begin(), m.unavailable.end());
    out.models.push_back(std::move(m));
  }
  for (CpuModel& m : out.models) {
    if (!m.usable) continue;
    // Each expansion's id names its model ("exp:Westmere-v1"): replies are matched by id.
    auto it = replies.find("exp:" + m.name);
    const json* props = nullptr;
    if (it != replies.end() && it->second.contains("return") && it->second["return"].is_object()) {
      const json& r = it->second["return"];
      if (r.contains("model") && r["model"].is_object() && r["model"].contains("props") &&
          r["model"]["props"].is_object())
        props = &r["model"]["props"];
    }
    if (!props) {
      m.usable = false;
      m.unavailable = {"expansion-failed"};
      continue;
    }
    for (const auto& [k, v] : props->items())
      if (v.is_boolean() && v.get<bool>() && plain_name(k)) m.features.push_back(k);
    if (m.features.size() > 1024) return bad_model_probe("exp:" + m.name, "too many features");
    std::sort(m.features.begin(), m.features.end());
  }
  std::sort(out.models.begin(), out.models.end(),
            [](const CpuModel& a, const CpuModel& b) { return a.name < b.name; });
  return out;
}

}  // namespace

std::string cpu_model_probe_script(const std::vector<std::string>& names) {
  std::string s = json{{"execute", "qmp_capabilities"}, {"id", "caps"}}.dump() + "\n";
  s += json{{"execute", "query-cpu-definitions"}, {"id", "cpu-defs"}}.dump() + "\n";
  for (size_t i = 0; i < names.size(); ++i)
    s += json{{"execute", "query-cpu-model-expansion"},
              {"arguments", {{"type", "static"}, {"model", {{"name", names[i]}}}}},
              {"id", "exp:" + names[i]}}
             .dump() +
         "\n";
  s += json{{"execute", "quit"}, {"id", "quit"}}.dump() + "\n";
  return s;
}

Result<CpuModelProbe> parse_cpu_model_transcript(std::string_view transcript,
                                                 const std::string& accelerator) {
  try {
    return parse_unchecked(transcript, accelerator);
  } catch (const json::exception& e) {
    return bad_model_probe("transcript", std::string("unexpected JSON shape: ") + e.what());
  }
}

Result<CpuModelProbe> probe_cpu_models(const std::string& qemu_binary,
                                       const std::string& accelerator,
                                       const std::vector<std::string>& names,
                                       std::chrono::milliseconds timeout) {
  if (accelerator != "kvm" && accelerator != "tcg")
    return invalid_argument("accelerator", "CPU model probe: accelerator must be kvm or tcg");
  for (const auto& n : names)
    if (!plain_name(n)) return invalid_argument("cpu_model", "CPU model probe: bad model name");
  RunOptions opts;
  opts.timeout = timeout;
  opts.stdin_data = cpu_model_probe_script(names);
  auto r = run_process({qemu_binary, "-machine", "none,accel=" + accelerator, "-nodefaults",
                        "-nographic", "-qmp", "stdio"},
                       opts);
  if (!r) return tl::unexpected(r.error().wrap("CPU model probe of " + qemu_binary));
  if (r->timed_out)
    return make_error(ErrorCode::deadline_exceeded, qemu_binary + " did not answer the CPU model probe in time");
  if (!r->ok())
    return unavailable(qemu_binary + " CPU model probe exited with status " +
                       std::to_string(r->exit_code) + ": " + r->err.substr(0, 500));
  return parse_cpu_model_transcript(r->out, accelerator);
}

nlohmann::json to_json(const CpuModelProbe& probe) {
  json models = json::array();
  for (const auto& m : probe.models) {
    json j = {{"name", m.name}, {"usable", m.usable}};
    if (m.deprecated) j["deprecated"] = true;
    // Compact, so the inventory stays well inside the enrollment's 64 KiB body: a usable
    // model's feature count ranks it; an unusable one names what it lacks (the first
    // kMaxLackingShown, sorted, and how many in all).
    if (!m.unavailable.empty()) {
      std::vector<std::string> shown(
          m.unavailable.begin(),
          m.unavailable.begin() + std::min(m.unavailable.size(), kMaxLackingShown));
      j["unavailable"] = shown;
      j["unavailable_count"] = m.unavailable.size();
    }
    if (m.usable) j["feature_count"] = m.features.size();
    models.push_back(std::move(j));
  }
  return {{"accelerator", probe.accelerator}, {"models", std::move(models)}};
}

}  // namespace strata::agent
