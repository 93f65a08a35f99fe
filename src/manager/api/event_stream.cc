// An SSE stream as a subscriber of the event fan-out.
#include "strata/manager/api/event_stream.h"

#include <string>
#include <variant>

namespace strata::manager {

namespace {

// Weak: the stream's connection owns itself (it ends when the client leaves).
class SseSubscriber final : public EventSubscriber {
 public:
  explicit SseSubscriber(const std::shared_ptr<EventStream>& out) : out_(out) {}
  bool deliver(const store::EventRecord&, const std::string& frame) override {
    auto out = out_.lock();
    return out && out->write(frame);
  }
  bool alive() override {
    auto out = out_.lock();
    return out && !out->closed();
  }
  // Catch-up pages wait until the client read most of the previous one.
  bool ready() override {
    auto out = out_.lock();
    return out && out->queued_bytes() < 64 * 1024;
  }

 private:
  std::weak_ptr<EventStream> out_;
};

}  // namespace

HttpResponse event_stream_response(EventFanout& fanout, StreamLimiter& limiter,
                                   const std::string& token_id, int64_t after) {
  auto ticket = limiter.acquire(token_id, /*console=*/false);
  if (auto* refused = std::get_if<HttpResponse>(&ticket)) return std::move(*refused);
  HttpResponse resp;
  resp.content_type = "text/event-stream";
  // The ticket lives in this function, which the server keeps until the stream ends.
  resp.event_stream = [f = &fanout, after,
                       ticket = std::get<StreamLimiter::Ticket>(std::move(ticket))](
                          std::shared_ptr<EventStream> out) {
    // Wakes the fan-out when this stream's queue drains (catch-up pacing) or it closes.
    out->on_drain([f] { f->wake(); });
    if (!out->write(": stream start\n\n")) return;
    // The position it starts after, as an id without data: a client that gets no event
    // before its connection drops still resumes from here with Last-Event-ID (SSE sets the
    // last event id from such a block) instead of starting again at the newest event and
    // losing what happened in between.
    if (!out->write("id: " + std::to_string(after) + "\n\n")) return;
    f->subscribe(std::make_shared<SseSubscriber>(out), after);
  };
  return resp;
}

}  // namespace strata::manager
