// AgentClient: a VM's consoles on gRPC's callback API, so that an open console costs
// outstanding calls, not threads. The serial console is a StreamConsole read reactor plus
// one WriteConsole call per input message; the graphical one a StreamDisplay bidi reactor.
// Both read only when asked (read()), so the agent's flow control reaches back to it when
// the viewer is slow, and write one message at a time.
//
// A reactor's ops may be started from outside its reactions (the WebSocket side asks for
// the next read when its write went out), so each holds the call open with holds taken
// before StartCall: one for the reading side, dropped when reading ends, one for the
// writing side (display only), dropped once reading ended or cancel() and no write is in
// flight. No op is started after its side's hold is gone, so none races OnDone. gRPC may
// run a reaction inline in the call that started an op: no lock is held across one.
//
// Lifetime: the stream keeps itself until OnDone. What gRPC's threads would then let go of
// last (the stream with its stub and context, so the channel; the reader's callback, so the
// viewer's session) goes to the call's CallKeep instead, which hands it over to be released
// off gRPC's threads (ConnectionManager: to the host's strand, and stopping the host waits
// for it). Each WriteConsole call has its own hold, made while the stream's or the previous
// write's hold is still out, so the host is never gone when one is made.
#include <fmt/format.h>
#include <grpcpp/grpcpp.h>

#include <deque>

#include "strata/manager/agents/agent_client.h"
#include "strata/wire/call.h"

namespace strata::manager {

namespace {

constexpr size_t kConsoleChunk = 65536;  // the agent's bound on one message's data

// The reading side and the end of the call, shared by both consoles. Reactor is
// grpc::ClientReadReactor<Chunk> or grpc::ClientBidiReactor<Out, Chunk>.
template <class Reactor, class Chunk>
class ReadingStream : public ConsoleStream, public Reactor {
 public:
  void read(std::function<void(std::optional<std::string>)> fn) override {
    std::unique_lock lock(mu_);
    if (done_) {
      lock.unlock();
      fn(std::nullopt);
      return;
    }
    read_fn_ = std::move(fn);
    if (read_over_) return;  // OnDone hands it nullopt
    lock.unlock();
    this->StartRead(&in_);
  }
  void cancel() override { ctx_.TryCancel(); }
  Status status() const override {
    std::lock_guard lock(mu_);
    return status_;
  }

  void OnReadDone(bool ok) override {
    std::unique_lock lock(mu_);
    if (!ok) {
      read_over_ = true;
      lock.unlock();
      reading_ended();
      this->RemoveHold();
      return;
    }
    auto fn = std::move(read_fn_);
    read_fn_ = nullptr;
    std::string data = std::move(*in_.mutable_data());
    lock.unlock();
    if (fn) fn(std::move(data));
  }
  void OnDone(const grpc::Status& st) override {
    std::unique_lock lock(mu_);
    done_ = true;
    status_ = wire::call_end_status(st, kAgentPeer);
    auto fn = std::move(read_fn_);
    read_fn_ = nullptr;
    // gRPC is done with this object: the self-reference may go (last, below), to the hold
    // when there is one. Nothing here touches `this` once the hold has it.
    auto self = std::move(self_);
    auto hold = std::move(hold_);
    lock.unlock();
    if (fn) fn(std::nullopt);
    if (hold) {
      if (fn) hold->keep(std::make_shared<ReadFn>(std::move(fn)));
      hold->keep(std::move(self));
    }
  }

 protected:
  // Hooks for the writing side.
  virtual void reading_ended() {}
  bool over_locked() const { return done_ || read_over_; }

  using ReadFn = std::function<void(std::optional<std::string>)>;

  explicit ReadingStream(CallKeeper keeper) : keeper_(std::move(keeper)) {}

  // Keeps the object alive until OnDone; holds the reading side open; starts the call.
  void begin(std::shared_ptr<ConsoleStream> self, int write_holds) {
    self_ = std::move(self);
    hold_ = new_hold();
    this->AddMultipleHolds(1 + write_holds);
    this->StartCall();
  }
  // A hold for another call of this stream: only while one of its holds is out (the
  // stream's, until OnDone, or the calling write's).
  std::shared_ptr<CallKeep> new_hold() const { return keeper_ ? keeper_() : nullptr; }

  const CallKeeper keeper_;
  grpc::ClientContext ctx_;
  mutable std::mutex mu_;

