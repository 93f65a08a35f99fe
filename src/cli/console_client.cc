// WebSocket console client (see console_client.h). One io_context thread runs the socket;
// a small thread polls the input fd and posts what it reads into that context.
#include "strata/cli/console_client.h"

#include <poll.h>
#include <termios.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>
#include <deque>
#include <thread>

#include "net.h"
#include "strata/cli/exit_codes.h"

namespace strata::cli {

namespace beast = boost::beast;
namespace websocket = boost::beast::websocket;
namespace net = boost::asio;

bool UntilMatcher::feed(std::string_view bytes) {
  if (matched_ || needle_.empty()) return matched_ = true;
  std::string window = carry_;
  window.append(bytes);
  if (window.find(needle_) != std::string::npos) return matched_ = true;
  size_t keep = needle_.size() - 1;
  carry_ = window.size() > keep ? window.substr(window.size() - keep) : window;
  return false;
}

struct RawTerminal::Saved {
  termios attrs;
};

RawTerminal::RawTerminal(int fd) : fd_(fd) {
  if (!isatty(fd)) return;
  saved_ = std::make_unique<Saved>();
  if (tcgetattr(fd, &saved_->attrs) != 0) return;
  termios raw = saved_->attrs;
  cfmakeraw(&raw);
  if (tcsetattr(fd, TCSANOW, &raw) == 0) active_ = true;
}

RawTerminal::~RawTerminal() {
  if (active_) tcsetattr(fd_, TCSANOW, &saved_->attrs);
}

namespace {

// Ws: websocket::stream over beast::tcp_stream (http) or over TlsStream (https).
template <class Ws>
class Session {
 public:
  Session(Ws& ws, net::io_context& ioc, const ConsoleOptions& o,
          const std::function<void(std::string_view)>& on_output)
      : ws_(ws),
        ioc_(ioc),
        opts_(o),
        on_output_(on_output),
        timeout_(ioc),
        idle_(ioc),
        grace_(ioc) {
    if (o.until) matcher_.emplace(*o.until);
  }

  Result<ConsoleEnd> run() {
    read();
    if (opts_.timeout) {
      timeout_.expires_after(*opts_.timeout);
      timeout_.async_wait([this](beast::error_code ec) {
        if (!ec) finish(tl::unexpected(Error{ErrorCode::deadline_exceeded, timeout_message(), ""}));
      });
    }
    arm_idle();
    std::thread input;
    if (opts_.input_fd >= 0) input = std::thread([this] { input_loop(); });
    ioc_.run();
    stop_input_ = true;
    if (input.joinable()) input.join();
    return result_.value_or(ConsoleEnd::server_closed);
  }

 private:
  std::string timeout_message() const {
    auto s = std::chrono::duration_cast<std::chrono::seconds>(*opts_.timeout).count();
    if (opts_.until)
      return "timed out after " + std::to_string(s) + "s without seeing '" + *opts_.until + "'";
    return "console session timed out after " + std::to_string(s) + "s";
  }

  void arm_idle() {
    if (!opts_.idle_exit || done_) return;
    idle_.expires_after(*opts_.idle_exit);
    idle_.async_wait([this](beast::error_code ec) {
      if (!ec) finish(ConsoleEnd::idle);
    });
  }

  void read() {
    ws_.async_read(buffer_, [this](beast::error_code ec, size_t) {
      if (ec) {
        if (done_) return;
        if (ec == websocket::error::closed || ec == net::error::eof)
          finish(ConsoleEnd::server_closed);
        else
          finish(tl::unexpected(Error{ErrorCode::unavailable, "console: " + ec.message(), ""}));
        return;
      }
      std::string_view data(static_cast<const char*>(buffer_.data().data()), buffer_.size());
      if (!done_) on_output_(data);
      bool hit = matcher_ && matcher_->feed(data);
      buffer_.consume(buffer_.size());
      if (hit) return finish(ConsoleEnd::matched);
      arm_idle();
      read();
    });
  }

