// Boost.Beast HTTP server: async header/body reads on a small thread pool, handlers run
// synchronously on that pool (or finish later, off it: HttpResponse::deferred), SSE
// and WebSocket responses go to the stream runner (http_streams.cc).
// Upload routes stream their body into a temp file (file_body) instead of memory. The
// limits (connection caps, deadlines, header size, accept backoff) are explained in
// http_server.h and docs/api.md.
#include "strata/manager/api/http_server.h"

#include <stdlib.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <mutex>
#include <set>
#include <thread>
#include <type_traits>
#include <vector>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket.hpp>
#include <fmt/format.h>

#include "strata/common/log.h"
#include "strata/manager/api/connection_limits.h"
#include "http_streams.h"

namespace strata::manager {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
namespace websocket = boost::beast::websocket;
using tcp = asio::ip::tcp;
using detail::TlsStream;

namespace {

using BeastRequest = bhttp::request<bhttp::string_body>;

template <class Fields>
void copy_headers(const Fields& fields, HttpRequest& req) {
  for (const auto& f : fields) {
    std::string name(f.name_string());
    for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    req.headers[name] = std::string(f.value());
  }
}

// Whether the client connects from this machine: a loopback address, or the address the
// connection reached (the server's own).
bool peer_is_local(const tcp::socket& s) {
  beast::error_code ec;
  auto remote = s.remote_endpoint(ec);
  if (ec) return false;
  auto local = s.local_endpoint(ec);
  if (ec) return false;
  auto unmapped = [](asio::ip::address a) -> asio::ip::address {
    if (a.is_v6() && a.to_v6().is_v4_mapped())
      return asio::ip::make_address_v4(asio::ip::v4_mapped, a.to_v6());
    return a;
  };
  auto r = unmapped(remote.address());
  return r.is_loopback() || r == unmapped(local.address());
}

class BeastServer;

// One client connection: reads requests one after the other (keep-alive), each through
// the phases header -> admit -> body -> dispatch -> write, each with its deadline. Holds its
// place under the connection caps (ticket) until it ends or hands its stream to a stream
// runner. Stream is beast::tcp_stream (plain HTTP) or TlsStream: one code path for both;
// TLS only adds the server handshake first, within the first request's header deadline.
template <class Stream>
class Session : public std::enable_shared_from_this<Session<Stream>> {
 public:
  static constexpr bool kTls = std::is_same_v<Stream, TlsStream>;

  Session(Stream stream, BeastServer& server, std::string address,
          ConnectionLimits::TicketPtr ticket)
      : stream_(std::move(stream)), server_(server), address_(std::move(address)),
        ticket_(std::move(ticket)) {}
  ~Session() { drop_upload(); }
  void run() {
    handshake([](Session& s) { s.read_header(/*arm_deadline=*/false); });
  }
  // Over a connection cap: 503 and close.
  void reject_busy();

 private:
  using std::enable_shared_from_this<Session<Stream>>::shared_from_this;
  // TLS: the server handshake, then `next`; the header deadline starts here and covers
  // the handshake and the first request's header. Plain: `next` at once, same deadline.
  template <class Next>
  void handshake(Next next);
  void wait_for_request();
  void read_header(bool arm_deadline = true);
  void on_header(beast::error_code ec);
  void on_header_error(beast::error_code ec);
  void start_body(size_t limit, bool expect_continue);
  template <class Parser>
  void read_body(Parser& parser, bool bounded, void (Session::*done)(beast::error_code));
  template <class Parser>
  void read_body_some(Parser& parser, void (Session::*done)(beast::error_code));
  void on_body(beast::error_code ec);
  void start_file_body(size_t limit);
  void on_file_body(beast::error_code ec);
  void drop_upload() {
    if (upload_path_.empty()) return;
    ::unlink(upload_path_.c_str());
    upload_path_.clear();
  }
  void respond(HttpResponse resp, bool close_after);
  // The handler finishes later (HttpResponse::deferred): park the session with the server
  // and respond when the work completes.
  void defer(HttpResponse resp, bool close_after);
  void write(bool close_after);
  void drain();
  beast::tcp_stream& lowest() { return beast::get_lowest_layer(stream_); }
  const HttpServerConfig& config() const;

