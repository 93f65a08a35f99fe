// REST request bodies -> typed values (see request_bodies.h).
#include "strata/manager/api/request_bodies.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>

#include "strata/manager/api/json_fields.h"
#include "strata/model/validation.h"
#include "strata/wire/api_level.h"

namespace strata::manager {

Result<int> query_int(const HttpRequest& r, const std::string& name, int def, int min, int max) {
  auto it = r.query.find(name);
  if (it == r.query.end() || it->second.empty()) return def;
  int v = 0;
  auto [p, ec] = std::from_chars(it->second.data(), it->second.data() + it->second.size(), v);
  if (ec != std::errc() || p != it->second.data() + it->second.size() || v < min || v > max)
    return invalid_argument(name, fmt::format("{} must be an integer {}..{}", name, min, max));
  return v;
}

Result<VmListQuery> decode_vm_list_query(const HttpRequest& r) {
  VmListQuery q;
  auto limit = query_int(r, "limit", 0, 0, 10000);
  if (!limit) return tl::unexpected(limit.error());
  q.limit = *limit;
  auto get = [&](const char* name) {
    auto it = r.query.find(name);
    return it == r.query.end() ? std::string() : it->second;
  };
  q.after = get("after");
  if (std::string label = get("label"); !label.empty()) {
    auto eq = label.find('=');
    if (eq == std::string::npos || eq == 0) return invalid_argument("label", "label must be key=value");
    q.label = {label.substr(0, eq), label.substr(eq + 1)};
  }
  q.host = get("host");
  q.name_contains = get("name");
  if (q.name_contains.size() > 63)
    return invalid_argument("name", "name (a substring of VM names) is at most 63 characters");
  static constexpr std::string_view kStates[] = {
      "pending", "scheduled", "defined", "starting", "running", "paused", "shutting_down",
      "stopped", "crashed", "unknown", "deleting", "error"};
  if (std::string state = get("state"); !state.empty()) {
    if (std::find(std::begin(kStates), std::end(kStates), state) == std::end(kStates))
      return invalid_argument("state", fmt::format("unknown state '{}'", state.substr(0, 40)));
    q.state = state;
  }
  std::string sort = get("sort");
  if (sort.empty() || sort == "id") q.sort = VmListQuery::Sort::id;
  else if (sort == "name") q.sort = VmListQuery::Sort::name;
  else if (sort == "-name") q.sort = VmListQuery::Sort::name_desc;
  else return invalid_argument("sort", "sort must be id, name or -name");
  return q;
}

Result<std::string> decode_name_substring(const HttpRequest& r) {
  auto it = r.query.find("name");
  if (it == r.query.end()) return std::string();
  const std::string& v = it->second;
  if (v.size() > 128)
    return invalid_argument("name", "name (a substring of names) is at most 128 characters");
  for (unsigned char ch : v)
    if (ch < 0x20 || ch == 0x7f)
      return invalid_argument("name",
                              "name (a substring of names) must not hold control characters");
  return v;
}

Result<std::optional<int64_t>> expected_version(const HttpRequest& r, const nlohmann::json* body) {
  std::optional<int64_t> v;
  if (const auto* f = body ? optional_member(*body, "resource_version") : nullptr) {
    // A resource_version past int64 is no version we ever handed out.
    if (!f->is_number_integer() ||
        (f->is_number_unsigned() && f->get<uint64_t>() > uint64_t(INT64_MAX)))
      return invalid_argument("resource_version", "resource_version must be an integer");
    v = f->get<int64_t>();
  }
  std::string h = r.header("if-match");
  if (!h.empty()) {
    if (h.size() >= 2 && h.front() == '"' && h.back() == '"') h = h.substr(1, h.size() - 2);
    int64_t x = 0;
    auto [p, ec] = std::from_chars(h.data(), h.data() + h.size(), x);
    if (ec != std::errc() || p != h.data() + h.size())
      return invalid_argument("If-Match", "If-Match must be a resource_version number");
    v = x;
  }
  return v;
}

Result<TokenCreateBody> decode_token_create(const nlohmann::json& body) {
  using T = JsonType;
  if (auto st = check_fields(body, {{"name", T::string, true},
                                    {"role", T::string, true},
                                    {"ttl_s", T::unsigned_integer}});
      !st)
    return tl::unexpected(st.error());
  TokenCreateBody out;
  out.name = body["name"].get<std::string>();
  if (auto st = model::validate_name("name", out.name); !st) return tl::unexpected(st.error());
  auto role = role_from_string(body["role"].get<std::string>());
  if (!role) return invalid_argument("role", "role must be admin, operator or viewer");
  out.role = *role;
  if (const auto* ttl = optional_member(body, "ttl_s")) {
    uint64_t t = ttl->get<uint64_t>();
    if (t < 1 || t > uint64_t(kMaxTokenTtlS))
      return invalid_argument("ttl_s", fmt::format("ttl_s must be 1..{}", kMaxTokenTtlS));
    out.ttl_s = static_cast<int64_t>(t);
  }
  return out;
}

Result<JoinTokenCreateBody> decode_join_token_create(const nlohmann::json& body) {
  if (auto st = check_fields(
          body, {{"ttl_s", JsonType::unsigned_integer}, {"count", JsonType::unsigned_integer}});
      !st)
    return tl::unexpected(st.error());
  JoinTokenCreateBody out;
  uint64_t ttl = optional_uint(body, "ttl_s", uint64_t(out.ttl_s));
  if (ttl < 1 || ttl > uint64_t(kJoinMaxTtlS))
    return invalid_argument("ttl_s", fmt::format("ttl_s must be 1..{} (7 days)", kJoinMaxTtlS));
  out.ttl_s = static_cast<int64_t>(ttl);
  if (body.contains("count")) {
    uint64_t n = optional_uint(body, "count", 1);
    if (n < 1 || n > kJoinMaxBatch)
      return invalid_argument("count", fmt::format("count must be 1..{}", kJoinMaxBatch));
    out.count = n;
  }
  return out;
}

namespace {

// {"k": "v" | null, ...} of a PATCH: set or remove each key.
Result<std::map<std::string, std::optional<std::string>>> decode_label_patch(
    const nlohmann::json& labels) {
  // Counted before anything is copied: a patch sets or removes at most every label a
  // resource may carry (the merged map is bounded again by the caller).
  if (labels.size() > 2 * model::kMaxLabels)
    return invalid_argument("labels", fmt::format("labels has {} entries, at most {} in a patch",
                                                  labels.size(), 2 * model::kMaxLabels));
  std::map<std::string, std::optional<std::string>> out;
  for (const auto& [k, v] : labels.items()) {
    std::string field = "labels." + k.substr(0, 64);
    if (v.is_null()) {
      out[k] = std::nullopt;
      continue;
    }
    if (!v.is_string()) return invalid_argument(field, field + " must be a string or null");
    // validate_label names a bad key "labels" and a bad value "labels.KEY" itself.
    if (auto st = model::validate_label("labels", k, v.get<std::string>()); !st)
      return tl::unexpected(st.error());
    out[k] = v.get<std::string>();
  }
  return out;
}

}  // namespace

Result<HostPatchBody> decode_host_patch(const nlohmann::json& body) {
  using T = JsonType;
  if (auto st = check_fields(body, {{"labels", T::object},
                                    {"maintenance", T::boolean},
                                    {"cluster", T::string},
                                    {"resource_version", T::integer}});
      !st)
    return tl::unexpected(st.error());
  HostPatchBody out;
  if (const auto* labels = optional_member(body, "labels")) {
    auto decoded = decode_label_patch(*labels);
    if (!decoded) return tl::unexpected(decoded.error());
    out.labels = std::move(*decoded);
  }
  if (const auto* m = optional_member(body, "maintenance")) out.maintenance = m->get<bool>();
  if (const auto* c = optional_member(body, "cluster")) {
    out.cluster = c->get<std::string>();
    if (auto st = model::validate_name("cluster", *out.cluster); !st) return tl::unexpected(st.error());
  }
  return out;
}

Result<VmPatchBody> decode_vm_patch(const nlohmann::json& body) {
  using T = JsonType;
  if (auto st = check_fields(body, {{"labels", T::object, true}, {"resource_version", T::integer}});
      !st)
    return tl::unexpected(st.error());
  auto decoded = decode_label_patch(body.at("labels"));
  if (!decoded) return tl::unexpected(decoded.error());
  return VmPatchBody{std::move(*decoded)};
}

Result<EnrollBody> decode_enroll(const nlohmann::json& body) {
  using T = JsonType;
  if (auto st = check_fields(body, {{"join_token", T::string, true},
                                    {"name", T::string, true},
                                    {"address", T::string, true},
                                    {"csr", T::string},
                                    {"migration_csr", T::string},
                                    {"cluster", T::string},
                                    {"inventory", T::object}});
      !st)
    return tl::unexpected(st.error());
  EnrollBody out;
  out.join_token = body["join_token"].get<std::string>();
  out.name = body["name"].get<std::string>();
  if (auto st = model::validate_name("name", out.name); !st) return tl::unexpected(st.error());
  out.address = body["address"].get<std::string>();
  if (out.address.empty() || out.address.size() > 512)
    return invalid_argument("address", "address must be 1..512 characters");
  if (const auto* csr = optional_member(body, "csr")) out.csr = csr->get<std::string>();
  if (const auto* c = optional_member(body, "cluster")) {
    out.cluster = c->get<std::string>();
    if (auto st = model::validate_name("cluster", out.cluster); !st) return tl::unexpected(st.error());
  }
  if (const auto* csr = optional_member(body, "migration_csr"))
    out.migration_csr = csr->get<std::string>();
  if (const auto* inv = optional_member(body, "inventory")) {
    out.inventory = inv->dump();
    // The agent must speak a level this manager works with (strata/wire/api_level.h).
    auto level = wire::inventory_api_level(out.inventory);
    if (!level) return invalid_argument("inventory.agent.api_level", "must be a positive integer");
    if (auto st = wire::check_agent_api_level(*level, "inventory.agent.api_level"); !st)
      return tl::unexpected(st.error());
    out.accelerator = optional_string(*inv, "accelerator");
    uint64_t threads = optional_uint(*inv, "cpu_threads", 0);
    if (threads <= uint64_t(INT64_MAX)) out.cpu_threads = static_cast<int64_t>(threads);
    out.memory_mib = static_cast<int64_t>(optional_uint(*inv, "memory_total_bytes", 0) >> 20);
  }
  return out;
}

Status check_vm_action_body(std::string_view verb, const nlohmann::json& body) {
  using T = JsonType;
  if (verb == "stop")
    return check_fields(body, {{"force", T::boolean},
                               {"timeout_s", T::unsigned_integer},
                               {"resource_version", T::integer}});
  return check_fields(body, {{"resource_version", T::integer}});
}

Result<VmStopBody> decode_vm_stop(const nlohmann::json& body) {
  if (auto st = check_vm_action_body("stop", body); !st) return tl::unexpected(st.error());
  VmStopBody out;
  uint64_t timeout = optional_uint(body, "timeout_s", 0);
  if (timeout > 3600) return invalid_argument("timeout_s", "timeout_s must be 0..3600");
  out.timeout_s = static_cast<uint32_t>(timeout);
  out.force = optional_bool(body, "force", false);
  return out;
}

Result<std::map<std::string, std::string>> label_map(const nlohmann::json& obj,
                                                     const std::string& field) {
  std::map<std::string, std::string> out;
  // Counted before anything is copied: the body may hold thousands of keys.
  if (obj.size() > model::kMaxLabels)
    return invalid_argument(field, fmt::format("{} has {} entries, at most {} allowed", field,
                                               obj.size(), model::kMaxLabels));
  for (auto& [k, v] : obj.items()) {
    std::string f = fmt::format("{}.{}", field, k.substr(0, 64));
    if (!v.is_string()) return invalid_argument(f, f + " must be a string");
    // validate_label names a bad key `field` and a bad value `field.KEY` itself.
    if (auto st = model::validate_label(field, k, v.get<std::string>()); !st)
      return tl::unexpected(st.error());
    out[k] = v.get<std::string>();
  }
  return out;
}

Result<HostDownPlanBody> decode_host_down_plan(const nlohmann::json& body) {
  if (auto st = check_fields(body, {{"hosts", JsonType::array, true},
                                    {"ha_only", JsonType::boolean}});
      !st)
    return tl::unexpected(st.error());
  const auto& names = body["hosts"];
  if (names.empty() || names.size() > 1000)
    return invalid_argument("hosts", "hosts: 1 to 1000 host names");
  HostDownPlanBody out;
  for (size_t i = 0; i < names.size(); ++i) {
    if (!names[i].is_string())
      return invalid_argument(fmt::format("hosts[{}]", i), "host names are strings");
    out.hosts.push_back(names[i].get<std::string>());
  }
  out.ha_only = optional_bool(body, "ha_only", false);
  return out;
}

Result<CapacityPlanBody> decode_capacity_plan(const nlohmann::json& body) {
  if (auto st = check_fields(body, {{"vcpus", JsonType::unsigned_integer, true},
                                    {"memory_mib", JsonType::unsigned_integer, true},
                                    {"count", JsonType::unsigned_integer},
                                    {"node_selector", JsonType::object},
                                    {"accelerator", JsonType::string}});
      !st)
    return tl::unexpected(st.error());
  CapacityPlanBody out;
  uint64_t vcpus = body["vcpus"].get<uint64_t>();
  if (vcpus < 1 || vcpus > model::kMaxVcpus)
    return invalid_argument("vcpus", fmt::format("vcpus must be 1..{}", model::kMaxVcpus));
  out.vcpus = static_cast<uint32_t>(vcpus);
  out.memory_mib = body["memory_mib"].get<uint64_t>();
  if (out.memory_mib < model::kMinMemoryMib || out.memory_mib > model::kMaxMemoryMib)
    return invalid_argument("memory_mib", fmt::format("memory_mib must be {}..{}",
                                                      model::kMinMemoryMib, model::kMaxMemoryMib));
  uint64_t count = optional_uint(body, "count", 0);
  if (count > kMaxPlanCount)
    return invalid_argument("count", fmt::format("count must be 0..{}", kMaxPlanCount));
  out.count = static_cast<uint32_t>(count);
  if (const auto* sel = optional_member(body, "node_selector")) {
    auto m = label_map(*sel, "node_selector");
    if (!m) return tl::unexpected(m.error());
    out.node_selector = std::move(*m);
  }
  out.accelerator = optional_string(body, "accelerator", "any");
  if (out.accelerator != "kvm" && out.accelerator != "tcg" && out.accelerator != "any")
    return invalid_argument("accelerator", "accelerator must be kvm, tcg or any");
  return out;
}

}  // namespace strata::manager
