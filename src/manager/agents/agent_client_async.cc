// AgentClient: the heartbeat's calls (Health, GetMetrics, GetInventory, WatchEvents) on
// gRPC's callback API, so that a host costs the connection manager outstanding calls, not
// threads (docs/internals/agents.md, "Threads").
//
// Lifetime: each call's state (context, request, response) is shared by the caller's handle
// and the completion, so cancel() stays safe after the call ended, and the context outlives
// gRPC's use of it. gRPC may complete a call inline, in the call that started it: no lock is
// held across a start here.
//
// Release order (the rule the callers build on, see agent_client.h): gRPC destroys a call's
// completion on its own thread, after the callback ran. Of what the completion holds, the
// caller's functions (`done`, `on_event`, `on_done`) go last: after the call's context and
// this file's references to the channel. So a caller whose functions keep the AgentClient
// (and release it off gRPC's threads) is sure that no reference dropped on gRPC's thread is
// the channel's last one: a grpc::Channel destroyed there shuts its callback queue down from
// inside that queue's own callback, and the process's last one shuts gRPC down there
// (grpc/grpc#37858), racing whatever the application tears down next. A lambda's captures
// are destroyed in no specified order, so the completion is one struct, members in order.
#include <fmt/format.h>
#include <grpcpp/grpcpp.h>

#include "strata/manager/agents/agent_client.h"
#include "strata/wire/call.h"

namespace strata::manager {

namespace {

template <class Req, class Resp>
class UnaryCall final : public PendingCall {
 public:
  explicit UnaryCall(std::chrono::milliseconds timeout) { wire::set_deadline(ctx, timeout); }
  void cancel() override { ctx.TryCancel(); }

  grpc::ClientContext ctx;
  Req req;
  Resp resp;
};

// What gRPC keeps of a unary call until its completion is destroyed. Members go in reverse
// order: the channel and the call's state (its context holds the channel too) before the
// caller's `done` (see "Release order" above).
template <class Req, class Resp, class Out>
struct UnaryCompletion {
  std::function<void(Result<Out>)> done;  // first: destroyed last
  std::shared_ptr<UnaryCall<Req, Resp>> call;
  std::shared_ptr<grpc::Channel> channel;  // health only: the error names its state
};

// WatchEvents: one read outstanding at a time, the next one asked for by next(). A hold
// keeps the call open between a read's end and the next(), which may come from any thread
// (outside the reactions); it goes when reading ends, so no read is started after OnDone.
// The reactor is destroyed by whoever lets go of it last: OnDone (on gRPC's thread) or the
// caller's handle; either way the caller's functions go after the context (members below
// are destroyed in reverse order; see "Release order" above).
class WatchReactor final : public EventWatch, public grpc::ClientReadReactor<pb::VmEvent> {
 public:
  WatchReactor(std::function<void(EventWatch&, pb::VmEvent)> on_event,
               std::function<void(Status)> on_done)
      : on_event_(std::move(on_event)), on_done_(std::move(on_done)) {}

  void start(pb::AgentService::Stub& stub, bool include_current,
             std::shared_ptr<WatchReactor> self) {
    req_.set_include_current(include_current);
    self_ = std::move(self);
    stub.async()->WatchEvents(&ctx_, &req_, this);
    AddHold();
    StartRead(&ev_);
    StartCall();
  }

  void cancel() override { ctx_.TryCancel(); }
  void next() override { StartRead(&ev_); }

  void OnReadDone(bool ok) override {
    if (!ok) {
      RemoveHold();
      return;
    }
    pb::VmEvent ev = std::move(ev_);
    ev_.Clear();
    on_event_(*this, std::move(ev));
  }
  void OnDone(const grpc::Status& st) override {
    on_done_(wire::call_end_status(st, kAgentPeer));
    // gRPC is done with this object: the self-reference may go (last).
    auto self = std::move(self_);
  }

 private:
  // First: destroyed last, after the context.
  std::function<void(EventWatch&, pb::VmEvent)> on_event_;
  std::function<void(Status)> on_done_;
  grpc::ClientContext ctx_;
  pb::WatchEventsRequest req_;
  pb::VmEvent ev_;
  std::shared_ptr<WatchReactor> self_;
};

}  // namespace

PendingCallPtr AgentClient::health_async(std::chrono::milliseconds timeout,
                                         const pb::HealthRequest& lease,
                                         std::function<void(Result<pb::HealthResponse>)> done) {
  auto call = std::make_shared<UnaryCall<pb::HealthRequest, pb::HealthResponse>>(timeout);
  // As health(): wait (within the deadline) for the channel to connect rather than failing
  // fast in TRANSIENT_FAILURE.
  call->ctx.set_wait_for_ready(true);
  call->req = lease;
  auto* c = call.get();
  stub_->async()->Health(
      &c->ctx, &c->req, &c->resp,
      [k = UnaryCompletion<pb::HealthRequest, pb::HealthResponse, pb::HealthResponse>{
           std::move(done), call, channel_}](grpc::Status st) {
        if (st.ok())
          k.done(std::move(k.call->resp));
        else
          k.done(tl::unexpected(wire::from_grpc_status(st, kAgentPeer, *k.channel)));
      });
  return call;
}

PendingCallPtr AgentClient::metrics_async(
    std::chrono::milliseconds timeout, std::function<void(Result<pb::GetMetricsResponse>)> done) {
  auto call = std::make_shared<UnaryCall<pb::GetMetricsRequest, pb::GetMetricsResponse>>(timeout);
  auto* c = call.get();
  stub_->async()->GetMetrics(
      &c->ctx, &c->req, &c->resp,
      [k = UnaryCompletion<pb::GetMetricsRequest, pb::GetMetricsResponse, pb::GetMetricsResponse>{
           std::move(done), call, nullptr}](grpc::Status st) {
        if (st.ok())
          k.done(std::move(k.call->resp));
        else
          k.done(tl::unexpected(error_from_grpc(st)));
      });
  return call;
}

PendingCallPtr AgentClient::inventory_async(std::function<void(Result<pb::HostInventory>)> done) {
  auto call =
      std::make_shared<UnaryCall<pb::GetInventoryRequest, pb::GetInventoryResponse>>(timeout_);
  auto* c = call.get();
  stub_->async()->GetInventory(
      &c->ctx, &c->req, &c->resp,
      [k = UnaryCompletion<pb::GetInventoryRequest, pb::GetInventoryResponse, pb::HostInventory>{
           std::move(done), call, nullptr}](grpc::Status st) {
        if (st.ok())
          k.done(std::move(*k.call->resp.mutable_inventory()));
        else
          k.done(tl::unexpected(error_from_grpc(st)));
      });
  return call;
}

EventWatchPtr AgentClient::watch_events_async(
    bool include_current, std::function<void(EventWatch&, pb::VmEvent)> on_event,
    std::function<void(Status)> on_done) {
  auto w = std::make_shared<WatchReactor>(std::move(on_event), std::move(on_done));
  w->start(*stub_, include_current, w);
  return w;
}

}  // namespace strata::manager