  Stream stream_;
  beast::flat_buffer buffer_;
  std::optional<bhttp::request_parser<bhttp::string_body>> parser_;
  std::optional<bhttp::request_parser<bhttp::file_body>> file_parser_;
  std::string upload_path_;  // temp file of a streamed body; removed when done
  bhttp::response<bhttp::string_body> response_;
  BeastServer& server_;
  std::string address_;  // the client's IP address
  ConnectionLimits::TicketPtr ticket_;
  HttpRequest head_;       // the admitted request (header, principal) awaiting its body
  // Body rate: each window must bring body_min_rate * window bytes or the body's end.
  std::chrono::steady_clock::time_point window_end_, body_deadline_;
  uint64_t window_bytes_ = 0;
  std::vector<char> discard_;
  size_t drained_ = 0;
  std::chrono::milliseconds drain_time_{5000};
};

class BeastServer final : public HttpServer {
 public:
  BeastServer(HttpServerConfig cfg, BodyLimit limit, Dispatch dispatch, UploadRoutes uploads)
      : cfg_(std::move(cfg)), limit_(std::move(limit)), dispatch_(std::move(dispatch)),
        uploads_(std::move(uploads)),
        limits_(cfg_.max_connections, cfg_.max_connections_per_address), acceptor_(ioc_),
        accept_timer_(ioc_), streams_(cfg_.streams) {}
  ~BeastServer() override { stop(); }

  Status listen() {
    if (auto st = load_tls(); !st) return st;
    beast::error_code ec;
    auto addr = asio::ip::make_address(cfg_.host, ec);
    if (ec) return invalid_argument("listen", fmt::format("bad listen address '{}'", cfg_.host));
    tcp::endpoint ep(addr, cfg_.port);
    acceptor_.open(ep.protocol(), ec);
    if (!ec) acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) acceptor_.bind(ep, ec);
    if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
    if (ec)
      return unavailable(fmt::format("cannot listen on {}:{}: {}", cfg_.host, cfg_.port,
                                     ec.message()));
    port_ = acceptor_.local_endpoint().port();
    accept();
    for (int i = 0; i < std::max(1, cfg_.threads); ++i) pool_.emplace_back([this] { ioc_.run(); });
    return {};
  }

  uint16_t port() const override { return port_; }

  void stop() override {
    if (stopped_.exchange(true)) return;
    {
      std::lock_guard lock(gate_->mu);
      gate_->open = false;
    }
    asio::post(ioc_, [this] {
      beast::error_code ec;
      acceptor_.close(ec);
      accept_timer_.cancel();
    });
    streams_.shutdown();
    ioc_.stop();
    for (auto& t : pool_)
      if (t.joinable()) t.join();
    streams_.join();
    std::lock_guard lock(parked_mu_);
    parked_.clear();  // sockets close while the io_context still exists
  }

  size_t body_limit(std::string_view method, std::string_view path) { return limit_(method, path); }
  bool streams_body(std::string_view method, std::string_view path) const {
    return uploads_.streams_body && uploads_.streams_body(method, path);
  }
  std::optional<HttpResponse> admit(HttpRequest& head) {
    return uploads_.admit ? uploads_.admit(head) : std::nullopt;
  }
  const std::string& upload_dir() const { return uploads_.dir; }
  const HttpServerConfig& config() const { return cfg_; }
  HttpResponse dispatch(HttpRequest& r) { return dispatch_(r); }
  bool stopping() const { return stopped_; }

  // Deferred responses: the session is owned here while a worker runs (never by the
  // worker, so no socket outlives the io_context); a completion runs on the session's
  // executor only while the gate is open (closed by stop() before the pool stops).
  struct DeferGate {
    std::mutex mu;
    bool open = true;
  };
  std::shared_ptr<DeferGate> defer_gate() const { return gate_; }
  void park(const std::shared_ptr<void>& s) {
    std::lock_guard lock(parked_mu_);
    parked_.insert(s);
  }
  std::shared_ptr<void> unpark(const void* s) {
    std::lock_guard lock(parked_mu_);
    for (auto it = parked_.begin(); it != parked_.end(); ++it)
      if (it->get() == s) {
        auto owned = *it;
        parked_.erase(it);
        return owned;
      }
    return nullptr;
  }

