// AgentService: the server-streaming RPCs (console output, VM events). Each stream runs on
// its gRPC handler thread, draining a bounded queue fed by a driver callback, and polls for
// client cancellation and agent shutdown.
#include <chrono>

#include "event_hub.h"
#include "strata/agent/service/agent_service.h"
#include "strata/agent/service/grpc_status.h"
#include "strata/agent/service/proto_convert.h"
#include "strata/model/validation.h"
#include "stream_queue.h"

namespace strata::agent::service {

namespace {
constexpr auto kPoll = std::chrono::milliseconds(200);
constexpr size_t kConsoleQueueChunks = 4096;

grpc::Status shutting_down() {
  return to_grpc_status(Error{ErrorCode::unavailable, "agent is shutting down", {}});
}
grpc::Status overflowed(const char* what) {
  return to_grpc_status(Error{
      ErrorCode::resource_exhausted, std::string(what) + " stream fell behind; reconnect", {}});
}
}  // namespace

grpc::Status AgentService::StreamConsole(grpc::ServerContext* ctx,
                                         const v1::StreamConsoleRequest* req,
                                         grpc::ServerWriter<v1::ConsoleChunk>* writer) {
  if (auto st = model::validate_name("name", req->name()); !st) return to_grpc_status(st.error());
  auto queue = std::make_shared<StreamQueue<std::string>>(kConsoleQueueChunks);
  // Subscribe before reading the tail: the two may overlap by a few bytes, but no output
  // is lost between them.
  auto sub = hv_.console_subscribe(
      req->name(), [queue](std::string_view data) { queue->push(std::string(data)); });
  if (!sub) return to_grpc_status(sub.error());
  if (req->tail_bytes() > 0) {
    auto tail = hv_.console_tail(req->name(), std::min<uint32_t>(req->tail_bytes(), 1u << 20));
    if (!tail) return to_grpc_status(tail.error());
    v1::ConsoleChunk chunk;
    chunk.set_data(std::move(*tail));
    if (!chunk.data().empty() && !writer->Write(chunk)) return grpc::Status::OK;
  }
  while (!ctx->IsCancelled()) {
    if (stopping_) return shutting_down();
    auto data = queue->pop_for(kPoll);
    if (!data) {
      if (queue->overflowed()) return overflowed("console");
      continue;
    }
    v1::ConsoleChunk chunk;
    chunk.set_data(std::move(*data));
    if (!writer->Write(chunk)) break;  // client went away
  }
  return grpc::Status::OK;
}

grpc::Status AgentService::WatchEvents(grpc::ServerContext* ctx, const v1::WatchEventsRequest* req,
                                       grpc::ServerWriter<v1::VmEvent>* writer) {
  if (!req->vm().empty()) {
    if (auto st = model::validate_name("vm", req->vm()); !st) return to_grpc_status(st.error());
  }
  // Subscribe before the snapshot so no transition between the two is missed.
  auto queue = hub_->subscribe();
  struct Unsubscribe {
    EventHub& hub;
    std::shared_ptr<EventHub::Queue> q;
    ~Unsubscribe() { hub.unsubscribe(q); }
  } unsubscribe{*hub_, queue};

  if (req->include_current()) {
    int64_t now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                         opts_.clock->wall().time_since_epoch())
                         .count();
    for (const auto& vm : hv_.list()) {
      if (!req->vm().empty() && vm.spec.name != req->vm()) continue;
      if (!writer->Write(to_proto(VmEvent{vm.spec.name, vm.state, "current", now_ms}))) {
        return grpc::Status::OK;
      }
    }
  }
  while (!ctx->IsCancelled()) {
    if (stopping_) return shutting_down();
    auto event = queue->pop_for(kPoll);
    if (!event) {
      if (queue->overflowed()) return overflowed("event");
      continue;
    }
    if (!req->vm().empty() && event->vm != req->vm()) continue;
    if (!writer->Write(to_proto(*event))) break;
  }
  return grpc::Status::OK;
}

}  // namespace strata::agent::service
