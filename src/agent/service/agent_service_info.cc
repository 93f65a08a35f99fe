// AgentService: the read-only RPCs (inventory, metrics, VM listing, images, health).
#include <algorithm>

#include "strata/agent/service/agent_service.h"
#include "strata/model/validation.h"
#include "strata/wire/status.h"
#include "strata/wire/vm_status.h"

namespace strata::agent::service {

grpc::Status AgentService::GetInventory(grpc::ServerContext*, const v1::GetInventoryRequest*,
                                        v1::GetInventoryResponse* resp) {
  if (!opts_.inventory) {
    return wire::to_grpc_status(Error{ErrorCode::unavailable, "no inventory provider", {}});
  }
  auto inv = opts_.inventory();
  if (!inv) return wire::to_grpc_status(inv.error());
  *resp->mutable_inventory() = std::move(*inv);
  return grpc::Status::OK;
}

grpc::Status AgentService::GetMetrics(grpc::ServerContext*, const v1::GetMetricsRequest*,
                                      v1::GetMetricsResponse* resp) {
  if (opts_.host_metrics) {
    auto host = opts_.host_metrics();
    if (!host) return wire::to_grpc_status(host.error());
    *resp->mutable_host() = std::move(*host);
  }
  auto vms = hv_.list();
  std::sort(vms.begin(), vms.end(),
            [](const VmStatus& a, const VmStatus& b) { return a.spec.name < b.spec.name; });
  for (const auto& vm : vms) {
    if (!has_process(vm.state)) continue;
    auto stats = hv_.stats(vm.spec.name);
    if (!stats) continue;  // it stopped between list() and stats()
    auto* m = resp->add_vms();
    m->set_name(vm.spec.name);
    m->set_state(wire::to_proto(vm.state));
    *m->mutable_stats() = wire::to_proto(*stats);
  }
  return grpc::Status::OK;
}

grpc::Status AgentService::ListVms(grpc::ServerContext*, const v1::ListVmsRequest* req,
                                   v1::ListVmsResponse* resp) {
  auto vms = hv_.list();
  std::sort(vms.begin(), vms.end(),
            [](const VmStatus& a, const VmStatus& b) { return a.spec.name < b.spec.name; });
  for (const auto& vm : vms) {
    bool match = std::all_of(req->label_selector().begin(), req->label_selector().end(),
                             [&](const auto& kv) {
                               auto it = vm.spec.labels.find(kv.first);
                               return it != vm.spec.labels.end() && it->second == kv.second;
                             });
    if (match) *resp->add_vms() = wire::to_proto(vm);
  }
  return grpc::Status::OK;
}

grpc::Status AgentService::ListImages(grpc::ServerContext*, const v1::ListImagesRequest*,
                                      v1::ListImagesResponse* resp) {
  if (!opts_.images) {
    return wire::to_grpc_status(Error{ErrorCode::unavailable, "no image store", {}});
  }
  auto images = opts_.images->list_images();
  std::sort(images.begin(), images.end(),
            [](const ImageInfo& a, const ImageInfo& b) { return a.name < b.name; });
  for (const auto& img : images) *resp->add_images() = wire::to_proto(img);
  return grpc::Status::OK;
}

grpc::Status AgentService::Health(grpc::ServerContext* ctx, const v1::HealthRequest* req,
                                  v1::HealthResponse* resp) {
  // An HA lease grant (docs/internals/ha.md, "Leases"). Checked whole before any lease
  // changes; a request past its deadline renews nothing (the manager counted its margin
  // from when it sent the request, plus that deadline).
  if (req->ha_lease_ms() != 0) {
    constexpr int64_t kMaxLeaseMs = 3600 * 1000;
    if (req->ha_lease_ms() < 0 || req->ha_lease_ms() > kMaxLeaseMs)
      return wire::to_grpc_status(Error{
          ErrorCode::invalid_argument, "ha_lease_ms must be between 1 and 3600000", "ha_lease_ms"});
    if (req->ha_vms_size() > 100000)
      return wire::to_grpc_status(
          Error{ErrorCode::invalid_argument, "at most 100000 ha_vms", "ha_vms"});
    std::vector<std::string> vms;
    for (const auto& name : req->ha_vms()) {
      if (auto st = model::validate_name("ha_vms", name); !st)
        return wire::to_grpc_status(st.error());
      vms.push_back(name);
    }
    if (ctx && ctx->deadline() < std::chrono::system_clock::now())
      return wire::to_grpc_status(
          Error{ErrorCode::deadline_exceeded, "the heartbeat arrived too late", {}});
    for (auto& name : hv_.renew_ha_leases(vms, std::chrono::milliseconds(req->ha_lease_ms())))
      resp->add_leased_vms(std::move(name));
  }
  resp->set_serving(!stopping_);
  resp->set_agent_version(opts_.agent_version);
  resp->set_api_level(wire::reported_api_level(opts_.api_level));
  resp->set_hostname(opts_.hostname);
  resp->set_accelerator(opts_.accelerator);
  resp->set_started_unix_ms(started_unix_ms_);
  resp->set_vm_count(static_cast<uint32_t>(hv_.list().size()));
  return grpc::Status::OK;
}

grpc::Status AgentService::ConsoleTail(grpc::ServerContext*, const v1::ConsoleTailRequest* req,
                                       v1::ConsoleTailResponse* resp) {
  if (auto st = model::validate_name("name", req->name()); !st)
    return wire::to_grpc_status(st.error());
  size_t max = req->max_bytes() ? std::min<uint32_t>(req->max_bytes(), 1u << 20) : 65536;
  auto tail = hv_.console_tail(req->name(), max);
  if (!tail) return wire::to_grpc_status(tail.error());
  resp->set_data(std::move(*tail));
  return grpc::Status::OK;
}

}  // namespace strata::agent::service