  // Hands a long-lived response (SSE, WebSocket) and its stream to the stream runner.
  template <class Stream>
  void detach(Stream stream, BeastRequest req, HttpResponse resp) {
    streams_.start(std::move(stream), std::move(req), std::move(resp));
  }

  // The TLS context from the configured certificate and key (none: plain HTTP).
  Status load_tls() {
    if (!cfg_.tls) return {};
    auto ctx = std::make_unique<asio::ssl::context>(asio::ssl::context::tls_server);
    ctx->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                     asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 |
                     asio::ssl::context::no_tlsv1_1 | asio::ssl::context::single_dh_use);
    beast::error_code ec;
    ctx->use_certificate_chain(asio::buffer(cfg_.tls->cert_chain_pem), ec);
    if (ec)
      return invalid_argument("tls-cert", "not a PEM certificate chain: " + ec.message());
    ctx->use_private_key(asio::buffer(cfg_.tls->key_pem), asio::ssl::context::pem, ec);
    if (ec) return invalid_argument("tls-key", "not a PEM private key: " + ec.message());
    if (SSL_CTX_check_private_key(ctx->native_handle()) != 1)
      return invalid_argument("tls-key", "the private key does not match the certificate");
    tls_ = std::move(ctx);
    return {};
  }

 private:
  void accept() {
    acceptor_.async_accept(asio::make_strand(ioc_), [this](beast::error_code ec, tcp::socket s) {
      if (ec) {
        if (!acceptor_.is_open() || stopped_) return;
        if (is_resource_error(ec)) {
          back_off(ec);
          return;
        }
        // Per-connection errors (the client reset before we accepted): next one.
      } else {
        accept_delay_ = std::chrono::milliseconds(0);
        on_connection(std::move(s));
      }
      accept();
    });
  }

  // Out of file descriptors or memory: the pending connection stays in the backlog and the
  // acceptor stays readable, so accepting again at once would spin. Wait 50 ms, doubling to
  // 1 s while it lasts; log the first error and then at most one line per 10 s.
  static bool is_resource_error(const beast::error_code& ec) {
    return ec == asio::error::no_descriptors || ec.value() == ENFILE ||
           ec == asio::error::no_buffer_space || ec == asio::error::no_memory;
  }
  void back_off(const beast::error_code& ec) {
    using std::chrono::milliseconds;
    accept_delay_ = accept_delay_.count() == 0 ? milliseconds(50)
                                               : std::min(accept_delay_ * 2, milliseconds(1000));
    ++accept_errors_;
    auto now = std::chrono::steady_clock::now();
    if (now >= next_accept_log_) {
      logger("manager.http")->warn(
          "accept failed error=\"{}\" count={} backoff_ms={} open_connections={}", ec.message(),
          accept_errors_, accept_delay_.count(), limits_.open());
      accept_errors_ = 0;
      next_accept_log_ = now + std::chrono::seconds(10);
    }
    accept_timer_.expires_after(accept_delay_);
    accept_timer_.async_wait([this](beast::error_code wait_ec) {
      if (wait_ec || stopped_ || !acceptor_.is_open()) return;
      accept();
    });
  }

  static std::string client_address(const tcp::socket& s) {
    beast::error_code ec;
    auto ep = s.remote_endpoint(ec);
    if (ec) return "";
    auto a = ep.address();
    if (a.is_v6() && a.to_v6().is_v4_mapped())
      return asio::ip::make_address_v4(asio::ip::v4_mapped, a.to_v6()).to_string();
    return a.to_string();
  }