  void input_loop() {
    char buf[4096];
    while (!stop_input_) {
      pollfd p{opts_.input_fd, POLLIN, 0};
      int r = ::poll(&p, 1, 100);
      if (r <= 0) continue;
      ssize_t n = ::read(opts_.input_fd, buf, sizeof buf);
      if (n <= 0) return;  // EOF: keep the session for output (ends by close/until/timeout)
      std::string chunk(buf, static_cast<size_t>(n));
      bool detach = false;
      if (opts_.detach_key) {
        auto k = chunk.find(kDetachKey);
        if (k != std::string::npos) {
          chunk.resize(k);
          detach = true;
        }
      }
      net::post(ioc_, [this, chunk = std::move(chunk), detach]() mutable {
        if (!chunk.empty()) send(std::move(chunk));
        if (detach) finish(ConsoleEnd::detached);
      });
      if (detach) return;
    }
  }

  void send(std::string data) {
    if (done_) return;
    out_.push_back(std::move(data));
    if (out_.size() == 1) write_next();
  }

  void write_next() {
    ws_.async_write(net::buffer(out_.front()), [this](beast::error_code ec, size_t) {
      if (ec) return;  // the read side reports the failure
      out_.pop_front();
      if (!out_.empty() && !done_) write_next();
    });
  }

  void finish(Result<ConsoleEnd> r) {
    if (done_) return;
    done_ = true;
    result_ = std::move(r);
    timeout_.cancel();
    idle_.cancel();
    // Close politely, but never wait long for the server's close frame.
    ws_.async_close(websocket::close_code::normal, [this](beast::error_code) { ioc_.stop(); });
    grace_.expires_after(std::chrono::seconds(2));
    grace_.async_wait([this](beast::error_code ec) {
      if (!ec) ioc_.stop();
    });
  }

  Ws& ws_;
  net::io_context& ioc_;
  const ConsoleOptions& opts_;
  const std::function<void(std::string_view)>& on_output_;
  net::steady_timer timeout_, idle_, grace_;
  beast::flat_buffer buffer_;
  std::deque<std::string> out_;
  std::optional<UntilMatcher> matcher_;
  std::optional<Result<ConsoleEnd>> result_;
  bool done_ = false;
  std::atomic<bool> stop_input_{false};
};

}  // namespace

namespace {

template <class Stream>
Result<ConsoleEnd> run_on(Stream& stream, net::io_context& ioc, const Endpoint& endpoint,
                          const std::string& token, const ApiRequest& req,
                          const ConsoleOptions& options,
                          const std::function<void(std::string_view)>& on_output) {
  websocket::stream<Stream&> ws(stream);
  ws.set_option(websocket::stream_base::decorator([&token](websocket::request_type& r) {
    r.set(beast::http::field::user_agent, "strata-cli");
    if (!token.empty()) r.set(beast::http::field::authorization, "Bearer " + token);
  }));
  websocket::response_type res;
  beast::error_code ec;
  ws.handshake(res, host_header(endpoint), endpoint.base_path + req.target, ec);
  if (ec) {
    unsigned status = res.result_int();
    if (status >= 300 && !res.body().empty())
      return tl::unexpected(error_from_response(status, res.body()));
    // Beast 1.74 does not always hand back the refusal: ask again with a plain GET to get
    // the server's error envelope (404, 401, 409 not placed, 503 host unreachable, ...).
    if (ec == websocket::error::upgrade_declined) {
      HttpClient plain(endpoint, token, std::chrono::seconds(30));
      auto again = plain.send(req);
      if (again && again->status >= 300)
        return tl::unexpected(error_from_response(again->status, again->body));
    }
    return unavailable("console: WebSocket handshake failed: " + ec.message());
  }
  beast::get_lowest_layer(ws).expires_never();
  ws.set_option(websocket::stream_base::timeout::suggested(beast::role_type::client));
  ws.binary(true);
  Session<websocket::stream<Stream&>> s(ws, ioc, options, on_output);
  return s.run();
}

}  // namespace

Result<ConsoleEnd> run_console(const Endpoint& endpoint, const std::string& token,
                               const ApiRequest& req, const ConsoleOptions& options,
                               const std::function<void(std::string_view)>& on_output) {
  net::io_context ioc;
  auto conn = connect_to(ioc, endpoint, std::chrono::seconds(30));
  if (!conn) return tl::unexpected(conn.error());
  return conn->visit([&](auto& stream) {
    return run_on(stream, ioc, endpoint, token, req, options, on_output);
  });
}

}  // namespace strata::cli
