// Dry-run placement: POST /api/v1/placement takes the body of POST /api/v1/vms and answers
// where the VM would go now and why not on each other host (the scheduler's explanation),
// creating nothing. The web console's create wizard shows it before "Create"; the same
// question serves what-if checks from scripts. Validated exactly as a create (400 naming
// the field, 409 for a taken name), so what it accepts a create accepts too.
#include <fmt/format.h>

#include <algorithm>

#include "strata/manager/api/api_service.h"
#include "strata/manager/api/json_fields.h"
#include "strata/manager/api/request_bodies.h"
#include "strata/manager/api/vm_rest.h"
#include "strata/manager/controllers/datastores.h"
#include "strata/manager/controllers/image_distribution.h"
#include "strata/manager/controllers/placement.h"
#include "strata/manager/vms/balancer.h"
#include "strata/model/validation.h"

namespace strata::manager {

namespace {

// complete() fills an empty uuid and MACs from this; a preview never keeps them, but each
// call must differ (two NICs with the same generated MAC would be refused). splitmix64.
uint64_t preview_random() {
  thread_local uint64_t state = 0x2545f4914f6cdd1dull;
  uint64_t z = (state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

nlohmann::json preview_to_json(const PlacementPreview& p) {
  nlohmann::json candidates = nlohmann::json::array();
  for (const auto& c : p.candidates) candidates.push_back({{"host", c.host_name}, {"score", c.score}});
  nlohmann::json rejected = nlohmann::json::array();
  for (const auto& r : p.rejected)
    rejected.push_back(
        {{"host", r.host_name}, {"filter", std::string(sched::to_string(r.filter))}, {"reason", r.reason}});
  nlohmann::json host = nullptr;
  if (!p.candidates.empty()) host = p.candidates.front().host_name;
  return {{"fits", !p.candidates.empty()}, {"host", host},        {"hosts", p.hosts},
          {"summary", p.summary},          {"candidates", candidates}, {"rejected", rejected}};
}

HttpResponse preview_placement(ApiDeps& d, HttpRequest& r) {
  auto body = parse_json_object(r.body);
  if (!body) return error_response(body.error());
  bool start = true;
  auto doc = vm_document_from_request(*body, &start);
  if (!doc) return error_response(doc.error());
  auto completed = model::complete(doc->spec, &preview_random);
  if (!completed) return error_response(completed.error());
  doc->spec = std::move(*completed);
  if (auto st = check_image_kinds(*d.store, doc->spec); !st) return error_response(st.error());
  {
    auto hosts = d.store->list_hosts({});
    if (!hosts) return error_response(hosts.error());
    if (auto st = resolve_datastores(doc->spec, *hosts); !st) return error_response(st.error());
  }
  if (d.store->get_vm_by_name(doc->spec.name))
    return error_response(Error{ErrorCode::already_exists,
                                fmt::format("a VM named '{}' already exists", doc->spec.name),
                                "name"});
  if (!d.placement) return error_response(Error{ErrorCode::unavailable, "no scheduler", ""});
  auto preview = d.placement->preview(*doc);
  if (!preview) return error_response(preview.error());
  return HttpResponse::json(200, preview_to_json(*preview));
}

nlohmann::json plan_to_json(const HostDownPlan& p) {
  nlohmann::json moves = nlohmann::json::array();
  for (const auto& m : p.moves)
    moves.push_back({{"vm", m.vm}, {"from", m.from_host}, {"to", m.to_host}, {"score", m.score},
                     {"ha", m.ha}});
  nlohmann::json stays = nlohmann::json::array();
  for (const auto& s : p.stays)
    stays.push_back({{"vm", s.vm}, {"from", s.from_host}, {"reason", s.reason}, {"ha", s.ha}});
  std::string summary =
      p.stays.empty()
          ? fmt::format("all {} VMs would move", p.moves.size())
          : fmt::format("{} VMs would move, {} would not fit", p.moves.size(), p.stays.size());
  return {{"hosts", p.hosts},  {"fits", p.stays.empty()}, {"summary", summary},
          {"moves", moves},    {"stays", stays}};
}

// POST /api/v1/plan/host-down {"hosts": [names], "ha_only": bool}: what would happen to
// the VMs of these hosts if they were lost (ha_only: an HA restart) or drained.
HttpResponse plan_host_down(ApiDeps& d, HttpRequest& r) {
  auto body = parse_json_object(r.body);
  if (!body) return error_response(body.error());
  auto req = decode_host_down_plan(*body);
  if (!req) return error_response(req.error());
  std::vector<std::string> ids;
  for (size_t i = 0; i < req->hosts.size(); ++i) {
    auto h = d.store->get_host_by_name(req->hosts[i]);
    if (!h) {
      if (h.error().code == ErrorCode::not_found)
        return error_response(invalid_argument(fmt::format("hosts[{}]", i),
                                               fmt::format("no host named '{}'", req->hosts[i]))
                                  .value());
      return error_response(h.error());
    }
    if (std::find(ids.begin(), ids.end(), h->id) == ids.end()) ids.push_back(h->id);
  }
  if (!d.placement) return error_response(Error{ErrorCode::unavailable, "no scheduler", ""});
  auto plan = d.placement->plan_host_down(ids, req->ha_only);
  if (!plan) return error_response(plan.error());
  return HttpResponse::json(200, plan_to_json(*plan));
}

nlohmann::json capacity_to_json(const CapacityPlan& p, const sched::PlacementRequest& size) {
  nlohmann::json hosts = nlohmann::json::array();
  for (const auto& h : p.hosts)
    hosts.push_back({{"host", h.host},
                     {"vms", h.vms},
                     {"free_vcpus_after", h.free_vcpus},
                     {"free_memory_mib_after", h.free_memory_mib}});
  std::string fit = p.capped ? fmt::format("at least {}", p.fit) : std::to_string(p.fit);
  std::string summary =
      p.requested == 0
          ? fmt::format("{} more VMs of {} vCPU / {} MiB fit", fit, size.vcpus, size.memory_mib)
      : p.fit >= p.requested
          ? fmt::format("all {} fit ({} in all)", p.requested, fit)
          : fmt::format("{} of {} fit", p.fit, p.requested);
  if (!p.runs_out_first.empty()) summary += "; " + p.runs_out_first + " runs out first";
  nlohmann::json requested = nullptr;
  if (p.requested != 0) requested = p.requested;
  return {{"size", {{"vcpus", size.vcpus}, {"memory_mib", size.memory_mib}}},
          {"requested", requested},
          {"fits", p.requested == 0 ? p.fit > 0 : p.fit >= p.requested},
          {"fit", p.fit},
          {"capped", p.capped},
          {"runs_out_first", p.runs_out_first.empty() ? nlohmann::json(nullptr)
                                                      : nlohmann::json(p.runs_out_first)},
          {"explanation", p.summary},
          {"summary", summary},
          {"hosts", hosts}};
}

// POST /api/v1/plan/capacity {"vcpus", "memory_mib", "count"?, "node_selector"?,
// "accelerator"?}: how many more VMs of this size fit, where `count` of them would go, and
// which resource runs out first.
HttpResponse plan_capacity(ApiDeps& d, HttpRequest& r) {
  auto body = parse_json_object(r.body);
  if (!body) return error_response(body.error());
  auto req = decode_capacity_plan(*body);
  if (!req) return error_response(req.error());
  static_assert(kMaxPlanCount == CapacityPlan::kMax);
  sched::PlacementRequest size;
  size.vcpus = req->vcpus;
  size.memory_mib = req->memory_mib;
  size.node_selector = std::move(req->node_selector);
  if (req->accelerator == "kvm") size.accelerator = sched::AcceleratorRequirement::kvm;
  else if (req->accelerator == "tcg") size.accelerator = sched::AcceleratorRequirement::tcg;
  if (!d.placement) return error_response(Error{ErrorCode::unavailable, "no scheduler", ""});
  auto plan = d.placement->plan_capacity(size, req->count);
  if (!plan) return error_response(plan.error());
  return HttpResponse::json(200, capacity_to_json(*plan, size));
}

nlohmann::json balance_to_json(const Balancer& b, const BalanceProposal& p) {
  nlohmann::json moves = nlohmann::json::array();
  for (const auto& m : p.moves)
    moves.push_back({{"vm", m.vm},
                     {"from", m.from_host},
                     {"to", m.to_host},
                     {"imbalance_before", m.imbalance_before},
                     {"imbalance_after", m.imbalance_after},
                     {"memory_mib", m.memory_mib},
                     {"local_disk_bytes", m.disk_bytes},
                     {"together_with", m.together_with}});
  nlohmann::json held = nlohmann::json::array();
  for (const auto& h : p.held) held.push_back({{"vm", h.vm}, {"host", h.host}, {"reason", h.reason}});
  const auto& c = b.config();
  std::string summary =
      p.moves.empty()
          ? (p.stopped == "balanced"
                 ? fmt::format("balanced: imbalance {:.3f} is under {:.3f}", p.imbalance,
                               c.plan.min_imbalance)
             : p.stopped == "no_hosts"
                 ? std::string("fewer than two hosts are up: nothing to balance")
                 : fmt::format("imbalance {:.3f}, but no allowed move lowers it by {:.3f} or more",
                               p.imbalance, c.plan.min_gain))
          : fmt::format("{} move(s) would lower the imbalance from {:.3f} to {:.3f}",
                        p.moves.size(), p.imbalance, p.imbalance_after);
  return {{"mode", std::string(to_string(c.mode))},
          {"hosts", p.hosts},
          {"imbalance", p.imbalance},
          {"imbalance_after", p.imbalance_after},
          {"stopped", p.stopped},
          {"summary", summary},
          {"moves", moves},
          {"held", held},
          {"settings",
           {{"min_imbalance", c.plan.min_imbalance},
            {"min_gain", c.plan.min_gain},
            {"max_moves", c.plan.max_moves},
            {"interval_s",
             std::chrono::duration_cast<std::chrono::seconds>(c.interval).count()},
            {"hold_after_move_s",
             std::chrono::duration_cast<std::chrono::seconds>(c.hold_after_move).count()}}}};
}

}  // namespace

void add_placement_routes(ApiService& api) {
  ApiDeps& d = api.deps();
  // A question, not a change: any role may ask, nothing is audited.
  api.router().add("POST", "/api/v1/placement", RouteOptions{},
                   [&d](HttpRequest& r) { return preview_placement(d, r); });
  api.router().add("POST", "/api/v1/plan/host-down", RouteOptions{},
                   [&d](HttpRequest& r) { return plan_host_down(d, r); });
  api.router().add("POST", "/api/v1/plan/capacity", RouteOptions{},
                   [&d](HttpRequest& r) { return plan_capacity(d, r); });
  // Load balancing (vms/balancer.h): the moves now (any role), and carrying them out
  // (operator; 202 with a vm.migrate task per move started).
  api.router().add("GET", "/api/v1/balance", RouteOptions{}, [&d](HttpRequest&) {
    if (!d.balancer) return error_response(Error{ErrorCode::unavailable, "no balancer", ""});
    auto p = d.balancer->plan();
    if (!p) return error_response(p.error());
    return HttpResponse::json(200, balance_to_json(*d.balancer, *p));
  });
  RouteOptions apply;
  apply.role = Role::operator_;
  apply.action = "balance.apply";
  api.router().add("POST", "/api/v1/balance/apply", apply, [&d](HttpRequest& r) {
    auto body = parse_json_object(r.body, /*allow_empty=*/true);
    if (!body) return error_response(body.error());
    if (auto st = check_fields(*body, {}); !st) return error_response(st.error());
    if (!d.balancer) return error_response(Error{ErrorCode::unavailable, "no balancer", ""});
    auto applied = d.balancer->apply(audit_actor(r));
    if (!applied) return error_response(applied.error());
    nlohmann::json j = balance_to_json(*d.balancer, applied->proposal);
    nlohmann::json started = nlohmann::json::array();
    for (const auto& s : applied->started) started.push_back({{"vm", s.vm}, {"task_id", s.task_id}});
    nlohmann::json refused = nlohmann::json::array();
    for (const auto& f : applied->refused) refused.push_back({{"vm", f.vm}, {"reason", f.reason}});
    j["started"] = started;
    j["refused"] = refused;
    auto resp = HttpResponse::json(applied->started.empty() ? 200 : 202, j);
    resp.audit_target = "cluster";
    resp.audit_written = !applied->proposal.moves.empty();  // balance.apply event
    return resp;
  });
}

}  // namespace strata::manager