  void on_connection(tcp::socket s) {
    std::string address = client_address(s);
    auto ticket = limits_.acquire(address);
    if (tls_)
      start_session(TlsStream(std::move(s), *tls_), std::move(address), std::move(ticket));
    else
      start_session(beast::tcp_stream(std::move(s)), std::move(address), std::move(ticket));
  }
  template <class Stream>
  void start_session(Stream stream, std::string address, ConnectionLimits::TicketPtr ticket) {
    bool busy = !ticket;
    auto session = std::make_shared<Session<Stream>>(std::move(stream), *this, std::move(address),
                                                     std::move(ticket));
    if (busy) {
      session->reject_busy();
      return;
    }
    session->run();
  }

  HttpServerConfig cfg_;
  BodyLimit limit_;
  Dispatch dispatch_;
  UploadRoutes uploads_;
  ConnectionLimits limits_;  // before ioc_: sessions destroyed with ioc_ release tickets here
  std::unique_ptr<asio::ssl::context> tls_;  // outlives the sessions' streams (before ioc_)
  asio::io_context ioc_;
  tcp::acceptor acceptor_;
  asio::steady_timer accept_timer_;
  // Accept backoff state: only touched by the one pending accept's handler.
  std::chrono::milliseconds accept_delay_{0};
  uint64_t accept_errors_ = 0;
  std::chrono::steady_clock::time_point next_accept_log_{};
  std::vector<std::thread> pool_;
  std::atomic<bool> stopped_{false};
  uint16_t port_ = 0;
  detail::StreamRunner streams_;
  std::shared_ptr<DeferGate> gate_ = std::make_shared<DeferGate>();
  std::mutex parked_mu_;
  std::set<std::shared_ptr<void>> parked_;
};

template <class Stream>
const HttpServerConfig& Session<Stream>::config() const {
  return server_.config();
}

template <class Stream>
template <class Next>
void Session<Stream>::handshake(Next next) {
  lowest().expires_after(config().header_timeout);
  if constexpr (kTls) {
    stream_.async_handshake(asio::ssl::stream_base::server,
                            [self = shared_from_this(), next](beast::error_code ec) mutable {
                              if (ec) {
                                logger("manager.http")
                                    ->debug("TLS handshake failed address={} error={}",
                                            self->address_, ec.message());
                                return;
                              }
                              next(*self);
                            });
  } else {
    next(*this);
  }
}

// A keep-alive connection waits up to idle_timeout for the first byte of its next request
// (unless it is already buffered), then the header gets header_timeout.
template <class Stream>
void Session<Stream>::wait_for_request() {
  if (buffer_.size() > 0) {
    read_header();
    return;
  }
  lowest().expires_after(config().idle_timeout);
  stream_.async_read_some(buffer_.prepare(4096),
                          [self = shared_from_this()](beast::error_code ec, size_t n) {
                            if (ec) return;  // idle timeout or the client closed
                            self->buffer_.commit(n);
                            self->read_header();
                          });
}

template <class Stream>
void Session<Stream>::read_header(bool arm_deadline) {
  parser_.emplace();
  parser_->header_limit(static_cast<std::uint32_t>(config().header_limit));
  parser_->body_limit(std::numeric_limits<std::uint64_t>::max());  // real limit set per route
  if (arm_deadline) lowest().expires_after(config().header_timeout);
  bhttp::async_read_header(stream_, buffer_, *parser_,
                           [self = shared_from_this()](beast::error_code ec, size_t) {
                             self->on_header(ec);
                           });
}

// Too large a header is answered 431, a malformed one 400; a timeout or a client that
// went away just ends the connection.
template <class Stream>
void Session<Stream>::on_header_error(beast::error_code ec) {
  if (ec == bhttp::error::header_limit) {
    HttpResponse resp = error_response(Error{
        ErrorCode::payload_too_large,
        fmt::format("request header fields exceed {} bytes", config().header_limit), ""});
    resp.status = 431;
    respond(std::move(resp), /*close_after=*/true);
    return;
  }
  if (ec.category() == bhttp::make_error_code(bhttp::error::bad_method).category() &&
      ec != bhttp::error::end_of_stream && ec != bhttp::error::partial_message) {
    respond(error_response(Error{ErrorCode::invalid_argument,
                                 fmt::format("malformed HTTP request: {}", ec.message()), ""}),
            /*close_after=*/true);
    return;
  }
  logger("manager.http")->debug("header read failed address={} error={}", address_, ec.message());
}