 private:
  Chunk in_;
  ReadFn read_fn_;
  bool read_over_ = false;
  bool done_ = false;
  Status status_;
  std::shared_ptr<ConsoleStream> self_;
  std::shared_ptr<CallKeep> hold_;  // until OnDone
};

// Serial: StreamConsole out, WriteConsole in (unary calls of their own, one at a time).
class SerialConsole final
    : public ReadingStream<grpc::ClientReadReactor<pb::ConsoleChunk>, pb::ConsoleChunk>,
      public std::enable_shared_from_this<SerialConsole> {
 public:
  SerialConsole(std::shared_ptr<grpc::Channel> channel, std::string name,
                std::string request_prefix, std::chrono::milliseconds timeout, CallKeeper keeper)
      : ReadingStream(std::move(keeper)),
        stub_(pb::AgentService::NewStub(channel)),
        name_(std::move(name)),
        prefix_(std::move(request_prefix)),
        timeout_(timeout) {}

  void start(uint32_t tail_bytes) {
    req_.set_name(name_);
    req_.set_tail_bytes(tail_bytes);
    stub_->async()->StreamConsole(&ctx_, &req_, this);
    begin(shared_from_this(), 0);
  }

  void write(std::string data, std::function<void(bool)> done) override {
    std::shared_ptr<CallKeep> hold;
    {
      std::lock_guard lock(mu_);
      if (over_locked())
        data.clear();
      else
        hold = new_hold();  // before OnDone: the stream's own hold is still out
    }
    if (data.empty()) {
      done(false);
      return;
    }
    auto w = std::make_shared<Pending>();
    w->data = std::move(data);
    w->done = std::move(done);
    write_next(std::move(w), std::move(hold));
  }

 private:
  struct Pending {
    std::string data;
    size_t off = 0;
    std::function<void(bool)> done;
  };
  struct Call {
    std::shared_ptr<CallKeep> hold;  // first: goes after the context (and its channel)
    grpc::ClientContext ctx;
    pb::WriteConsoleRequest req;
    pb::WriteConsoleResponse resp;
  };

  void write_next(std::shared_ptr<Pending> w, std::shared_ptr<CallKeep> hold) {
    if (w->off >= w->data.size()) {
      w->done(true);
      return;
    }
    auto call = std::make_shared<Call>();
    call->hold = std::move(hold);
    wire::set_deadline(call->ctx, timeout_);
    {
      std::lock_guard lock(mu_);
      call->req.set_request_id(fmt::format("{}:{}", prefix_, n_++));
    }
    call->req.set_name(name_);
    call->req.set_data(w->data.substr(w->off, kConsoleChunk));
    w->off += kConsoleChunk;
    auto* c = call.get();
    stub_->async()->WriteConsole(&c->ctx, &c->req, &c->resp,
                                 [self = shared_from_this(), call, w](grpc::Status st) mutable {
                                   if (!st.ok())
                                     w->done(false);
                                   else
                                     self->write_next(w, self->new_hold());
                                   // What this thread would let go of last goes to the hold.
                                   if (call->hold) {
                                     call->hold->keep(std::move(w));
                                     call->hold->keep(std::move(self));
                                   }
                                 });
  }

  std::unique_ptr<pb::AgentService::Stub> stub_;
  std::string name_;
  std::string prefix_;
  std::chrono::milliseconds timeout_;
  pb::StreamConsoleRequest req_;
  uint64_t n_ = 0;  // under mu_
};

// Graphical: StreamDisplay, whose first message names the VM.
class DisplayConsole final
    : public ReadingStream<grpc::ClientBidiReactor<pb::DisplayChunk, pb::DisplayChunk>,
                           pb::DisplayChunk>,
      public std::enable_shared_from_this<DisplayConsole> {
 public:
  DisplayConsole(std::shared_ptr<grpc::Channel> channel, CallKeeper keeper)
      : ReadingStream(std::move(keeper)),
        stub_(pb::AgentService::NewStub(channel)) {}

  void start(const std::string& name) {
    stub_->async()->StreamDisplay(&ctx_, this);
    out_.set_name(name);
    writing_ = true;
    this->StartWrite(&out_);  // queued until StartCall
    begin(shared_from_this(), 1);
  }

  void write(std::string data, std::function<void(bool)> done) override {
    std::unique_lock lock(mu_);
    if (over_locked() || write_over_ || data.empty()) {
      lock.unlock();
      done(false);
      return;
    }
    for (size_t off = 0; off < data.size(); off += kConsoleChunk)
      pieces_.push_back(data.substr(off, kConsoleChunk));
    done_fn_ = std::move(done);
    if (writing_) return;  // the name is still on its way: OnWriteDone goes on
    writing_ = true;
    next_piece_locked();
    lock.unlock();
    this->StartWrite(&out_);
  }

  void cancel() override {
    ReadingStream::cancel();
    end_writes();
  }

  void OnWriteDone(bool ok) override {
    std::unique_lock lock(mu_);
    if (ok && !write_over_ && !pieces_.empty()) {
      next_piece_locked();
      lock.unlock();
      this->StartWrite(&out_);
      return;
    }
    writing_ = false;
    const bool all = ok && pieces_.empty();
    pieces_.clear();
    auto done = std::move(done_fn_);
    done_fn_ = nullptr;
    if (!ok) write_over_ = true;
    const bool release = write_over_ && !write_hold_gone_;
    if (release) write_hold_gone_ = true;
    lock.unlock();
    if (release) this->RemoveHold();
    if (done) done(all);
  }

 private:
  void reading_ended() override { end_writes(); }
  // No write starts after this; the writing side's hold goes once none is in flight.
  void end_writes() {
    std::unique_lock lock(mu_);
    write_over_ = true;
    const bool release = !writing_ && !write_hold_gone_;  // else OnWriteDone lets go
    if (release) write_hold_gone_ = true;
    lock.unlock();
    if (release) this->RemoveHold();
  }
  void next_piece_locked() {
    out_.Clear();
    out_.set_data(std::move(pieces_.front()));
    pieces_.pop_front();
  }

  std::unique_ptr<pb::AgentService::Stub> stub_;
  pb::DisplayChunk out_;  // the message in flight
  // Under mu_.
  std::deque<std::string> pieces_;
  std::function<void(bool)> done_fn_;
  bool writing_ = false;
  bool write_over_ = false;
  bool write_hold_gone_ = false;
};

}  // namespace

ConsoleStreamPtr AgentClient::open_console(const std::string& name, uint32_t tail_bytes,
                                           std::string request_prefix, CallKeeper keeper) {
  auto s = std::make_shared<SerialConsole>(channel_, name, std::move(request_prefix), timeout_,
                                           std::move(keeper));
  s->start(tail_bytes);
  return s;
}

ConsoleStreamPtr AgentClient::open_display(const std::string& name, CallKeeper keeper) {
  auto s = std::make_shared<DisplayConsole>(channel_, std::move(keeper));
  s->start(name);
  return s;
}

}  // namespace strata::manager
