// Long-lived responses on the real Beast server: 500 SSE streams on the I/O threads (no
// thread per stream, one store read per batch of events for all of them, the overall cap
// answered with 503), the per-token cap (429), Last-Event-ID resume across more than one
// catch-up page, and WebSocket limits (a message over the limit closes with 1009, an idle
// client that answers no ping is closed).
#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <thread>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>
#include <fmt/format.h>

#include "strata/common/clock.h"
#include "strata/manager/api/event_stream.h"
#include "strata/manager/api/http_server.h"
#include "strata/store/store.h"

namespace strata::manager {
namespace {

using namespace std::chrono_literals;

int thread_count() {
  int n = 0;
  if (DIR* d = ::opendir("/proc/self/task")) {
    while (auto* e = ::readdir(d))
      if (e->d_name[0] != '.') ++n;
    ::closedir(d);
  }
  return n;
}

// Raises the soft file-descriptor limit; false when the hard limit is below `want`.
bool raise_fd_limit(rlim_t want) {
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) != 0) return false;
  if (rl.rlim_cur >= want) return true;
  if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < want) return false;
  rl.rlim_cur = want;
  return ::setrlimit(RLIMIT_NOFILE, &rl) == 0;
}

// A raw client socket (blocking, 10 s receive timeout) reading an SSE stream.
class RawClient {
 public:
  bool connect(uint16_t port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) return false;
    timeval tv{10, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return ::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  }
  bool send(const std::string& s) {
    return ::send(fd_, s.data(), s.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(s.size());
  }
  // Reads until `needle` is in what arrived; false on timeout or EOF.
  bool read_until(const std::string& needle) {
    while (data_.find(needle) == std::string::npos) {
      char buf[4096];
      ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) return false;
      data_.append(buf, static_cast<size_t>(n));
    }
    return true;
  }
  const std::string& data() const { return data_; }
  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  ~RawClient() { close(); }

 private:
  int fd_ = -1;
  std::string data_;
};

std::string stream_request(const std::string& token, const std::string& extra = {}) {
  return fmt::format("GET /api/v1/events/stream HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {}\r\n"
                     "{}\r\n",
                     token, extra);
}

// The event stream route as stratad wires it (event_stream_response on the one fan-out and
// the stream caps), on an in-memory store, plus /healthz; the bearer token is its own id.
struct Api {
  store::StorePtr store;
  std::unique_ptr<EventLog> events;
  std::unique_ptr<StreamLimiter> limiter;
  std::unique_ptr<EventFanout> fanout;
  HttpServerPtr server;
  std::string admin = "tok-a";

  void start(StreamCaps caps, StreamConfig streams = {}) {
    auto s = store::open_store("sqlite::memory:", store::StoreOptions{system_clock(), 1});
    ASSERT_TRUE(s) << s.error().to_string();
    store = std::move(*s);
    events = std::make_unique<EventLog>(*store);
    limiter = std::make_unique<StreamLimiter>(caps);
    fanout = std::make_unique<EventFanout>(*events);
    HttpServerConfig cfg;
    cfg.port = 0;
    cfg.streams = streams;
    auto srv = start_http_server(
        cfg, [](std::string_view, std::string_view) { return size_t{1024}; },
        [this](HttpRequest& r) {
          if (r.path == "/healthz") return HttpResponse::json(200, {{"status", "ok"}});
          std::string token = r.header("authorization").substr(7);
          int64_t after = events->last_seq().value_or(0);
          if (auto id = r.header("last-event-id"); !id.empty()) after = std::atoll(id.c_str());
          return event_stream_response(*fanout, *limiter, token, after);
        });
    ASSERT_TRUE(srv) << srv.error().to_string();
    server = std::move(*srv);
  }
  // A plain request on a fresh connection: the status and the body.
  std::pair<unsigned, std::string> get(const std::string& path) {
    RawClient c;
    if (!c.connect(server->port())) return {0, ""};
    c.send(fmt::format("GET {} HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {}\r\n"
                       "Connection: close\r\n\r\n",
                       path, admin));
    c.read_until("\r\n\r\n");
    c.read_until("}");
    const std::string& d = c.data();
    unsigned status = d.size() > 12 ? static_cast<unsigned>(std::atoi(d.c_str() + 9)) : 0;
    size_t body = d.find("\r\n\r\n");
    return {status, body == std::string::npos ? "" : d.substr(body + 4)};
  }
  ~Api() {
    if (server) server->stop();
    if (fanout) fanout->stop();
    server.reset();  // the streams' tickets go back to the limiter
  }
};