template <class Stream>
void Session<Stream>::on_header(beast::error_code ec) {
  if (ec) {
    on_header_error(ec);
    return;
  }
  const auto& h = parser_->get();
  HttpRequest head;
  head.method = std::string(h.method_string());
  if (!parse_target(std::string_view(h.target().data(), h.target().size()), &head.path,
                    &head.query)) {
    respond(error_response(Error{ErrorCode::invalid_argument, "malformed request target", ""}),
            true);
    return;
  }
  copy_headers(h, head);
  head.remote_address = address_;
  head.peer_is_local = peer_is_local(lowest().socket());
  // Authentication, role and rate limits on the header alone: a refused request's body is
  // never read (the connection closes after the answer unless there was no body).
  if (auto deny = server_.admit(head)) {
    respond(std::move(*deny), !parser_->is_done() || !h.keep_alive());
    return;
  }
  size_t limit = server_.body_limit(head.method, head.path);
  auto len = parser_->content_length();
  if (len && *len > limit) {
    respond(error_response(Error{ErrorCode::payload_too_large,
                                 fmt::format("request body of {} bytes exceeds the limit of {} "
                                             "bytes", *len, limit), ""}),
            /*close_after=*/true);
    return;
  }
  bool expect_continue = beast::iequals(head.header("expect"), "100-continue");
  bool streamed = server_.streams_body(head.method, head.path);
  head_ = std::move(head);
  if (streamed) {
    start_file_body(limit);
    return;
  }
  start_body(limit, expect_continue);
}

template <class Stream>
void Session<Stream>::start_body(size_t limit, bool expect_continue) {
  parser_->body_limit(limit);
  if (parser_->is_done()) {
    on_body({});
    return;
  }
  if (expect_continue) {
    static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
    beast::error_code ec;
    asio::write(stream_, asio::buffer(kContinue.data(), kContinue.size()), ec);
    if (ec) return;
  }
  read_body(*parser_, /*bounded=*/true, &Session::on_body);
}

// Reads the body in chunks. The timer runs to the earlier of the rate window's end and the
// body's overall deadline (bounded bodies only); a window that brought its share
// (body_min_rate * window) starts the next one. A slower client times out: the stream
// closes the socket.
template <class Stream>
template <class Parser>
void Session<Stream>::read_body(Parser& parser, bool bounded,
                                void (Session::*done)(beast::error_code)) {
  auto now = std::chrono::steady_clock::now();
  body_deadline_ = bounded ? now + config().body_timeout
                           : std::chrono::steady_clock::time_point::max();
  window_end_ = now + config().body_rate_window;
  window_bytes_ = 0;
  read_body_some(parser, done);
}

template <class Stream>
template <class Parser>
void Session<Stream>::read_body_some(Parser& parser, void (Session::*done)(beast::error_code)) {
  lowest().expires_at(std::min(window_end_, body_deadline_));
  bhttp::async_read_some(
      stream_, buffer_, parser,
      [self = shared_from_this(), &parser, done](beast::error_code ec, size_t n) {
        if (ec == beast::error::timeout)
          logger("manager.http")->debug("body too slow address={}", self->address_);
        if (ec || parser.is_done()) {
          ((*self).*done)(ec);
          return;
        }
        const auto& cfg = self->config();
        self->window_bytes_ += n;
        auto window_s = std::chrono::duration<double>(cfg.body_rate_window).count();
        if (static_cast<double>(self->window_bytes_) >= static_cast<double>(cfg.body_min_rate) *
                                                            window_s) {
          self->window_end_ = std::chrono::steady_clock::now() + cfg.body_rate_window;
          self->window_bytes_ = 0;
        }
        self->read_body_some(parser, done);
      });
}

