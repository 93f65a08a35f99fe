// REST request bodies and query values -> typed values, pure (no store, no server): each
// route parses its body with parse_json_object and decodes it here, so every body's rules
// are unit-tested (test/manager/api/request_bodies_test.cc) and fuzzed
// (fuzz/targets/rest_bodies.cc) without a running manager. In an optional field, null
// means absent. Never throws.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "strata/common/error.h"
#include "strata/manager/api/http.h"

namespace strata::manager {

// Query parameter `name` as an integer in min..max; `def` when absent or empty.
Result<int> query_int(const HttpRequest& r, const std::string& name, int def, int min, int max);
// Expected resource_version from the If-Match header or a body field; nullopt when absent.
Result<std::optional<int64_t>> expected_version(const HttpRequest& r, const nlohmann::json* body);

// GET /api/v1/vms query: limit (0 = all, at most 10000), after (the previous page's `next`:
// a VM name), label=key=value, host (a host name), name (a substring of the VM name, at
// most 63 characters), state (an observed state), sort (id, name or -name).
struct VmListQuery {
  int limit = 0;
  std::string after;
  std::optional<std::pair<std::string, std::string>> label;
  std::string host;
  std::string name_contains;
  std::optional<std::string> state;
  enum class Sort { id, name, name_desc };
  Sort sort = Sort::id;
};
Result<VmListQuery> decode_vm_list_query(const HttpRequest& r);

// Query parameter `name` of GET /api/v1/hosts and GET /api/v1/images: a substring of the
// names to list (case-insensitive), "" when absent; at most 128 characters (an image name's
// limit, longer than any host name), no control characters. Errors name "name".
Result<std::string> decode_name_substring(const HttpRequest& r);

inline constexpr int64_t kMaxTokenTtlS = 10ll * 365 * 24 * 3600;

// POST /api/v1/tokens: {"name", "role", "ttl_s"?}.
struct TokenCreateBody {
  std::string name;
  Role role = Role::viewer;
  std::optional<int64_t> ttl_s;
};
Result<TokenCreateBody> decode_token_create(const nlohmann::json& body);

// A join token is a bearer credential for becoming a host (and getting a certificate the
// manager trusts): short-lived, one hour unless asked, a week at most.
inline constexpr int64_t kJoinMaxTtlS = 7ll * 24 * 3600;

// POST /api/v1/join-tokens: {"ttl_s"?, "count"?} (default one hour, at most kJoinMaxTtlS;
// count: that many tokens in one transaction, 1..kJoinMaxBatch, for enrolling a rack or a
// fleet at once).
inline constexpr uint64_t kJoinMaxBatch = 10000;
struct JoinTokenCreateBody {
  int64_t ttl_s = 3600;
  std::optional<uint64_t> count;
};
Result<JoinTokenCreateBody> decode_join_token_create(const nlohmann::json& body);

// PATCH /api/v1/hosts/{name}: {"labels"?: {k: "v" | null}, "maintenance"?,
// "resource_version"?}. A null label value removes the label.
struct HostPatchBody {
  std::map<std::string, std::optional<std::string>> labels;
  std::optional<bool> maintenance;
  std::optional<std::string> cluster;  // move the host to this cluster
};
Result<HostPatchBody> decode_host_patch(const nlohmann::json& body);

// PATCH /api/v1/vms/{name}: {"labels": {"k": "v" | null}, "resource_version"?}.
struct VmPatchBody {
  std::map<std::string, std::optional<std::string>> labels;
};
Result<VmPatchBody> decode_vm_patch(const nlohmann::json& body);

// POST /api/v1/hosts/enroll: {"join_token", "name", "address", "csr"?, "inventory"?,
// "cluster"?}.
struct EnrollBody {
  std::string join_token;
  std::string name;
  std::string address;
  std::optional<std::string> csr;
  std::optional<std::string> migration_csr;  // signed as the host's migration certificate
  std::string cluster = "default";          // the cluster the host joins
  std::string inventory;  // the inventory object as JSON text, "" when absent
  std::string accelerator;
  int64_t cpu_threads = 0;
  int64_t memory_mib = 0;
};
Result<EnrollBody> decode_enroll(const nlohmann::json& body);

// POST /api/v1/vms/{name}/{start|stop|reboot|pause|resume} and DELETE /api/v1/vms/{name}:
// the fields each takes ("resource_version"; stop also "force", "timeout_s").
Status check_vm_action_body(std::string_view verb, const nlohmann::json& body);
struct VmStopBody {
  bool force = false;
  uint32_t timeout_s = 0;  // 0..3600; 0: the agent's default
};
Result<VmStopBody> decode_vm_stop(const nlohmann::json& body);

// A JSON object of labels (or a node selector) checked as labels, counted before anything
// is copied: 400 naming `field` or `field.KEY`.
Result<std::map<std::string, std::string>> label_map(const nlohmann::json& obj,
                                                     const std::string& field);

// POST /api/v1/plan/host-down: {"hosts": [1..1000 host names], "ha_only"?}. The names are
// looked up by the route (hosts[i] names the one that does not exist).
struct HostDownPlanBody {
  std::vector<std::string> hosts;
  bool ha_only = false;
};
Result<HostDownPlanBody> decode_host_down_plan(const nlohmann::json& body);

// POST /api/v1/plan/capacity: {"vcpus", "memory_mib", "count"? (0..kMaxPlanCount),
// "node_selector"? (a label map), "accelerator"? (kvm, tcg or any)}.
inline constexpr uint32_t kMaxPlanCount = 100000;
struct CapacityPlanBody {
  uint32_t vcpus = 0;
  uint64_t memory_mib = 0;
  uint32_t count = 0;
  std::map<std::string, std::string> node_selector;
  std::string accelerator = "any";
};
Result<CapacityPlanBody> decode_capacity_plan(const nlohmann::json& body);

}  // namespace strata::manager
