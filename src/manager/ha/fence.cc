// Fence agents of the ClusterLabs protocol (see fence.h).
#include "strata/manager/ha/fence.h"

#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "strata/common/json.h"
#include "strata/common/log.h"
#include "strata/common/process.h"

namespace strata::manager {
namespace {

bool is_word(const std::string& s, size_t max) {
  if (s.empty() || s.size() > max) return false;
  for (char c : s)
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) return false;
  return true;
}

// One line of printable ASCII (no control characters: no newline can add a key).
bool is_value(const std::string& s) {
  if (s.size() > 1024) return false;
  for (unsigned char c : s)
    if (c < 0x20 || c == 0x7f) return false;
  return true;
}

// Keys stratad sets itself; a device may not set them.
bool reserved_key(const std::string& k) { return k == "action" || k == "nodename"; }

}  // namespace

Result<FenceConfig> parse_fence_config(const nlohmann::json& j) {
  if (!j.is_object()) return invalid_argument("", "fence config must be a JSON object");
  FenceConfig c;
  for (auto& [key, v] : j.items())
    if (key != "agent_dir" && key != "hosts")
      return invalid_argument(key, "unknown field (expected agent_dir, hosts)");
  if (j.contains("agent_dir")) {
    const auto& d = j["agent_dir"];
    if (!d.is_string() || d.get<std::string>().empty() || d.get<std::string>()[0] != '/' ||
        !is_value(d.get<std::string>()))
      return invalid_argument("agent_dir", "must be an absolute path");
    c.agent_dir = d.get<std::string>();
  }
  if (!j.contains("hosts")) return c;
  if (!j["hosts"].is_object()) return invalid_argument("hosts", "must be an object by host name");
  for (auto& [host, dev] : j["hosts"].items()) {
    const std::string f = "hosts." + host;
    if (host.empty() || host.size() > 63 || !is_value(host))
      return invalid_argument(f, "bad host name");
    if (!dev.is_object()) return invalid_argument(f, "must be an object");
    FenceDevice d;
    for (auto& [key, v] : dev.items())
      if (key != "agent" && key != "params" && key != "timeout_s")
        return invalid_argument(f + "." + key, "unknown field (expected agent, params, timeout_s)");
    if (!dev.contains("agent") || !dev["agent"].is_string())
      return invalid_argument(f + ".agent", "required: the fence agent, e.g. fence_ipmilan");
    d.agent = dev["agent"].get<std::string>();
    if (d.agent.rfind("fence_", 0) != 0 || !is_word(d.agent, 64))
      return invalid_argument(f + ".agent", "must be a fence agent name: fence_[a-z0-9_]+");
    if (dev.contains("timeout_s")) {
      const auto& t = dev["timeout_s"];
      if (!t.is_number_integer() || t.get<int64_t>() < 1 || t.get<int64_t>() > 600)
        return invalid_argument(f + ".timeout_s", "must be an integer from 1 to 600");
      d.timeout = std::chrono::seconds(t.get<int64_t>());
    }
    if (dev.contains("params")) {
      if (!dev["params"].is_object()) return invalid_argument(f + ".params", "must be an object");
      for (auto& [k, v] : dev["params"].items()) {
        const std::string pf = f + ".params." + k;
        if (!is_word(k, 64)) return invalid_argument(pf, "parameter names are [a-z0-9_]+");
        if (reserved_key(k)) return invalid_argument(pf, "set by stratad, not by the config");
        if (!v.is_string() || !is_value(v.get<std::string>()))
          return invalid_argument(pf, "must be a string of one printable line");
        d.params[k] = v.get<std::string>();
      }
    }
    c.hosts[host] = std::move(d);
  }
  return c;
}

Result<FenceConfig> load_fence_config(const std::string& path) {
  std::ifstream in(path);
  if (!in) return not_found("cannot read fence config " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  auto j = parse_json(ss.str());
  if (!j) return tl::unexpected(j.error().wrap("fence config " + path));
  auto c = parse_fence_config(*j);
  if (!c) return tl::unexpected(c.error().wrap("fence config " + path));
  return c;
}

std::string fence_agent_input(const FenceDevice& device, const std::string& action) {
  std::string s = "action=" + action + "\n";
  for (const auto& [k, v] : device.params) s += k + "=" + v + "\n";
  return s;
}

namespace {

// The last non-empty line an agent printed (stdout, else stderr), for events and errors.
std::string last_line(const ProcessResult& r) {
  for (const std::string* text : {&r.out, &r.err}) {
    std::string t = *text;
    while (!t.empty() && (t.back() == '\n' || t.back() == '\r' || t.back() == ' ')) t.pop_back();
    if (t.empty()) continue;
    auto nl = t.rfind('\n');
    return nl == std::string::npos ? t : t.substr(nl + 1);
  }
  return "";
}

class FenceAgentRunner final : public Fencer {
 public:
  explicit FenceAgentRunner(FenceConfig config) : config_(std::move(config)) {}

  bool configured(const std::string& host) const override { return config_.hosts.count(host); }

  Result<FenceOutcome> fence_off(const std::string& host) override {
    auto it = config_.hosts.find(host);
    if (it == config_.hosts.end())
      return not_found("no fence device configured for host " + host);
    const FenceDevice& dev = it->second;
    const std::string exe = config_.agent_dir + "/" + dev.agent;
    auto run = [&](const std::string& action) -> Result<ProcessResult> {
      RunOptions o;
      o.timeout = std::chrono::duration_cast<std::chrono::milliseconds>(dev.timeout);
      o.stdin_data = fence_agent_input(dev, action);
      o.max_output_bytes = 64 * 1024;
      return run_process({exe}, o);
    };
    auto off = run("off");
    if (!off) return unavailable(fmt::format("{} off: {}", dev.agent, off.error().message));
    if (off->timed_out)
      return unavailable(fmt::format("{} off timed out after {} s", dev.agent, dev.timeout.count()));
    if (!off->ok())
      return unavailable(fmt::format("{} off failed (exit {}): {}", dev.agent,
                                     off->signaled ? -off->term_signal : off->exit_code,
                                     last_line(*off)));
    // `off` returning 0 is the agent's word; `status` answering "off" (exit 2) is the proof.
    auto st = run("status");
    if (!st) return unavailable(fmt::format("{} status: {}", dev.agent, st.error().message));
    if (st->timed_out || st->signaled || st->exit_code != 2)
      return unavailable(fmt::format(
          "{} status did not confirm off ({}): {}", dev.agent,
          st->timed_out ? std::string("timed out") : fmt::format("exit {}", st->exit_code),
          last_line(*st)));
    FenceOutcome o;
    o.detail = fmt::format("{}: off, status confirms off{}", dev.agent,
                           last_line(*st).empty() ? "" : " (" + last_line(*st) + ")");
    return o;
  }

 private:
  FenceConfig config_;
};

}  // namespace

FencerPtr make_fence_agent_runner(FenceConfig config) {
  return std::make_shared<FenceAgentRunner>(std::move(config));
}

}  // namespace strata::manager
