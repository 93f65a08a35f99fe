// Datastores in host inventories and VM specs (see datastores.h).
#include "strata/manager/controllers/datastores.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

namespace strata::manager {

std::vector<HostDatastore> host_datastores(const std::string& inventory_json) {
  std::vector<HostDatastore> out;
  auto j = nlohmann::json::parse(inventory_json, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return out;
  auto it = j.find("datastores");
  if (it == j.end() || !it->is_array()) return out;
  for (const auto& d : *it) {
    if (!d.is_object()) continue;
    auto name = d.find("name");
    auto id = d.find("id");
    if (name == d.end() || id == d.end() || !name->is_string() || !id->is_string()) continue;
    HostDatastore ds;
    ds.name = name->get<std::string>();
    ds.id = id->get<std::string>();
    if (auto t = d.find("total_bytes"); t != d.end() && t->is_number_unsigned())
      ds.total_bytes = t->get<uint64_t>();
    if (auto f = d.find("free_bytes"); f != d.end() && f->is_number_unsigned())
      ds.free_bytes = f->get<uint64_t>();
    out.push_back(std::move(ds));
  }
  return out;
}

std::string datastore_key(const std::string& name, const std::string& id) {
  return name + "@" + id;
}

uint64_t used_bytes(const HostDatastore& ds) {
  return ds.total_bytes > ds.free_bytes ? ds.total_bytes - ds.free_bytes : 0;
}

void DatastoreTally::add(const store::HostRecord& host, const std::vector<HostDatastore>& mounted) {
  for (const auto& ds : mounted) {
    auto [it, fresh] = by_id_.try_emplace(ds.id);
    DatastoreUsage& u = it->second;
    ++u.hosts;
    if (fresh || host.last_heartbeat_ms > u.reported_ms) {
      u.name = ds.name;
      u.id = ds.id;
      u.total_bytes = ds.total_bytes;
      u.free_bytes = ds.free_bytes;
      u.used_bytes = used_bytes(ds);
      u.reported_ms = host.last_heartbeat_ms;
    }
  }
}

std::vector<DatastoreUsage> DatastoreTally::items() const {
  std::vector<DatastoreUsage> out;
  out.reserve(by_id_.size());
  for (const auto& [id, u] : by_id_) out.push_back(u);
  std::stable_sort(out.begin(), out.end(), [](const DatastoreUsage& a, const DatastoreUsage& b) {
    return a.name < b.name;
  });
  return out;
}

Status resolve_datastores(model::VmSpec& spec, const std::vector<store::HostRecord>& hosts) {
  // name -> UUID -> hosts reporting it
  std::map<std::string, std::map<std::string, std::set<std::string>>> seen;
  bool any = false;
  for (const auto& d : spec.disks) any = any || !d.datastore.empty();
  if (!any) return {};
  for (const auto& h : hosts)
    for (const auto& ds : host_datastores(h.inventory)) seen[ds.name][ds.id].insert(h.name);
  for (size_t i = 0; i < spec.disks.size(); ++i) {
    auto& d = spec.disks[i];
    if (d.datastore.empty()) continue;
    const std::string field = fmt::format("disks[{}].datastore", i);
    auto it = seen.find(d.datastore);
    if (it == seen.end())
      return invalid_argument(field, fmt::format("no host mounts a datastore named '{}' "
                                                 "(strata-agent --datastore {}=PATH)",
                                                 d.datastore, d.datastore));
    if (!d.datastore_id.empty()) {
      if (!it->second.contains(d.datastore_id))
        return invalid_argument(fmt::format("disks[{}].datastore_id", i),
                                fmt::format("no host mounts datastore '{}' with UUID {}",
                                            d.datastore, d.datastore_id));
      continue;
    }
    if (it->second.size() > 1) {
      std::string which;
      for (const auto& [id, names] : it->second)
        which += fmt::format("{}{} on {}", which.empty() ? "" : "; ", id, *names.begin());
      return make_error(ErrorCode::failed_precondition,
                        fmt::format("datastore '{}' is different storage on different hosts "
                                    "({}): give each storage its own name",
                                    d.datastore, which),
                        field);
    }
    d.datastore_id = it->second.begin()->first;
  }
  return {};
}

}  // namespace strata::manager