template <class Stream>
void Session<Stream>::on_body(beast::error_code ec) {
  if (ec == bhttp::error::body_limit) {
    respond(error_response(Error{ErrorCode::payload_too_large, "request body too large", ""}), true);
    return;
  }
  if (ec) {
    logger("manager.http")->debug("read failed address={} error={}", address_, ec.message());
    return;
  }
  BeastRequest breq = parser_->release();
  HttpRequest req = std::move(head_);
  req.body = std::move(breq.body());
  bool keep_alive = breq.keep_alive();
  HttpResponse resp = server_.dispatch(req);
  if (resp.deferred) {
    defer(std::move(resp), !keep_alive);
    return;
  }
  if (resp.websocket || resp.event_stream) {
    bool is_ws = static_cast<bool>(resp.websocket);
    if (is_ws && !websocket::is_upgrade(breq)) {
      respond(error_response(Error{ErrorCode::invalid_argument,
                                   "this route needs a WebSocket upgrade request", ""}),
              true);
      return;
    }
    lowest().expires_never();
    // Streams have their own caps: the connection's place is freed with this session.
    server_.detach(std::move(stream_), std::move(breq), std::move(resp));
    return;
  }
  respond(std::move(resp), !keep_alive);
}

// The body of an upload route goes to a temp file (the caller was admitted on the header):
// answer "100 Continue" when asked, then let Beast write the body into the file at no less
// than the minimum rate, with no overall deadline (large images on slow links).
template <class Stream>
void Session<Stream>::start_file_body(size_t limit) {
  std::string tmpl = server_.upload_dir() + "/strata-upload-XXXXXX";
  int fd = ::mkstemp(tmpl.data());
  if (fd < 0) {
    respond(error_response(Error{ErrorCode::internal, "cannot create an upload file", ""}), true);
    return;
  }
  ::close(fd);
  upload_path_ = tmpl;
  file_parser_.emplace(std::move(*parser_));
  parser_.reset();
  beast::error_code ec;
  file_parser_->get().body().open(upload_path_.c_str(), beast::file_mode::write, ec);
  if (ec) {
    drop_upload();
    respond(error_response(Error{ErrorCode::internal, "cannot open the upload file", ""}), true);
    return;
  }
  file_parser_->body_limit(limit);
  if (beast::iequals(head_.header("expect"), "100-continue")) {
    static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
    asio::write(stream_, asio::buffer(kContinue.data(), kContinue.size()), ec);
    if (ec) return;
  }
  if (file_parser_->is_done()) {
    on_file_body({});
    return;
  }
  read_body(*file_parser_, /*bounded=*/false, &Session::on_file_body);
}

template <class Stream>
void Session<Stream>::on_file_body(beast::error_code ec) {
  if (ec == bhttp::error::body_limit) {
    drop_upload();
    respond(error_response(Error{ErrorCode::payload_too_large, "request body too large", ""}), true);
    return;
  }
  if (ec == beast::errc::no_space_on_device ||
      (ec.category() == boost::system::system_category() && ec.value() == EDQUOT)) {
    // The data folder filled up mid-way: answer (and log) instead of dropping the client.
    auto len = file_parser_->content_length();
    file_parser_.reset();  // closes the file, so unlinking it frees the space
    drop_upload();
    logger("manager.http")
        ->warn("upload refused: data folder full dir={} bytes={} free={}", server_.upload_dir(),
               len ? std::to_string(*len) : "unknown",
               free_bytes(server_.upload_dir()).value_or(0));
    respond(insufficient_storage(server_.upload_dir(),
                                 len ? std::optional<uint64_t>(*len) : std::nullopt),
            true);
    return;
  }
  if (ec) {
    logger("manager.http")->debug("upload read failed address={} error={}", address_,
                                  ec.message());
    drop_upload();
    return;
  }
  auto breq = file_parser_->release();
  file_parser_.reset();
  breq.body().close();
  HttpRequest req = std::move(head_);
  req.body_file = upload_path_;
  bool keep_alive = breq.keep_alive();
  HttpResponse resp = server_.dispatch(req);
  if (resp.deferred) {
    defer(std::move(resp), !keep_alive);  // the upload file stays until the handler is done
    return;
  }
  drop_upload();
  respond(std::move(resp), !keep_alive);
}

