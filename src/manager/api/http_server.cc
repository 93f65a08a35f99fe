// Boost.Beast HTTP server: async header/body reads on a small thread pool, handlers run
// synchronously on that pool, SSE and WebSocket responses go to the stream runner
// (http_streams.cc).
// Upload routes stream their body into a temp file (file_body) instead of memory.
#include "strata/manager/api/http_server.h"

#include <stdlib.h>
#include <unistd.h>

#include <atomic>
#include <thread>
#include <vector>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <fmt/format.h>

#include "strata/common/log.h"
#include "http_streams.h"

namespace strata::manager {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
namespace websocket = boost::beast::websocket;
using tcp = asio::ip::tcp;

namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool url_decode(std::string_view in, bool plus_is_space, std::string* out) {
  out->clear();
  for (size_t i = 0; i < in.size(); ++i) {
    char c = in[i];
    if (c == '%') {
      if (i + 2 >= in.size()) return false;
      int hi = hex_value(in[i + 1]), lo = hex_value(in[i + 2]);
      if (hi < 0 || lo < 0) return false;
      out->push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    } else if (c == '+' && plus_is_space) {
      out->push_back(' ');
    } else {
      out->push_back(c);
    }
  }
  return true;
}

}  // namespace

bool parse_target(std::string_view target, std::string* path,
                  std::map<std::string, std::string>* query) {
  size_t q = target.find('?');
  if (!url_decode(target.substr(0, q), false, path)) return false;
  query->clear();
  if (q == std::string_view::npos) return true;
  std::string_view rest = target.substr(q + 1);
  while (!rest.empty()) {
    size_t amp = rest.find('&');
    std::string_view pair = rest.substr(0, amp);
    size_t eq = pair.find('=');
    std::string k, v;
    if (!url_decode(pair.substr(0, eq), true, &k)) return false;
    if (eq != std::string_view::npos && !url_decode(pair.substr(eq + 1), true, &v)) return false;
    if (!k.empty()) (*query)[k] = v;
    if (amp == std::string_view::npos) break;
    rest = rest.substr(amp + 1);
  }
  return true;
}

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

class BeastServer;

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, BeastServer& server)
      : stream_(std::move(socket)), server_(server) {}
  ~Session() { drop_upload(); }
  void run() { read_header(); }

 private:
  void read_header();
  void on_header(beast::error_code ec);
  void on_body(beast::error_code ec);
  void start_file_body(size_t limit, std::string path, std::map<std::string, std::string> query);
  void on_file_body(beast::error_code ec);
  void drop_upload() {
    if (upload_path_.empty()) return;
    ::unlink(upload_path_.c_str());
    upload_path_.clear();
  }
  void respond(HttpResponse resp, bool close_after);
  void write(bool close_after);
  void drain();

  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::optional<bhttp::request_parser<bhttp::string_body>> parser_;
  std::optional<bhttp::request_parser<bhttp::file_body>> file_parser_;
  std::string upload_path_;  // temp file of a streamed body; removed when done
  bhttp::response<bhttp::string_body> response_;
  BeastServer& server_;
  std::vector<char> discard_;
  size_t drained_ = 0;
};

class BeastServer final : public HttpServer {
 public:
  BeastServer(HttpServerConfig cfg, BodyLimit limit, Dispatch dispatch, UploadRoutes uploads)
      : cfg_(std::move(cfg)), limit_(std::move(limit)), dispatch_(std::move(dispatch)),
        uploads_(std::move(uploads)), acceptor_(ioc_), streams_(cfg_.streams) {}
  ~BeastServer() override { stop(); }

  Status listen() {
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
    asio::post(ioc_, [this] {
      beast::error_code ec;
      acceptor_.close(ec);
    });
    streams_.shutdown();
    ioc_.stop();
    for (auto& t : pool_)
      if (t.joinable()) t.join();
    streams_.join();
  }

  size_t body_limit(std::string_view method, std::string_view path) { return limit_(method, path); }
  bool streams_body(std::string_view method, std::string_view path) const {
    return uploads_.streams_body && uploads_.streams_body(method, path);
  }
  std::optional<HttpResponse> admit(HttpRequest& head) {
    return uploads_.admit ? uploads_.admit(head) : std::nullopt;
  }
  const std::string& upload_dir() const { return uploads_.dir; }
  HttpResponse dispatch(HttpRequest& r) { return dispatch_(r); }
  bool stopping() const { return stopped_; }

  // Hands a long-lived response (SSE, WebSocket) and its socket to the stream runner.
  void detach(tcp::socket socket, BeastRequest req, HttpResponse resp) {
    streams_.start(std::move(socket), std::move(req), std::move(resp));
  }

 private:
  void accept() {
    acceptor_.async_accept(asio::make_strand(ioc_), [this](beast::error_code ec, tcp::socket s) {
      if (ec) {
        if (!acceptor_.is_open()) return;
      } else {
        std::make_shared<Session>(std::move(s), *this)->run();
      }
      accept();
    });
  }

  HttpServerConfig cfg_;
  BodyLimit limit_;
  Dispatch dispatch_;
  UploadRoutes uploads_;
  asio::io_context ioc_;
  tcp::acceptor acceptor_;
  std::vector<std::thread> pool_;
  std::atomic<bool> stopped_{false};
  uint16_t port_ = 0;
  detail::StreamRunner streams_;
};

