// GET /api/v1/summary: the dashboard's numbers computed on the server, whatever the fleet's
// size. VM and task counts are aggregated by the database (Store::summarize, one query per
// table); hosts are listed once; what the VMs hold per host comes from the placement
// service's allocation cache, the numbers the scheduler itself places against. Datastore
// capacity and use are the agents' own reports (each host's inventory, refreshed with its
// heartbeats), one storage counted once however many hosts mount it.
#include <algorithm>

#include "strata/manager/api/api_service.h"
#include "strata/manager/controllers/datastores.h"
#include "strata/manager/controllers/placement.h"
#include "strata/manager/tasks/task_tracker.h"

namespace strata::manager {

namespace {

constexpr int kDefaultRecent = 10;
constexpr int kMaxRecent = 100;

nlohmann::json counts_json(const std::map<std::string, int64_t>& counts) {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& [state, n] : counts) {
    // A VM whose status reports no state yet is "unknown", as in the web console.
    const std::string key = state.empty() ? "unknown" : state;
    j[key] = j.value(key, int64_t{0}) + n;
  }
  return j;
}

HttpResponse summary(ApiDeps& d, HttpRequest& r) {
  auto recent = query_int(r, "recent", kDefaultRecent, 0, kMaxRecent);
  if (!recent) return error_response(recent.error());
  auto counted = d.store->summarize(*recent);
  if (!counted) return error_response(counted.error());
  auto hosts = d.store->list_hosts({});
  if (!hosts) return error_response(hosts.error());
  std::unordered_map<std::string, PlacementService::HostUse> used;
  sched::SchedulerConfig config;
  if (d.placement) {
    used = d.placement->allocated_by_host();
    config = d.placement->scheduler().config();
  }

  std::map<std::string, int64_t> host_states;
  int64_t unreachable = 0, maintenance = 0;
  uint64_t vcpus = 0, memory_mib = 0, allocated_vcpus = 0, allocated_memory_mib = 0;
  nlohmann::json items = nlohmann::json::array();
  DatastoreTally tally;
  for (const auto& h : *hosts) {
    ++host_states[h.state];
    nlohmann::json j = host_json(d, h, false);
    if (h.state == "maintenance") ++maintenance;
    if (h.state == "unreachable" || j.value("reachability", "") == "unreachable") ++unreachable;
    PlacementService::HostUse u;
    if (auto it = used.find(h.id); it != used.end()) u = it->second;
    j["allocated_vcpus"] = u.vcpus;
    j["allocated_memory_mib"] = u.memory_mib;
    j["vms"] = u.vms;
    // Most inventories name no datastore: skip the JSON parse for those.
    std::vector<HostDatastore> mounted;
    if (h.inventory.find("\"datastores\"") != std::string::npos)
      mounted = host_datastores(h.inventory);
    nlohmann::json ds = nlohmann::json::array();
    for (const auto& m : mounted)
      ds.push_back({{"name", m.name},
                    {"id", m.id},
                    {"total_bytes", m.total_bytes},
                    {"used_bytes", used_bytes(m)},
                    {"free_bytes", m.free_bytes}});
    j["datastores"] = std::move(ds);
    tally.add(h, mounted);
    items.push_back(std::move(j));
    vcpus += static_cast<uint64_t>(std::max<int64_t>(h.cpu_threads, 0));
    memory_mib += static_cast<uint64_t>(std::max<int64_t>(h.memory_mib, 0));
  }
  for (const auto& [id, u] : used) {
    allocated_vcpus += u.vcpus;
    allocated_memory_mib += u.memory_mib;
  }

  uint64_t ds_total = 0, ds_used = 0, ds_free = 0;
  nlohmann::json datastores = nlohmann::json::array();
  for (const auto& u : tally.items()) {
    ds_total += u.total_bytes;
    ds_used += u.used_bytes;
    ds_free += u.free_bytes;
    datastores.push_back({{"name", u.name},
                          {"id", u.id},
                          {"total_bytes", u.total_bytes},
                          {"used_bytes", u.used_bytes},
                          {"free_bytes", u.free_bytes},
                          {"hosts", u.hosts},
                          {"reported_ms", u.reported_ms}});
  }

  auto tasks_json = [](const std::vector<store::TaskRecord>& list) {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& t : list) out.push_back(to_json(t));
    return out;
  };
  const auto& ts = counted->tasks_by_state;
  auto task_count = [&ts](const char* state) {
    auto it = ts.find(state);
    return it == ts.end() ? int64_t{0} : it->second;
  };
  nlohmann::json body = {
      {"vms",
       {{"total", counted->vms},
        {"by_state", counts_json(counted->vms_by_state)},
        {"deleting", counted->vms_deleting},
        {"unplaced", counted->vms_unplaced}}},
      {"hosts",
       {{"total", static_cast<int64_t>(hosts->size())},
        {"by_state", counts_json(host_states)},
        {"maintenance", maintenance},
        {"unreachable", unreachable},
        {"items", std::move(items)}}},
      {"capacity",
       {{"vcpus", vcpus},
        {"allocated_vcpus", allocated_vcpus},
        {"schedulable_vcpus", static_cast<uint64_t>(static_cast<double>(vcpus) * config.cpu_overcommit)},
        {"memory_mib", memory_mib},
        {"allocated_memory_mib", allocated_memory_mib},
        {"schedulable_memory_mib",
         static_cast<uint64_t>(static_cast<double>(memory_mib) * config.mem_overcommit)},
        {"cpu_overcommit", config.cpu_overcommit},
        {"memory_overcommit", config.mem_overcommit}}},
      {"datastores",
       {{"total_bytes", ds_total},
        {"used_bytes", ds_used},
        {"free_bytes", ds_free},
        {"items", std::move(datastores)}}},
      {"tasks",
       {{"by_state", counts_json(ts)},
        {"running", task_count("running")},
        {"pending", task_count("pending")},
        {"failed", task_count("failed")},
        {"recent", tasks_json(counted->recent_tasks)},
        {"recent_failed", tasks_json(counted->failed_tasks)}}},
  };
  return HttpResponse::json(200, body);
}

}  // namespace

void add_summary_routes(ApiService& api) {
  ApiDeps& d = api.deps();
  // Read-only: any role may read it.
  api.router().add("GET", "/api/v1/summary", RouteOptions{},
                   [&d](HttpRequest& r) { return summary(d, r); });
}

}  // namespace strata::manager
