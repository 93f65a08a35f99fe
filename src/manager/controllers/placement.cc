// Snapshot building from the store's hosts and the allocation cache; placement via
// strata_sched.
#include "strata/manager/controllers/placement.h"

#include <fmt/format.h>

#include <algorithm>

#include "strata/common/log.h"
#include "strata/manager/controllers/cpu_models.h"
#include "strata/manager/controllers/datastores.h"
#include "strata/manager/controllers/networks.h"

namespace strata::manager {

namespace {

VmAllocation allocation_of(const std::string& host_id, const VmDocument& doc) {
  return VmAllocation{host_id, doc.spec.vcpus, doc.spec.memory_mib,
                      doc.placement.anti_affinity_group, doc.placement.affinity_group};
}

}  // namespace

std::string live_cpu_requirement(const VmStatusDoc& st, const std::string& host_signature_token) {
  if (st.state != "running" && st.state != "paused") return "";
  if (st.cpu_model.empty()) return "";  // an agent that predates CPU models: as before
  if (sched::host_dependent_cpu(st.cpu_model)) return host_signature_token;
  return st.cpu_model;
}

std::string live_cpu_requirement(const store::VmRecord& vm, const store::HostRecord& host) {
  return live_cpu_requirement(decode_vm_status(vm.status),
                              cpu_signature_token(host_cpu(host.name, host.inventory).signature));
}

Status PlacementService::load() {
  auto vms = store_.list_vms({});
  if (!vms) return tl::unexpected(vms.error().wrap("loading VM allocations"));
  AllocationCache fresh;
  auto log = logger("manager.placement");
  for (const auto& vm : *vms) {
    if (!vm.host_id) continue;
    auto doc = decode_vm_document(vm.spec);
    if (!doc) {
      log->warn("vm document unreadable, not counted vm={} error={}", vm.name,
                doc.error().to_string());
      continue;
    }
    fresh.set(vm.id, allocation_of(*vm.host_id, *doc));
    if (doc->migration.active())
      fresh.set(AllocationCache::migration_key(vm.id),
                allocation_of(doc->migration.target_host_id, *doc));
  }
  log->info("allocation cache loaded vms={}", fresh.vm_count());
  std::lock_guard lock(cache_mu_);
  cache_ = std::move(fresh);
  return {};
}

Result<store::VmRecord> PlacementService::place_and_write(const VmDocument& doc,
                                                          const std::string& exclude_vm_id,
                                                          const PlacedWrite& write,
                                                          const std::function<Status()>& precheck,
                                                          const PlacedCheck& admit) {
  std::optional<store::HostRecord> host;
  std::string hold;
  {
    std::lock_guard lock(mu_);
    if (precheck)
      if (auto st = precheck(); !st) return tl::unexpected(st.error());
    auto chosen = place(doc, exclude_vm_id);
    if (!chosen) return tl::unexpected(chosen.error());
    if (admit)
      if (auto st = admit(*chosen); !st) return tl::unexpected(st.error());
    host = std::move(*chosen);
    std::lock_guard cache(cache_mu_);
    hold = AllocationCache::hold_key(++holds_);
    cache_.set(hold, allocation_of(host->id, doc));
  }
  // The write (a store transaction and its sync) runs without the placement lock: the hold
  // keeps the host's share taken meanwhile, so concurrent creates commit together.
  auto written = write(*host);
  std::lock_guard cache(cache_mu_);
  cache_.remove(hold);
  if (written) record_locked(written->id, host->id, doc);
  return written;
}

void PlacementService::record(const store::VmRecord& vm) {
  if (!vm.host_id) return forget(vm.id);
  auto doc = decode_vm_document(vm.spec);
  if (!doc) return forget(vm.id);
  record(vm.id, *vm.host_id, *doc);
}

void PlacementService::record(const std::string& vm_id, const std::string& host_id,
                              const VmDocument& doc) {
  std::lock_guard lock(cache_mu_);
  record_locked(vm_id, host_id, doc);
}

void PlacementService::record_locked(const std::string& vm_id, const std::string& host_id,
                                     const VmDocument& doc) {
  cache_.set(vm_id, allocation_of(host_id, doc));
  // A migration in progress also holds the VM's share of its target (released when the
  // record no longer has the intent: the migration ended either way).
  if (doc.migration.active() && doc.migration.target_host_id != host_id)
    cache_.set(AllocationCache::migration_key(vm_id),
               allocation_of(doc.migration.target_host_id, doc));
  else
    cache_.remove(AllocationCache::migration_key(vm_id));
}

void PlacementService::forget(const std::string& vm_id) {
  std::lock_guard lock(cache_mu_);
  cache_.remove(vm_id);
  cache_.remove(AllocationCache::migration_key(vm_id));
}

std::optional<VmAllocation> PlacementService::cached(const std::string& vm_id) const {
  std::lock_guard lock(cache_mu_);
  if (const VmAllocation* a = cache_.vm(vm_id)) return *a;
  return std::nullopt;
}

std::unordered_map<std::string, PlacementService::HostUse> PlacementService::allocated_by_host()
    const {
  std::unordered_map<std::string, HostUse> out;
  std::lock_guard lock(cache_mu_);
  out.reserve(cache_.hosts().size());
  for (const auto& [id, t] : cache_.hosts()) out[id] = HostUse{t.vcpus, t.memory_mib, t.vms};
  return out;
}

size_t PlacementService::cached_vm_count() const {
  std::lock_guard lock(cache_mu_);
  return cache_.vm_count();
}

SnapshotDetail SnapshotDetail::of(const sched::PlacementRequest& request) {
  return {!request.datastores.empty(), !request.cpu_model.empty(), !request.networks.empty()};
}

SnapshotDetail& SnapshotDetail::operator|=(const SnapshotDetail& o) {
  datastores = datastores || o.datastores;
  cpus = cpus || o.cpus;
  networks = networks || o.networks;
  return *this;
}

Result<sched::Snapshot> PlacementService::snapshot(const std::string& exclude_vm_id,
                                                   const std::string& exclude_host_id,
                                                   SnapshotDetail detail) {
  std::vector<std::string> excluded;
  if (!exclude_host_id.empty()) excluded.push_back(exclude_host_id);
  std::vector<std::string> vms;
  if (!exclude_vm_id.empty()) vms.push_back(exclude_vm_id);
  return snapshot_without(vms, excluded, detail);
}

PlacementService::CachedHost PlacementService::cached_host(const store::HostRecord& h) {
  CachedHost c;
  c.version = h.resource_version;
  sched::HostInfo& info = c.base;
  info.id = h.id;
  info.name = h.name;
  info.state = h.state == "up"            ? sched::HostState::up
               : h.state == "maintenance" ? sched::HostState::maintenance
                                          : sched::HostState::unreachable;
  info.accelerator = h.accelerator == "tcg" ? sched::Accelerator::tcg : sched::Accelerator::kvm;
  info.total_vcpus = static_cast<uint32_t>(h.cpu_threads);
  info.total_memory_mib = static_cast<uint64_t>(h.memory_mib);
  info.labels = h.labels;
  c.inventory = h.inventory;
  return c;
}

Result<sched::Snapshot> PlacementService::snapshot_without(
    const std::vector<std::string>& exclude_vm_ids,
    const std::vector<std::string>& exclude_host_ids, SnapshotDetail detail) {
  auto versions = store_.list_host_versions();
  if (!versions) return tl::unexpected(versions.error());
  std::vector<sched::HostInfo> list;
  list.reserve(versions->size());
  {
    std::lock_guard hosts_lock(hosts_mu_);
    if (hosts_.size() > versions->size()) {
      // Hosts were deleted: forget the ones the store no longer has.
      std::unordered_map<std::string, int64_t> present(versions->begin(), versions->end());
      for (auto it = hosts_.begin(); it != hosts_.end();)
        it = present.count(it->first) ? std::next(it) : hosts_.erase(it);
    }
    for (const auto& [id, version] : *versions) {
      auto it = hosts_.find(id);
      if (it == hosts_.end() || it->second.version != version) {
        auto h = store_.get_host(id);
        if (!h && h.error().code == ErrorCode::not_found) continue;  // deleted meanwhile
        if (!h) return tl::unexpected(h.error());
        it = hosts_.insert_or_assign(id, cached_host(*h)).first;
      }
      if (std::find(exclude_host_ids.begin(), exclude_host_ids.end(), id) != exclude_host_ids.end())
        continue;
      CachedHost& c = it->second;
      sched::HostInfo info = c.base;
      if (detail.datastores) {
        if (!c.datastores) {
          c.datastores.emplace();
          for (const auto& ds : host_datastores(c.inventory))
            c.datastores->push_back(datastore_key(ds.name, ds.id));
        }
        info.datastores = *c.datastores;
      }
      if (detail.networks) {
        if (!c.networks) c.networks = host_networks(c.inventory);
        info.networks = *c.networks;
      }
      if (detail.cpus) {
        if (!c.cpu_offers) {
          sched::HostCpu cpu = host_cpu(c.base.name, c.inventory);
          c.cpu_offers.emplace();
          for (const auto& [model, _] : cpu.usable) c.cpu_offers->push_back(model);
          c.cpu_offers->push_back(cpu_signature_token(cpu.signature));
        }
        info.cpu_offers = *c.cpu_offers;
      }
      list.push_back(std::move(info));
    }
  }
  {
    std::lock_guard lock(cache_mu_);
    for (auto& info : list) cache_.fill(info, exclude_vm_ids);
  }
  return sched::Snapshot::build(std::move(list));
}

Result<sched::PlacementRequest> PlacementService::request_for(const VmDocument& doc) {
  sched::PlacementRequest req;
  req.vcpus = doc.spec.vcpus;
  req.memory_mib = doc.spec.memory_mib;
  req.node_selector = doc.placement.node_selector;
  req.anti_affinity_group = doc.placement.anti_affinity_group;
  req.affinity_group = doc.placement.affinity_group;
  req.avoid_selector = doc.placement.avoid_selector;
  for (const auto& d : doc.spec.disks)
    if (!d.datastore.empty()) {
      std::string key = datastore_key(d.datastore, d.datastore_id);
      if (std::find(req.datastores.begin(), req.datastores.end(), key) == req.datastores.end())
        req.datastores.push_back(std::move(key));
    }
  req.networks = nic_networks(doc.spec.nics);
  if (!doc.placement.host.empty()) {
    auto pinned = store_.get_host_by_name(doc.placement.host);
    if (!pinned) {
      if (pinned.error().code == ErrorCode::not_found)
        return invalid_argument("host", fmt::format("no host named '{}'", doc.placement.host));
      return tl::unexpected(pinned.error());
    }
    req.pinned_host = pinned->id;
  }
  return req;
}

Result<store::HostRecord> PlacementService::place(const VmDocument& doc,
                                                  const std::string& exclude_vm_id) {
  auto req = request_for(doc);
  if (!req) return tl::unexpected(req.error());
  auto snap = snapshot(exclude_vm_id, {}, SnapshotDetail::of(*req));
  if (!snap) return tl::unexpected(snap.error());
  if (snap->size() == 0)
    return make_error(ErrorCode::resource_exhausted,
                      "no hosts are enrolled: enroll a host (strata-agent) first");
  auto plan = scheduler_.place(*snap, *req);
  if (!plan) return tl::unexpected(plan.error());
  return store_.get_host(plan->host_id);
}

Result<PlacementPreview> PlacementService::preview(const VmDocument& doc,
                                                   const std::string& exclude_vm_id) {
  auto req = request_for(doc);
  if (!req) return tl::unexpected(req.error());
  auto snap = snapshot(exclude_vm_id, {}, SnapshotDetail::of(*req));
  if (!snap) return tl::unexpected(snap.error());
  PlacementPreview out;
  out.hosts = snap->size();
  if (snap->size() == 0) {
    out.summary = "no hosts are enrolled: enroll a host (strata-agent) first";
    return out;
  }
  auto ex = scheduler_.explain(*snap, *req);
  if (!ex) return tl::unexpected(ex.error());
  out.summary = ex->summary();
  for (const auto& c : ex->candidates)
    out.candidates.push_back({c.host_id, snap->name(c.host_index), c.score});
  out.rejected = std::move(ex->rejections);
  return out;
}

Result<store::HostRecord> PlacementService::place_migration(const VmDocument& doc,
                                                            const std::string& vm_id,
                                                            const store::HostRecord& source,
                                                            const std::string& target_name) {
  if (!target_name.empty() && target_name == source.name)
    return invalid_argument("host", fmt::format("the VM already runs on '{}'", source.name));
  VmDocument moved = doc;
  moved.placement.host = target_name;  // the VM's own pin is where it runs now
  auto req = request_for(moved);
  if (!req) return tl::unexpected(req.error());
  req->accelerator = source.accelerator == "tcg"   ? sched::AcceleratorRequirement::tcg
                     : source.accelerator == "kvm" ? sched::AcceleratorRequirement::kvm
                                                   : sched::AcceleratorRequirement::any;
  // A running VM keeps its CPU across a live migration: the target must offer it (a
  // stopped VM adopts its new host's baseline when it starts there).
  auto vm = store_.get_vm(vm_id);
  if (!vm) return tl::unexpected(vm.error());
  req->cpu_model = live_cpu_requirement(*vm, source);
  auto snap = snapshot(vm_id, source.id, SnapshotDetail::of(*req));
  if (!snap) return tl::unexpected(snap.error());
  if (snap->size() == 0)
    return make_error(ErrorCode::resource_exhausted,
                      "no other host is enrolled: a migration needs a second host");
  auto plan = scheduler_.place(*snap, *req);
  if (!plan) return tl::unexpected(plan.error());
  return store_.get_host(plan->host_id);
}

Result<store::HostRecord> PlacementService::place_group_migration(
    const std::vector<std::pair<std::string, VmDocument>>& members,
    const store::HostRecord& source, const std::string& target_name) {
  if (members.empty()) return invalid_argument("vm", "a group move needs its VMs");
  if (!target_name.empty() && target_name == source.name)
    return invalid_argument("host", fmt::format("the VMs already run on '{}'", source.name));
  const auto accelerator = source.accelerator == "tcg"   ? sched::AcceleratorRequirement::tcg
                           : source.accelerator == "kvm" ? sched::AcceleratorRequirement::kvm
                                                         : sched::AcceleratorRequirement::any;
  std::vector<sched::PlacementRequest> each;
  std::vector<std::string> ids;
  SnapshotDetail detail;
  for (const auto& [id, doc] : members) {
    VmDocument moved = doc;
    moved.placement.host = target_name;
    auto req = request_for(moved);
    if (!req) return tl::unexpected(req.error());
    req->accelerator = accelerator;
    auto vm = store_.get_vm(id);
    if (!vm) return tl::unexpected(vm.error());
    req->cpu_model = live_cpu_requirement(*vm, source);
    detail |= SnapshotDetail::of(*req);
    each.push_back(std::move(*req));
    ids.push_back(id);
  }
  // Every member's VMs are left out: the group leaves the source together.
  auto snap = snapshot_without(ids, {source.id}, detail);
  if (!snap) return tl::unexpected(snap.error());
  if (snap->size() == 0)
    return make_error(ErrorCode::resource_exhausted,
                      "no other host is enrolled: a migration needs a second host");
  // The group as one request: the first member's filters, everyone's resources.
  sched::PlacementRequest all = each.front();
  for (size_t i = 1; i < each.size(); ++i) {
    all.vcpus += each[i].vcpus;
    all.memory_mib += each[i].memory_mib;
    for (const auto& ds : each[i].datastores)
      if (std::find(all.datastores.begin(), all.datastores.end(), ds) == all.datastores.end())
        all.datastores.push_back(ds);
    for (const auto& n : each[i].networks)
      if (std::find(all.networks.begin(), all.networks.end(), n) == all.networks.end())
        all.networks.push_back(n);
  }
  auto why = scheduler_.explain(*snap, all);
  if (!why) return tl::unexpected(why.error());
  std::string refused;
  for (const auto& c : why->candidates) {
    // Each member's own filters, on that host.
    std::string failed;
    for (size_t i = 0; i < each.size() && failed.empty(); ++i) {
      sched::PlacementRequest one = each[i];
      one.pinned_host = c.host_id;
      if (auto p = scheduler_.place(*snap, one); !p)
        failed = fmt::format("{}: {}", members[i].second.spec.name, p.error().message);
    }
    if (failed.empty()) return store_.get_host(c.host_id);
    if (refused.empty()) refused = failed;
  }
  return make_error(ErrorCode::resource_exhausted,
                    fmt::format("no host takes keep-together group {} ({} VMs, {} vCPUs, {} MiB) "
                                "as one: {}",
                                members.front().second.placement.affinity_group, members.size(),
                                all.vcpus, all.memory_mib,
                                refused.empty() ? why->summary() : refused));
}

}  // namespace strata::manager