void Session::read_header() {
  parser_.emplace();
  parser_->header_limit(16 * 1024);
  parser_->body_limit(std::numeric_limits<std::uint64_t>::max());  // real limit set per route
  stream_.expires_after(std::chrono::seconds(60));
  bhttp::async_read_header(stream_, buffer_, *parser_,
                           [self = shared_from_this()](beast::error_code ec, size_t) {
                             self->on_header(ec);
                           });
}

void Session::on_header(beast::error_code ec) {
  if (ec) {
    logger("manager.http")->debug("header read failed error={}", ec.message());
    return;
  }
  const auto& req = parser_->get();
  std::string path;
  std::map<std::string, std::string> query;
  parse_target(std::string_view(req.target().data(), req.target().size()), &path, &query);
  size_t limit = server_.body_limit(std::string_view(req.method_string().data(),
                                                     req.method_string().size()),
                                    path);
  auto len = parser_->content_length();
  if (len && *len > limit) {
    respond(error_response(Error{ErrorCode::payload_too_large,
                                 fmt::format("request body of {} bytes exceeds the limit of {} "
                                             "bytes", *len, limit), ""}),
            /*close_after=*/true);
    return;
  }
  std::string method(req.method_string());
  if (server_.streams_body(method, path)) {
    start_file_body(limit, std::move(path), std::move(query));
    return;
  }
  parser_->body_limit(limit);
  stream_.expires_after(std::chrono::minutes(10));
  bhttp::async_read(stream_, buffer_, *parser_,
                    [self = shared_from_this()](beast::error_code ec2, size_t) {
                      self->on_body(ec2);
                    });
}

void Session::on_body(beast::error_code ec) {
  if (ec == bhttp::error::body_limit) {
    respond(error_response(Error{ErrorCode::payload_too_large, "request body too large", ""}), true);
    return;
  }
  if (ec) {
    logger("manager.http")->debug("read failed error={}", ec.message());
    return;
  }
  BeastRequest breq = parser_->release();
  HttpRequest req;
  req.method = std::string(breq.method_string());
  if (!parse_target(std::string_view(breq.target().data(), breq.target().size()), &req.path,
                    &req.query)) {
    respond(error_response(Error{ErrorCode::invalid_argument, "malformed request target", ""}),
            true);
    return;
  }
  copy_headers(breq, req);
  req.body = std::move(breq.body());
  bool keep_alive = breq.keep_alive();
  HttpResponse resp = server_.dispatch(req);
  if (resp.websocket || resp.event_stream) {
    bool is_ws = static_cast<bool>(resp.websocket);
    if (is_ws && !websocket::is_upgrade(breq)) {
      respond(error_response(Error{ErrorCode::invalid_argument,
                                   "this route needs a WebSocket upgrade request", ""}),
              true);
      return;
    }
    stream_.expires_never();
    server_.detach(stream_.release_socket(), std::move(breq), std::move(resp));
    return;
  }
  respond(std::move(resp), !keep_alive);
}

// The body of an upload route goes to a temp file: check the caller on the header alone,
// answer "100 Continue" when asked, then let Beast write the body into the file.
void Session::start_file_body(size_t limit, std::string path,
                              std::map<std::string, std::string> query) {
  const auto& h = parser_->get();
  HttpRequest head;
  head.method = std::string(h.method_string());
  head.path = std::move(path);
  head.query = std::move(query);
  copy_headers(h, head);
  if (auto deny = server_.admit(head)) {
    respond(std::move(*deny), /*close_after=*/true);
    return;
  }
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
  if (beast::iequals(head.header("expect"), "100-continue")) {
    static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
    asio::write(stream_.socket(), asio::buffer(kContinue.data(), kContinue.size()), ec);
    if (ec) return;
  }
  stream_.expires_after(std::chrono::minutes(60));
  bhttp::async_read(stream_, buffer_, *file_parser_,
                    [self = shared_from_this()](beast::error_code ec2, size_t) {
                      self->on_file_body(ec2);
                    });
}

void Session::on_file_body(beast::error_code ec) {
  if (ec == bhttp::error::body_limit) {
    drop_upload();
    respond(error_response(Error{ErrorCode::payload_too_large, "request body too large", ""}), true);
    return;
  }
  if (ec) {
    logger("manager.http")->debug("upload read failed error={}", ec.message());
    drop_upload();
    return;
  }
  auto breq = file_parser_->release();
  file_parser_.reset();
  breq.body().close();
  HttpRequest req;
  req.method = std::string(breq.method_string());
  parse_target(std::string_view(breq.target().data(), breq.target().size()), &req.path,
               &req.query);
  copy_headers(breq, req);
  req.body_file = upload_path_;
  bool keep_alive = breq.keep_alive();
  HttpResponse resp = server_.dispatch(req);
  drop_upload();
  respond(std::move(resp), !keep_alive);
}

void Session::respond(HttpResponse resp, bool close_after) {
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

void Session::write(bool close_after) {
  bhttp::async_write(stream_, response_,
                     [self = shared_from_this(), close_after](beast::error_code ec, size_t) {
                       if (ec || self->server_.stopping()) return;
                       if (close_after) {
                         self->drain();
                         return;
                       }
                       self->read_header();
                     });
}

// After an early error response (413) the client may still be sending its body: close our
// side for writing and discard what arrives for a while, so the client reads the response
// instead of a connection reset.
void Session::drain() {
  beast::error_code ec;
  stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
  if (drained_ == 0) stream_.expires_after(std::chrono::seconds(5));
  if (drained_ > (64u << 20)) return;  // enough: let the socket close
  discard_.resize(64 * 1024);
  stream_.async_read_some(asio::buffer(discard_),
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
