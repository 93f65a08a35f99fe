// Long-lived HTTP responses on the server's I/O threads. An SSE stream is a socket, a
// bounded write queue, a keep-alive timer and a read that notices the client leaving; a
// WebSocket is a Beast async websocket with a message size limit, an idle timeout (pings
// at half of it), a bounded write queue and one pending receive at a time: its handler
// drives it with callbacks, no thread of its own.
#include "http_streams.h"

#include <deque>
#include <vector>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>
#include <fmt/format.h>

#include "strata/common/log.h"

namespace strata::manager::detail {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace websocket = boost::beast::websocket;
using tcp = asio::ip::tcp;

namespace {

// Stream: beast::tcp_stream or TlsStream (then the bytes below are TLS records).
template <class Stream>
class SseConn final : public EventStream,
                      public StreamConn,
                      public std::enable_shared_from_this<SseConn<Stream>> {
 public:
  SseConn(Stream stream, HttpResponse resp, const StreamConfig& cfg)
      : stream_(std::move(stream)), timer_(stream_.get_executor()), resp_(std::move(resp)),
        cfg_(cfg) {}

  void run() override {
    write(fmt::format("HTTP/1.1 {} OK\r\nContent-Type: {}\r\nCache-Control: no-cache\r\n"
                      "Connection: close\r\n\r\n",
                      resp_.status, resp_.content_type));
    read();
    arm_keepalive();
    resp_.event_stream(shared_from_this());
  }

  bool write(std::string data) override {
    std::lock_guard lock(mu_);
    if (closed_) return false;
    if (queued_ + data.size() > cfg_.write_queue_max) {
      logger("manager.http")->info("event stream dropped: the client does not read queued={}",
                                   queued_.load());
      close_locked();
      return false;
    }
    queued_ += data.size();
    queue_.push_back(std::move(data));
    wrote_ = true;
    if (!writing_) {
      writing_ = true;
      asio::post(stream_.get_executor(), [self = shared_from_this()] { self->flush(); });
    }
    return true;
  }
  bool closed() const override {
    std::lock_guard lock(mu_);
    return closed_;
  }
  size_t queued_bytes() const override { return queued_; }
  void on_drain(std::function<void()> fn) override {
    std::lock_guard lock(mu_);
    drain_ = std::move(fn);
  }
  void close() override {
    std::lock_guard lock(mu_);
    close_locked();
  }
  void shutdown() override { close(); }

 private:
  using std::enable_shared_from_this<SseConn<Stream>>::shared_from_this;
  tcp::socket& socket() { return beast::get_lowest_layer(stream_).socket(); }

  void close_locked() {
    if (closed_) return;
    closed_ = true;
    asio::post(stream_.get_executor(), [self = shared_from_this()] {
      beast::error_code ec;
      self->timer_.cancel();
      self->socket().shutdown(tcp::socket::shutdown_both, ec);
      self->socket().close(ec);
      self->notify_drain();
    });
  }
  void notify_drain() {
    std::function<void()> fn;
    {
      std::lock_guard lock(mu_);
      fn = drain_;
    }
    if (fn) fn();
  }

  void flush() {
    std::vector<asio::const_buffer> bufs;
    {
      std::lock_guard lock(mu_);
      if (closed_ || queue_.empty()) {
        writing_ = false;
        return;
      }
      sending_.assign(std::make_move_iterator(queue_.begin()),
                      std::make_move_iterator(queue_.end()));
      queue_.clear();
    }
    for (const auto& s : sending_) bufs.emplace_back(s.data(), s.size());
    asio::async_write(stream_, bufs, [self = shared_from_this()](beast::error_code ec, size_t n) {
      self->on_written(ec, n);
    });
  }
  void on_written(beast::error_code ec, size_t n) {
    bool drained = false;
    {
      std::lock_guard lock(mu_);
      queued_ -= std::min<size_t>(n, queued_);
      sending_.clear();
      if (ec) {
        close_locked();
        return;
      }
      if (queue_.empty()) {
        writing_ = false;
        drained = true;
      }
    }
    if (drained) {
      notify_drain();
      return;
    }
    flush();
  }

  // A client sends nothing after its request: EOF or an error means it left.
  void read() {
    stream_.async_read_some(asio::buffer(rbuf_),
                            [self = shared_from_this()](beast::error_code ec, size_t) {
                              if (ec) {
                                self->close();
                                return;
                              }
                              self->read();
                            });
  }

  void arm_keepalive() {
    timer_.expires_after(cfg_.sse_keepalive);
    timer_.async_wait([self = shared_from_this()](beast::error_code ec) {
      if (ec) return;
      bool idle;
      {
        std::lock_guard lock(self->mu_);
        if (self->closed_) return;
        idle = !self->wrote_;
        self->wrote_ = false;
      }
      if (idle && !self->write(": keep-alive\n\n")) return;
      self->arm_keepalive();
    });
  }

  Stream stream_;
  asio::steady_timer timer_;
  HttpResponse resp_;  // keeps the handler's state (and stream ticket) for the stream's life
  const StreamConfig& cfg_;
  mutable std::mutex mu_;
  std::deque<std::string> queue_;
  std::vector<std::string> sending_;  // strand only, while a write is in flight
  std::atomic<size_t> queued_{0};
  bool writing_ = false;
  bool closed_ = false;
  bool wrote_ = false;
  std::function<void()> drain_;
  char rbuf_[512];
};

// What a WebSocket session owes its handler when it ends: the pending receive (nullopt)
// and the `written` callbacks of messages not written (false). Run without the lock.
struct WsEnded {
  std::function<void(std::optional<std::string>)> receive;
  std::vector<std::function<void(bool)>> written;
  void fire() {
    if (receive) receive(std::nullopt);
    for (auto& w : written)
      if (w) w(false);
  }
};

// Stream: beast::tcp_stream or TlsStream. Every socket operation runs on the socket's
// strand; send/receive/close come from any thread (the handler's callbacks run on agent
// threads too) and meet the strand under mu_.
template <class Stream>
class WsConn final : public WebSocket,
                     public StreamConn,
                     public std::enable_shared_from_this<WsConn<Stream>> {
 public:
  WsConn(Stream stream, StreamRunner::Request req, HttpResponse resp, const StreamConfig& cfg,
         std::shared_ptr<StreamRunner::Handles> handles)
      : ws_(std::move(stream)), req_(std::move(req)), resp_(std::move(resp)), cfg_(cfg),
        handles_(std::move(handles)) {}

  void run() override {
    beast::get_lowest_layer(ws_).expires_never();  // the websocket timeout below rules
    websocket::stream_base::timeout t;
    t.handshake_timeout = cfg_.ws_handshake_timeout;
    t.idle_timeout = cfg_.ws_idle_timeout;
    t.keep_alive_pings = true;
    ws_.set_option(t);
    ws_.read_message_max(cfg_.ws_message_max);
    ws_.async_accept(req_, [self = shared_from_this()](beast::error_code ec) {
      if (ec) {
        self->mark_closed();
        return;
      }
      self->resp_.websocket(std::make_shared<Handle>(self, self->handles_));
    });
  }

  bool send(std::string data, bool binary, std::function<void(bool)> written) override {
    std::unique_lock lock(mu_);
    if (closed_ || close_requested_) return false;
    if (out_bytes_ + data.size() > cfg_.write_queue_max) {
      logger("manager.http")->info("websocket dropped: the client does not read queued={}",
                                   out_bytes_);
      WsEnded ended = abort_locked();
      lock.unlock();
      ended.fire();
      return false;
    }
    out_bytes_ += data.size();
    outq_.push_back(Outgoing{std::move(data), binary, std::move(written)});
    if (!writing_) {
      writing_ = true;
      asio::post(ws_.get_executor(), [self = shared_from_this()] { self->write_next(); });
    }
    return true;
  }

  void receive(std::function<void(std::optional<std::string>)> fn) override {
    std::unique_lock lock(mu_);
    if (closed_) {
      lock.unlock();
      fn(std::nullopt);
      return;
    }
    receive_ = std::move(fn);
    if (!reading_) {
      reading_ = true;
      asio::post(ws_.get_executor(), [self = shared_from_this()] { self->read(); });
    }
  }

  void close() override {
    std::lock_guard lock(mu_);
    if (close_requested_ || closed_) return;
    close_requested_ = true;
    asio::post(ws_.get_executor(), [self = shared_from_this()] { self->maybe_close(); });
  }

  void shutdown() override {
    std::unique_lock lock(mu_);
    WsEnded ended = abort_locked();
    lock.unlock();
    ended.fire();
  }

 private:
  using std::enable_shared_from_this<WsConn<Stream>>::shared_from_this;

  // The handler's reference: counted, so that the server's stop waits for handlers to let
  // go of their sessions (see StreamRunner::join).
  class Handle final : public WebSocket {
   public:
    Handle(std::shared_ptr<WsConn> conn, std::shared_ptr<StreamRunner::Handles> handles)
        : conn_(std::move(conn)), handles_(std::move(handles)) {
      std::lock_guard lock(handles_->mu);
      ++handles_->held;
    }
    ~Handle() override {
      conn_.reset();
      std::lock_guard lock(handles_->mu);
      --handles_->held;
      handles_->cv.notify_all();
    }
    Handle(const Handle&) = delete;
    Handle& operator=(const Handle&) = delete;
    bool send(std::string data, bool binary, std::function<void(bool)> written) override {
      return conn_->send(std::move(data), binary, std::move(written));
    }
    void receive(std::function<void(std::optional<std::string>)> fn) override {
      conn_->receive(std::move(fn));
    }
    void close() override { conn_->close(); }

   private:
    std::shared_ptr<WsConn> conn_;
    std::shared_ptr<StreamRunner::Handles> handles_;
  };

  struct Outgoing {
    std::string data;
    bool binary = false;
    std::function<void(bool)> written;
  };

  // The session is over: hands back what the handler is owed (fired without the lock).
  WsEnded end_locked() {
    WsEnded ended;
    if (closed_) return ended;
    closed_ = true;
    ended.receive = std::move(receive_);
    receive_ = nullptr;
    // The message being written keeps its bytes until the write completes; its callback
    // fires now (the I/O threads may be stopping, and then the write never completes).
    if (writing_) ended.written.push_back(std::move(current_written_));
    current_written_ = nullptr;
    for (auto& o : outq_) ended.written.push_back(std::move(o.written));
    outq_.clear();
    return ended;
  }
  void mark_closed() {
    std::unique_lock lock(mu_);
    WsEnded ended = end_locked();
    lock.unlock();
    ended.fire();
  }
  // Ends the session without a closing handshake (client not reading, server stopping).
  WsEnded abort_locked() {
    if (closed_) return {};
    WsEnded ended = end_locked();
    asio::post(ws_.get_executor(), [self = shared_from_this()] {
      beast::error_code ec;
      beast::get_lowest_layer(self->ws_).socket().shutdown(tcp::socket::shutdown_both, ec);
      beast::get_lowest_layer(self->ws_).close();
    });
    return ended;
  }

  // Strand only.
  void read() {
    ws_.async_read(rbuf_, [self = shared_from_this()](beast::error_code ec, size_t) {
      self->on_read(ec);
    });
  }
  void on_read(beast::error_code ec) {
    std::unique_lock lock(mu_);
    reading_ = false;
    if (ec) {
      if (ec != websocket::error::closed && ec != asio::error::operation_aborted &&
          ec != asio::error::eof)
        logger("manager.http")->debug("websocket read ended error={}", ec.message());
      WsEnded ended = end_locked();
      lock.unlock();
      ended.fire();
      return;
    }
    std::string msg = beast::buffers_to_string(rbuf_.data());
    rbuf_.consume(rbuf_.size());
    auto fn = std::move(receive_);
    receive_ = nullptr;
    lock.unlock();
    if (fn) fn(std::move(msg));
  }

  // Strand only: one message at a time from the queue.
  void write_next() {
    {
      std::lock_guard lock(mu_);
      if (closed_ || outq_.empty()) {
        writing_ = false;
        if (!closed_ && close_requested_) {
          asio::post(ws_.get_executor(), [self = shared_from_this()] { self->maybe_close(); });
        }
        return;
      }
      current_ = std::move(outq_.front().data);
      ws_.binary(outq_.front().binary);
      current_written_ = std::move(outq_.front().written);
      outq_.pop_front();
    }
    ws_.async_write(asio::buffer(current_), [self = shared_from_this()](beast::error_code ec,
                                                                        size_t) {
      std::function<void(bool)> written;
      {
        std::lock_guard lock(self->mu_);
        self->out_bytes_ -= self->current_.size();
        written = std::move(self->current_written_);
        self->current_written_ = nullptr;
        if (ec) self->writing_ = false;
      }
      if (ec) {
        self->mark_closed();
        if (written) written(false);
        return;
      }
      if (written) written(true);
      self->write_next();
    });
  }
  // Strand only: the closing handshake once the queue is written.
  void maybe_close() {
    {
      std::lock_guard lock(mu_);
      if (closed_ || writing_ || close_started_) return;
      close_started_ = true;
    }
    ws_.async_close(websocket::close_code::normal,
                    [self = shared_from_this()](beast::error_code) { self->mark_closed(); });
  }

  websocket::stream<Stream> ws_;
  StreamRunner::Request req_;
  HttpResponse resp_;  // the handler's state lives as long as the session
  const StreamConfig& cfg_;
  std::shared_ptr<StreamRunner::Handles> handles_;
  beast::flat_buffer rbuf_;  // strand only
  std::mutex mu_;
  std::function<void(std::optional<std::string>)> receive_;
  bool reading_ = false;
  std::deque<Outgoing> outq_;
  std::string current_;  // strand only: the message being written
  std::function<void(bool)> current_written_;
  size_t out_bytes_ = 0;
  bool writing_ = false;
  bool close_requested_ = false;
  bool close_started_ = false;
  bool closed_ = false;
};

}  // namespace

StreamRunner::StreamRunner(StreamConfig cfg) : cfg_(std::move(cfg)) {}

StreamRunner::~StreamRunner() {
  shutdown();
  join();
}

void StreamRunner::reap_locked() {
  conns_.remove_if([](const std::weak_ptr<StreamConn>& w) { return w.expired(); });
}

void StreamRunner::start(beast::tcp_stream stream, Request req, HttpResponse resp) {
  start_stream(std::move(stream), std::move(req), std::move(resp));
}

void StreamRunner::start(TlsStream stream, Request req, HttpResponse resp) {
  start_stream(std::move(stream), std::move(req), std::move(resp));
}

template <class Stream>
void StreamRunner::start_stream(Stream stream, Request req, HttpResponse resp) {
  std::shared_ptr<StreamConn> conn;
  {
    std::lock_guard lock(mu_);
    reap_locked();
    if (stopped_) return;
    if (resp.websocket) {
      auto ws = std::make_shared<WsConn<Stream>>(std::move(stream), std::move(req),
                                                 std::move(resp), cfg_, handles_);
      conns_.push_back(ws);
      conn = ws;
    } else {
      auto sse = std::make_shared<SseConn<Stream>>(std::move(stream), std::move(resp), cfg_);
      conns_.push_back(sse);
      conn = sse;
    }
  }
  conn->run();
}

void StreamRunner::shutdown() {
  std::list<std::shared_ptr<StreamConn>> live;
  {
    std::lock_guard lock(mu_);
    stopped_ = true;
    for (auto& w : conns_)
      if (auto c = w.lock()) live.push_back(std::move(c));
  }
  for (auto& c : live) c->shutdown();
}

void StreamRunner::join() {
  // After shutdown() every session has ended; a handler lets go once its own work is over
  // (a console: its agent call cancelled and finished), which takes moments.
  constexpr auto kBound = std::chrono::seconds(30);
  std::unique_lock lock(handles_->mu);
  if (!handles_->cv.wait_for(lock, kBound, [&] { return handles_->held == 0; }))
    logger("manager.http")->error("websocket handlers still hold sessions after {}s held={}",
                                  kBound.count(), handles_->held);
}

}  // namespace strata::manager::detail
