// Probes QEMU's capabilities over QMP on stdio and parses the transcript.
#include "strata/agent/inventory_qemu.h"

#include <algorithm>
#include <map>

#include <nlohmann/json.hpp>

#include "strata/common/process.h"

namespace strata::agent {
namespace {

using nlohmann::json;

// One command per line, each tagged with an id so replies are matched by id.
// query-accelerators does not exist in QEMU 7.2; qom-list-types(implements=accel) does,
// so it is the source of the accelerator list and query-accelerators is only recorded.
const char* const kProbeScript =
    R"({"execute":"qmp_capabilities","id":"caps"})" "\n"
    R"({"execute":"query-version","id":"version"})" "\n"
    R"({"execute":"query-machines","id":"machines"})" "\n"
    R"({"execute":"query-kvm","id":"kvm"})" "\n"
    R"({"execute":"query-accelerators","id":"accels"})" "\n"
    R"({"execute":"qom-list-types","arguments":{"implements":"accel"},"id":"accel-types"})" "\n"
    R"({"execute":"query-command-line-options","arguments":{"option":"sandbox"},"id":"sandbox"})" "\n"
    R"({"execute":"query-cpu-definitions","id":"cpu-defs"})" "\n"
    R"({"execute":"quit","id":"quit"})" "\n";

tl::unexpected<Error> bad_probe(const std::string& field, const std::string& msg) {
  return invalid_argument("qmp." + field, "QMP probe: " + msg);
}

// The "return" value of reply `id`; error if absent or an error reply.
Result<const json*> reply_value(const std::map<std::string, json>& replies, const std::string& id) {
  auto it = replies.find(id);
  if (it == replies.end()) return bad_probe(id, "no reply to '" + id + "'");
  const json& r = it->second;
  if (r.contains("error")) {
    std::string desc = r["error"].is_object() ? r["error"].value("desc", "") : "";
    return bad_probe(id, "'" + id + "' failed: " + desc);
  }
  if (!r.contains("return")) return bad_probe(id, "reply to '" + id + "' has no 'return'");
  return &r["return"];
}

Result<std::string> version_string(const json& v, const std::string& field) {
  if (!v.is_object() || !v.contains("qemu") || !v["qemu"].is_object())
    return bad_probe(field, "missing 'qemu' object");
  const json& q = v["qemu"];
  for (const char* k : {"major", "minor", "micro"})
    if (!q.contains(k) || !q[k].is_number_integer())
      return bad_probe(field, std::string("missing integer qemu.") + k);
  return std::to_string(q["major"].get<int64_t>()) + "." + std::to_string(q["minor"].get<int64_t>()) +
         "." + std::to_string(q["micro"].get<int64_t>());
}

Result<std::vector<QemuMachineType>> parse_machines(const json& v) {
  if (!v.is_array()) return bad_probe("machines", "query-machines did not return an array");
  std::vector<QemuMachineType> out;
  for (size_t i = 0; i < v.size(); ++i) {
    const json& m = v[i];
    std::string field = "machines[" + std::to_string(i) + "]";
    if (!m.is_object() || !m.contains("name") || !m["name"].is_string() ||
        m["name"].get<std::string>().empty())
      return bad_probe(field, "machine without a name");
    QemuMachineType t;
    t.name = m["name"].get<std::string>();
    if (m.contains("alias")) {
      if (!m["alias"].is_string()) return bad_probe(field + ".alias", "alias is not a string");
      t.alias = m["alias"].get<std::string>();
    }
    if (m.contains("is-default")) {
      if (!m["is-default"].is_boolean()) return bad_probe(field + ".is-default", "not a boolean");
      t.is_default = m["is-default"].get<bool>();
    }
    if (m.contains("deprecated") && m["deprecated"].is_boolean()) t.deprecated = m["deprecated"].get<bool>();
    if (m.contains("cpu-max") && m["cpu-max"].is_number_integer()) t.cpu_max = m["cpu-max"].get<int64_t>();
    out.push_back(std::move(t));
  }
  if (out.empty()) return bad_probe("machines", "query-machines returned no machine types");
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
  return out;
}

Result<QemuCapabilities> parse_transcript_unchecked(std::string_view transcript);

// True when the reply lists option "sandbox" with every parameter the agent uses. A QEMU
// built without seccomp answers with an error ("invalid option name"); older transcripts
// have no reply at all: both mean no sandbox.
bool sandbox_usable(const std::map<std::string, json>& replies) {
  auto it = replies.find("sandbox");
  if (it == replies.end() || !it->second.contains("return") || !it->second["return"].is_array())
    return false;
  for (const json& opt : it->second["return"]) {
    if (!opt.is_object() || opt.value("option", "") != "sandbox" || !opt.contains("parameters") ||
        !opt["parameters"].is_array())
      continue;
    std::vector<std::string> names;
    for (const json& p : opt["parameters"])
      if (p.is_object() && p.contains("name") && p["name"].is_string())
        names.push_back(p["name"].get<std::string>());
    bool all = true;
    for (const char* want : {"obsolete", "elevateprivileges", "spawn", "resourcecontrol"})
      all = all && std::find(names.begin(), names.end(), want) != names.end();
    return all;
  }
  return false;
}

// The concrete CPU models of a query-cpu-definitions reply (aliases and the special
// models left out), sorted; empty when the reply is absent (older transcripts) or not a
// list. Names are checked as the argv builder checks them: letters, digits, "._-".
std::vector<std::string> concrete_cpu_models(const std::map<std::string, json>& replies) {
  std::vector<std::string> out;
  auto it = replies.find("cpu-defs");
  if (it == replies.end() || !it->second.contains("return") || !it->second["return"].is_array())
    return out;
  for (const json& d : it->second["return"]) {
    if (!d.is_object() || !d.contains("name") || !d["name"].is_string()) continue;
    if (d.contains("alias-of")) continue;
    std::string name = d["name"].get<std::string>();
    if (name == "max" || name == "host" || name == "base" || name.empty() || name.size() > 64) continue;
    if (!std::all_of(name.begin(), name.end(), [](char c) {
          return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '.' || c == '_' || c == '-';
        }))
      continue;
    out.push_back(std::move(name));
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

}  // namespace

const QemuMachineType* QemuCapabilities::find_machine(std::string_view name_or_alias) const {
  for (const auto& m : machines)
    if (m.name == name_or_alias || (!m.alias.empty() && m.alias == name_or_alias)) return &m;
  return nullptr;
}

std::string qmp_probe_script() { return kProbeScript; }

Result<QemuCapabilities> parse_qmp_probe_transcript(std::string_view transcript) {
  // Every access below is checked first; the catch keeps a missed case from throwing
  // across the module boundary.
  try {
    return parse_transcript_unchecked(transcript);
  } catch (const nlohmann::json::exception& e) {
    return bad_probe("transcript", std::string("unexpected JSON shape: ") + e.what());
  }
}

Result<std::map<std::string, nlohmann::json>> qmp_transcript_replies(std::string_view transcript) {
  bool greeted = false;
  std::map<std::string, json> replies;
  size_t start = 0, line_no = 0;
  while (start < transcript.size()) {
    size_t end = transcript.find('\n', start);
    if (end == std::string_view::npos) end = transcript.size();
    std::string_view line = transcript.substr(start, end - start);
    start = end + 1;
    ++line_no;
    if (line.find_first_not_of(" \t\r") == std::string_view::npos) continue;
    json msg = json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (msg.is_discarded() || !msg.is_object())
      return bad_probe("line" + std::to_string(line_no), "malformed JSON on line " +
                                                             std::to_string(line_no) + ": " +
                                                             std::string(line.substr(0, 120)));
    if (msg.contains("QMP")) {
      greeted = true;
      continue;
    }
    if (msg.contains("event")) continue;  // e.g. SHUTDOWN after quit
    if (!greeted) return bad_probe("greeting", "reply before the QMP greeting");
    if (!msg.contains("id") || !msg["id"].is_string()) {
      // QEMU answers unparseable input with an id-less error; surface it.
      if (msg.contains("error"))
        return bad_probe("error", "QEMU rejected a command: " + msg.dump());
      return bad_probe("line" + std::to_string(line_no), "reply without id: " + msg.dump());
    }
    // Take the id first: json's operator= takes its argument by value, so
    // `replies[msg["id"]...] = std::move(msg)` would read a moved-from msg.
    std::string id = msg["id"].get<std::string>();
    replies[id] = std::move(msg);
  }
  if (!greeted) return bad_probe("greeting", "no QMP greeting in QEMU's output");
  return replies;
}

namespace {
Result<QemuCapabilities> parse_transcript_unchecked(std::string_view transcript) {
  auto collected = qmp_transcript_replies(transcript);
  if (!collected) return tl::unexpected(collected.error());
  const std::map<std::string, json>& replies = *collected;

  QemuCapabilities caps;
  if (auto r = reply_value(replies, "caps"); !r) return tl::unexpected(r.error());
  auto ver = reply_value(replies, "version");
  if (!ver) return tl::unexpected(ver.error());
  auto vs = version_string(**ver, "version");
  if (!vs) return tl::unexpected(vs.error());
  caps.version = *vs;
  if ((*ver)->contains("package") && (**ver)["package"].is_string())
    caps.package = (**ver)["package"].get<std::string>();

  auto mv = reply_value(replies, "machines");
  if (!mv) return tl::unexpected(mv.error());
  auto machines = parse_machines(**mv);
  if (!machines) return tl::unexpected(machines.error());
  caps.machines = std::move(*machines);

  auto kvm = reply_value(replies, "kvm");
  if (!kvm) return tl::unexpected(kvm.error());
  if (!(*kvm)->is_object() || !(*kvm)->contains("present") || !(**kvm)["present"].is_boolean())
    return bad_probe("kvm", "query-kvm reply lacks boolean 'present'");
  caps.kvm_present = (**kvm)["present"].get<bool>();

  caps.has_query_accelerators = replies.count("accels") && replies.at("accels").contains("return");
  caps.sandbox = sandbox_usable(replies);
  caps.cpu_model_names = concrete_cpu_models(replies);
  auto types = reply_value(replies, "accel-types");
  if (!types) return tl::unexpected(types.error());
  if (!(*types)->is_array())
    return bad_probe("accel-types", "qom-list-types did not return an array");
  std::vector<std::string> accels;
  for (const json& t : **types) {
    if (!t.is_object() || !t.contains("name") || !t["name"].is_string())
      return bad_probe("accel-types", "type entry without a name");
    std::string name = t["name"].get<std::string>();
    const std::string suffix = "-accel";  // "kvm-accel" -> "kvm"; the abstract "accel" is skipped
    if (name.size() > suffix.size() && name.ends_with(suffix))
      accels.push_back(name.substr(0, name.size() - suffix.size()));
  }
  std::sort(accels.begin(), accels.end());
  caps.accelerators = std::move(accels);
  return caps;
}
}  // namespace

Result<QemuCapabilities> probe_qemu_capabilities(const std::string& qemu_binary,
                                                 std::chrono::milliseconds timeout) {
  RunOptions opts;
  opts.timeout = timeout;
  opts.stdin_data = qmp_probe_script();
  auto r = run_process({qemu_binary, "-machine", "none", "-nodefaults", "-nographic", "-qmp", "stdio"},
                       opts);
  if (!r) return tl::unexpected(r.error().wrap("probe " + qemu_binary));
  if (r->timed_out)
    return make_error(ErrorCode::deadline_exceeded, qemu_binary + " did not answer QMP in time");
  if (!r->ok())
    return unavailable(qemu_binary + " QMP probe exited with status " + std::to_string(r->exit_code) +
                       (r->signaled ? " (signal " + std::to_string(r->term_signal) + ")" : "") +
                       ": " + r->err.substr(0, 500));
  auto caps = parse_qmp_probe_transcript(r->out);
  if (!caps) return tl::unexpected(caps.error().wrap(qemu_binary));
  caps->binary = find_executable(qemu_binary);
  return caps;
}

}  // namespace strata::agent