TEST(EventStreams, FiveHundredStreamsShareTheIoThreadsAndOneReader) {
  constexpr int kStreams = 500;
  if (!raise_fd_limit(4 * kStreams)) GTEST_SKIP() << "SKIPPED: RLIMIT_NOFILE hard limit too low";
  Api a;
  ASSERT_NO_FATAL_FAILURE(a.start(StreamCaps{1000, kStreams, 8}));
  int before = thread_count();
  std::vector<std::unique_ptr<RawClient>> clients;
  for (int i = 0; i < kStreams; ++i) {
    auto c = std::make_unique<RawClient>();
    ASSERT_TRUE(c->connect(a.server->port())) << i;
    ASSERT_TRUE(c->send(stream_request(a.admin)));
    ASSERT_TRUE(c->read_until(": stream start\n\n")) << i << ": " << c->data();
    clients.push_back(std::move(c));
  }
  int during = thread_count();
  EXPECT_LT(during - before, 10) << "threads before " << before << ", with " << kStreams
                                 << " streams " << during;
  EXPECT_EQ(a.limiter->active(), static_cast<size_t>(kStreams));

  // One over the overall cap: a JSON 503, not a stream.
  auto [status, body] = a.get("/api/v1/events/stream");
  EXPECT_EQ(status, 503u) << body;
  EXPECT_NE(body.find("\"code\":\"unavailable\""), std::string::npos) << body;

  // /healthz stays fast meanwhile (the bound is < 100 ms; the margin is for a busy CI box).
  auto t0 = std::chrono::steady_clock::now();
  auto health = a.get("/healthz");
  auto took = std::chrono::steady_clock::now() - t0;
  EXPECT_EQ(health.first, 200u);
  EXPECT_LT(took, 500ms);

  // Three events reach every stream, read from the store a handful of times, not per stream.
  auto subscribed = std::chrono::steady_clock::now() + 10s;
  while (a.fanout->subscribers() < static_cast<size_t>(kStreams) &&
         std::chrono::steady_clock::now() < subscribed)
    std::this_thread::sleep_for(10ms);
  uint64_t reads = a.fanout->store_reads();
  int64_t last = 0;
  for (int i = 0; i < 3; ++i) {
    auto e = a.events->append("test", "test.fanout", "t/" + std::to_string(i), "ok");
    ASSERT_TRUE(e);
    last = e->seq;
  }
  std::string want = fmt::format("id: {}\n", last);
  for (int i = 0; i < kStreams; ++i) {
    ASSERT_TRUE(clients[i]->read_until(want)) << i << ": " << clients[i]->data();
    auto& d = clients[i]->data();
    EXPECT_NE(d.find(fmt::format("id: {}\n", last - 2)), std::string::npos);
    EXPECT_LT(d.find(fmt::format("id: {}\n", last - 2)), d.find(fmt::format("id: {}\n", last - 1)));
  }
  EXPECT_LE(a.fanout->store_reads() - reads, 6u);

  // Closed streams give their slots back.
  for (auto& c : clients) c->close();
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (a.limiter->active() > 0 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(20ms);
  EXPECT_EQ(a.limiter->active(), 0u);
}

TEST(EventStreams, PerTokenCapIs429) {
  Api a;
  ASSERT_NO_FATAL_FAILURE(a.start(StreamCaps{2, 100, 8}));
  RawClient c1, c2;
  for (RawClient* c : {&c1, &c2}) {
    ASSERT_TRUE(c->connect(a.server->port()));
    ASSERT_TRUE(c->send(stream_request(a.admin)));
    ASSERT_TRUE(c->read_until(": stream start\n\n")) << c->data();
  }
  auto [status, body] = a.get("/api/v1/events/stream");
  EXPECT_EQ(status, 429u) << body;
  EXPECT_NE(body.find("\"code\":\"resource_exhausted\""), std::string::npos) << body;
  c1.close();
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (a.limiter->active() > 1 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(20ms);
  RawClient c3;
  ASSERT_TRUE(c3.connect(a.server->port()));
  ASSERT_TRUE(c3.send(stream_request(a.admin)));
  EXPECT_TRUE(c3.read_until(": stream start\n\n")) << c3.data();
}

// Last-Event-ID resumes after the given event: more than one catch-up page from the store,
// then live events, in order, with no gap and no duplicate.
TEST(EventStreams, LastEventIdResumesAcrossPagesThenLive) {
  Api a;
  ASSERT_NO_FATAL_FAILURE(a.start(StreamCaps{}));
  int64_t first = 0, last = 0;
  for (int i = 0; i < 1200; ++i) {
    auto e = a.events->append("test", "test.backlog", "t", "ok");
    ASSERT_TRUE(e);
    if (i == 0) first = e->seq;
    last = e->seq;
  }
  RawClient c;
  ASSERT_TRUE(c.connect(a.server->port()));
  ASSERT_TRUE(c.send(stream_request(a.admin, fmt::format("Last-Event-ID: {}\r\n", first))));
  ASSERT_TRUE(c.read_until(fmt::format("id: {}\n", last))) << c.data().size();
  auto live = a.events->append("test", "test.live", "t", "ok");
  ASSERT_TRUE(live);
  ASSERT_TRUE(c.read_until(fmt::format("id: {}\n", live->seq)));
  // The stream's first id is where it resumes (first), then every event after it.
  int64_t expect = first;
  const std::string& d = c.data();
  for (size_t pos = d.find("\nid: "); pos != std::string::npos; pos = d.find("\nid: ", pos + 1)) {
    int64_t id = std::atoll(d.c_str() + pos + 5);
    ASSERT_EQ(id, expect);
    ++expect;
  }
  EXPECT_EQ(expect, live->seq + 1);
}

// A fresh stream (no Last-Event-ID) starts live, at the newest event, and says so with an
// id-only block right after its start: a client that gets no event before a drop resumes
// from there and loses nothing made meanwhile.
TEST(EventStreams, FreshStreamSaysWhereItStartsAndResumesFromThere) {
  Api a;
  ASSERT_NO_FATAL_FAILURE(a.start(StreamCaps{}));
  auto old = a.events->append("test", "test.old", "t", "ok");
  ASSERT_TRUE(old);
  RawClient c;
  ASSERT_TRUE(c.connect(a.server->port()));
  ASSERT_TRUE(c.send(stream_request(a.admin)));
  ASSERT_TRUE(c.read_until(fmt::format(": stream start\n\nid: {}\n\n", old->seq))) << c.data();
  EXPECT_EQ(c.data().find("test.old"), std::string::npos) << c.data();
  c.close();
  // Dropped before any event; two events meanwhile; resumed with the id it was given.
  auto m1 = a.events->append("test", "test.missed", "t", "ok");
  auto m2 = a.events->append("test", "test.missed", "t", "ok");
  ASSERT_TRUE(m1 && m2);
  RawClient r;
  ASSERT_TRUE(r.connect(a.server->port()));
  ASSERT_TRUE(r.send(stream_request(a.admin, fmt::format("Last-Event-ID: {}\r\n", old->seq))));
  ASSERT_TRUE(r.read_until(fmt::format("id: {}\n", m2->seq))) << r.data();
  EXPECT_NE(r.data().find(fmt::format("id: {}\nevent: test.missed", m1->seq)), std::string::npos)
      << r.data();
}

namespace beast = boost::beast;
namespace websocket = boost::beast::websocket;
namespace asio = boost::asio;

// Echoes each message until receive() gives nothing, then sets `ended`.
void echo(const std::shared_ptr<WebSocket>& ws, std::promise<void>& ended) {
  ws->receive([ws, &ended](std::optional<std::string> m) {
    if (!m) {
      ended.set_value();
      return;
    }
    ws->send(std::move(*m), false);
    echo(ws, ended);
  });
}

// A WebSocket echo route on the bare server; `ended` is set when receive() returns nothing.
struct EchoServer {
  std::promise<void> ended;
  HttpServerPtr server;
  explicit EchoServer(StreamConfig cfg) {
    HttpServerConfig hc;
    hc.port = 0;
    hc.streams = cfg;
    auto s = start_http_server(
        hc, [](std::string_view, std::string_view) { return size_t{1024}; },
        [this](HttpRequest&) {
          HttpResponse r;
          r.websocket = [this](std::shared_ptr<WebSocket> ws) { echo(ws, ended); };
          return r;
        });
    EXPECT_TRUE(s);
    if (s) server = std::move(*s);
  }
  ~EchoServer() {
    if (server) server->stop();
  }
};

void ws_connect(websocket::stream<asio::ip::tcp::socket>& ws, uint16_t port) {
  ws.next_layer().connect({asio::ip::make_address("127.0.0.1"), port});
  ws.handshake("127.0.0.1", "/ws");
}

TEST(WebSocketLimits, MessageOverTheLimitClosesWith1009) {
  StreamConfig cfg;
  cfg.ws_message_max = 1024;
  EchoServer s(cfg);
  ASSERT_TRUE(s.server);
  asio::io_context ioc;
  websocket::stream<asio::ip::tcp::socket> ws(ioc);
  ws_connect(ws, s.server->port());
  ws.write(asio::buffer(std::string("hello")));
  beast::flat_buffer buf;
  ws.read(buf);
  EXPECT_EQ(beast::buffers_to_string(buf.data()), "hello");
  buf.clear();
  ws.write(asio::buffer(std::string(4096, 'x')));
  beast::error_code ec;
  ws.read(buf, ec);
  // The server's close frame carries 1009; it may tear the socket down before this client's
  // closing reply goes out (then the read ends with a broken pipe, the reason still set).
  EXPECT_TRUE(ec) << ec.message();
  EXPECT_EQ(ws.reason().code, websocket::close_code::too_big) << ec.message();
  EXPECT_EQ(s.ended.get_future().wait_for(10s), std::future_status::ready);
}

TEST(WebSocketLimits, IdleClientThatAnswersNoPingIsClosed) {
  StreamConfig cfg;
  cfg.ws_idle_timeout = 1s;
  EchoServer s(cfg);
  ASSERT_TRUE(s.server);
  asio::io_context ioc;
  websocket::stream<asio::ip::tcp::socket> ws(ioc);
  ws_connect(ws, s.server->port());
  // The client never reads, so it never answers the server's pings.
  EXPECT_EQ(s.ended.get_future().wait_for(15s), std::future_status::ready);
}

}  // namespace
}  // namespace strata::manager