template <class Stream>
void Session<Stream>::reject_busy() {
  HttpResponse resp = error_response(Error{
      ErrorCode::unavailable,
      fmt::format("too many connections (at most {} in all and {} per client address); "
                  "retry later",
                  config().max_connections, config().max_connections_per_address),
      ""});
  resp.headers.emplace_back("Retry-After", "1");
  drain_time_ = std::chrono::seconds(1);
  handshake([resp = std::move(resp)](Session& s) mutable {
    s.respond(std::move(resp), /*close_after=*/true);
  });
}

template <class Stream>
void Session<Stream>::defer(HttpResponse resp, bool close_after) {
  auto self = shared_from_this();
  server_.park(self);
  std::weak_ptr<Session> weak = self;
  auto gate = server_.defer_gate();
  // The completion holds nothing of the server but the gate: it may run (or be dropped)
  // after the server is gone.
  resp.deferred([weak, gate, close_after](HttpResponse done) {
    std::lock_guard lock(gate->mu);
    if (!gate->open) return;  // stopping: the session is dropped with the server
    auto s = weak.lock();     // parked, so alive while the gate is open
    if (!s) return;
    asio::post(s->stream_.get_executor(), [s, close_after, done = std::move(done)]() mutable {
      auto owned = s->server_.unpark(static_cast<const void*>(s.get()));
      s->drop_upload();
      s->respond(std::move(done), close_after);
    });
  });
}

template <class Stream>
void Session<Stream>::respond(HttpResponse resp, bool close_after) {
  response_ = {};
  response_.version(11);
  response_.result(resp.status);
  response_.set(bhttp::field::server, "stratad");
  response_.set(bhttp::field::content_type, resp.content_type);
  for (const auto& [k, v] : resp.headers) response_.set(k, v);
  response_.body() = std::move(resp.body);
  response_.keep_alive(!close_after);
  response_.prepare_payload();
  write(close_after);
}

template <class Stream>
void Session<Stream>::write(bool close_after) {
  lowest().expires_after(config().write_timeout);
  bhttp::async_write(stream_, response_,
                     [self = shared_from_this(), close_after](beast::error_code ec, size_t) {
                       if (ec || self->server_.stopping()) return;
                       if (close_after) {
                         self->drain();
                         return;
                       }
                       self->wait_for_request();
                     });
}

// After an early error response (413, 401 on the header) the client may still be sending
// its body: close our side for writing and discard what arrives for a while, so the
// client reads the response instead of a connection reset.
template <class Stream>
void Session<Stream>::drain() {
  beast::error_code ec;
  lowest().socket().shutdown(tcp::socket::shutdown_send, ec);
  if (drained_ == 0) lowest().expires_after(drain_time_);
  if (drained_ > (64u << 20)) return;  // enough: let the socket close
  discard_.resize(64 * 1024);
  lowest().async_read_some(asio::buffer(discard_),
                           [self = shared_from_this()](beast::error_code ec2, size_t n) {
                             if (ec2) return;
                             self->drained_ += n;
                             self->drain();
                           });
}

}  // namespace

Result<HttpServerPtr> start_http_server(const HttpServerConfig& config,
                                        HttpServer::BodyLimit body_limit,
                                        HttpServer::Dispatch dispatch) {
  return start_http_server(config, std::move(body_limit), std::move(dispatch), UploadRoutes{});
}

Result<HttpServerPtr> start_http_server(const HttpServerConfig& config,
                                        HttpServer::BodyLimit body_limit,
                                        HttpServer::Dispatch dispatch, UploadRoutes uploads) {
  auto server = std::make_unique<BeastServer>(config, std::move(body_limit), std::move(dispatch),
                                              std::move(uploads));
  if (auto st = server->listen(); !st) return tl::unexpected(st.error());
  return HttpServerPtr(std::move(server));
}

}  // namespace strata::manager
