// The Beast transport's limits over loopback, with raw sockets: 431 for an oversized
// header, 400 for a malformed request, header/idle/body-rate deadlines, connection caps
// (503), and no accept spin when the process runs out of file descriptors.
#include <sys/resource.h>
#include <time.h>

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "raw_http.h"
#include "strata/manager/api/connection_limits.h"
#include "strata/manager/api/http_server.h"

namespace strata::manager {
namespace {

using namespace std::chrono_literals;
using test_support::closed_by_peer;
using test_support::connect_from;
using test_support::read_response;
using test_support::send_all;

class HttpLimitsTest : public ::testing::Test {
 protected:
  // `admit` (optional) is the header check: here it refuses requests without
  // "Authorization: Bearer good".
  void start(HttpServerConfig cfg, bool admit = false) {
    cfg.host = "127.0.0.1";
    cfg.port = 0;
    UploadRoutes hooks;
    if (admit)
      hooks.admit = [](HttpRequest& head) -> std::optional<HttpResponse> {
        if (head.header("authorization") == "Bearer good") return std::nullopt;
        return error_response(Error{ErrorCode::unauthenticated, "no", ""});
      };
    auto server = start_http_server(
        cfg, [](std::string_view, std::string_view) { return size_t{1024 * 1024}; },
        [this](HttpRequest& r) {
          ++dispatched_;
          return HttpResponse::json(200, {{"path", r.path}, {"bytes", r.body.size()}});
        },
        std::move(hooks));
    ASSERT_TRUE(server) << server.error().to_string();
    server_ = std::move(*server);
  }
  void TearDown() override {
    for (int fd : fds_) ::close(fd);
    if (server_) server_->stop();
  }
  int open(const std::string& source = "127.0.0.1") {
    int fd = connect_from(source, server_->port());
    EXPECT_GE(fd, 0) << "connect from " << source;
    fds_.push_back(fd);
    return fd;
  }
  // One GET on `fd`, kept alive; the status (0: no answer).
  unsigned get(int fd, const std::string& path = "/x") {
    if (!send_all(fd, "GET " + path + " HTTP/1.1\r\nHost: t\r\n\r\n")) return 0;
    auto r = read_response(fd, 3s);
    return r ? r->status : 0;
  }

  HttpServerPtr server_;
  std::vector<int> fds_;
  std::atomic<int> dispatched_{0};
};

TEST_F(HttpLimitsTest, OversizedHeaderGets431) {
  start({});
  int fd = open();
  std::string req = "GET /x HTTP/1.1\r\nHost: t\r\nX-Big: " + std::string(100 * 1000, 'a') +
                    "\r\n\r\n";
  send_all(fd, req);
  auto r = read_response(fd, 5s);
  ASSERT_TRUE(r) << "an oversized header must be answered, not just closed";
  EXPECT_EQ(r->status, 431u) << r->head;
  auto j = nlohmann::json::parse(r->body);
  EXPECT_EQ(j["error"]["code"], "payload_too_large");
  EXPECT_NE(j["error"]["message"].get<std::string>().find("16384"), std::string::npos);
  EXPECT_TRUE(closed_by_peer(fd, 5s));
  EXPECT_EQ(dispatched_, 0);
  EXPECT_EQ(get(open()), 200u) << "the server still serves";
}

// The header check runs for every request, not only uploads: a refused request is answered
// without its body ever being sent, and never dispatched.
TEST_F(HttpLimitsTest, AdmitRefusesOnTheHeaderBeforeTheBody) {
  start({}, /*admit=*/true);
  int fd = open();
  send_all(fd, "POST /api/v1/vms HTTP/1.1\r\nHost: t\r\nContent-Length: 500000\r\n\r\n");
  auto r = read_response(fd, 3s);
  ASSERT_TRUE(r) << "no answer before the body: the body is read before the header check";
  EXPECT_EQ(r->status, 401u);
  EXPECT_TRUE(closed_by_peer(fd, 5s)) << "the unread body ends the connection";
  EXPECT_EQ(dispatched_, 0);
  // Without a body the connection stays usable; an admitted request is served.
  int keep = open();
  send_all(keep, "GET /x HTTP/1.1\r\nHost: t\r\n\r\n");
  auto r2 = read_response(keep, 3s);
  ASSERT_TRUE(r2);
  EXPECT_EQ(r2->status, 401u);
  send_all(keep, "POST /x HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer good\r\n"
                 "Content-Length: 3\r\n\r\nabc");
  auto r3 = read_response(keep, 3s);
  ASSERT_TRUE(r3);
  EXPECT_EQ(r3->status, 200u);
  EXPECT_EQ(nlohmann::json::parse(r3->body)["bytes"], 3);
}

TEST_F(HttpLimitsTest, MalformedRequestGets400) {
  start({});
  int fd = open();
  send_all(fd, "GET /x HTTP/1.1\r\nBad Header Line\r\n\r\n");
  auto r = read_response(fd, 5s);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400u);
  EXPECT_EQ(nlohmann::json::parse(r->body)["error"]["code"], "invalid_argument");
}

TEST_F(HttpLimitsTest, SlowHeaderIsClosedAtTheHeaderTimeout) {
  HttpServerConfig cfg;
  cfg.header_timeout = 300ms;
  start(cfg);
  int fd = open();
  // A header trickled one field at a time never completes: closed at the deadline even
  // though bytes keep arriving.
  send_all(fd, "GET /x HTTP/1.1\r\nHost: t\r\n");
  auto t0 = std::chrono::steady_clock::now();
  bool closed = false;
  for (int i = 0; i < 40 && !closed; ++i) {
    send_all(fd, "X-Slow: 1\r\n");
    closed = closed_by_peer(fd, 50ms);
  }
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_TRUE(closed) << "still open after " << s << " s";
  EXPECT_LT(s, 1.5);
  // A connection that sends nothing at all is closed too.
  EXPECT_TRUE(closed_by_peer(open(), 2s));
  EXPECT_EQ(dispatched_, 0);
}

TEST_F(HttpLimitsTest, IdleKeepAliveConnectionIsClosed) {
  HttpServerConfig cfg;
  cfg.idle_timeout = 300ms;
  start(cfg);
  int fd = open();
  EXPECT_EQ(get(fd), 200u);
  EXPECT_EQ(get(fd), 200u) << "kept alive between requests";
  EXPECT_TRUE(closed_by_peer(fd, 2s)) << "idle past idle_timeout";
}

TEST_F(HttpLimitsTest, BodyBelowTheMinimumRateIsCut) {
  HttpServerConfig cfg;
  cfg.body_min_rate = 1000;  // bytes/s: 300 bytes per 300 ms window
  cfg.body_rate_window = 300ms;
  start(cfg);
  // Above the rate over several windows: a 3000-byte body in 100-byte pieces every 25 ms
  // (4000 B/s for ~750 ms) is served. Four times the minimum, not two: on a loaded 2-core
  // CI machine a sleeping client thread can lose 100 ms or more at a time.
  int ok = open();
  send_all(ok, "POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 3000\r\n\r\n");
  for (int i = 0; i < 30; ++i) {
    send_all(ok, std::string(100, 'a'));
    std::this_thread::sleep_for(25ms);
  }
  auto r = read_response(ok, 3s);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200u);
  EXPECT_EQ(nlohmann::json::parse(r->body)["bytes"], 3000);
  // Trickled (one byte every 50 ms = 20 B/s): cut at the end of the first window.
  int slow = open();
  send_all(slow, "POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\n\r\n");
  bool closed = false;
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < 60 && !closed; ++i) {
    send_all(slow, "a");
    closed = closed_by_peer(slow, 50ms);
  }
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_TRUE(closed) << "a body trickled at 20 B/s is still being read after " << s << " s";
  EXPECT_EQ(dispatched_, 1);
}

TEST_F(HttpLimitsTest, InMemoryBodyHasAnOverallDeadline) {
  HttpServerConfig cfg;
  cfg.body_min_rate = 10;  // the rate alone would let this body run for long
  cfg.body_timeout = 500ms;
  start(cfg);
  int fd = open();
  send_all(fd, "POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 100000\r\n\r\n");
  bool closed = false;
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < 60 && !closed; ++i) {
    send_all(fd, std::string(100, 'a'));
    closed = closed_by_peer(fd, 50ms);
  }
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_TRUE(closed) << "still reading the body after " << s << " s";
  EXPECT_LT(s, 2.0);
}

TEST_F(HttpLimitsTest, ConnectionCapsAnswer503AndFreeUp) {
  HttpServerConfig cfg;
  cfg.max_connections = 3;
  cfg.max_connections_per_address = 2;
  start(cfg);
  int a = open("127.0.0.1"), b = open("127.0.0.1");
  ASSERT_EQ(get(a), 200u);
  ASSERT_EQ(get(b), 200u);
  // A third connection from the same address: over the per-address cap.
  int c = open("127.0.0.1");
  auto r = read_response(c, 3s);
  ASSERT_TRUE(r) << "over the cap, the server answers before closing";
  EXPECT_EQ(r->status, 503u);
  auto j = nlohmann::json::parse(r->body);
  EXPECT_EQ(j["error"]["code"], "unavailable");
  EXPECT_NE(j["error"]["message"].get<std::string>().find("too many connections"),
            std::string::npos);
  EXPECT_NE(r->head.find("Retry-After: 1"), std::string::npos) << r->head;
  EXPECT_TRUE(closed_by_peer(c, 3s));
  // Another address still fits under the global cap, then the global cap is reached.
  int d = open("127.0.0.2");
  EXPECT_EQ(get(d), 200u);
  int e = open("127.0.0.3");
  auto r2 = read_response(e, 3s);
  ASSERT_TRUE(r2);
  EXPECT_EQ(r2->status, 503u);
  // Closing one frees its place.
  ::close(a);
  fds_.erase(fds_.begin());
  bool served = false;
  for (int i = 0; i < 50 && !served; ++i) {
    int f = open("127.0.0.1");
    served = get(f) == 200u;
    if (!served) std::this_thread::sleep_for(50ms);
  }
  EXPECT_TRUE(served);
}

double process_cpu_seconds() {
  timespec ts{};
  ::clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

// With no file descriptor left, accept() fails at once while the connection waits in the
// backlog: the server must back off instead of spinning, and serve once fds are free.
TEST_F(HttpLimitsTest, AcceptErrorsBackOffAndRecover) {
#if defined(__SANITIZE_ADDRESS__)
  // UBSan's vptr check probes memory through a pipe(); with every fd taken it fails and
  // reports a false "invalid vptr" from whichever thread makes a virtual call. The regular
  // build runs this test.
  GTEST_SKIP() << "SKIPPED: needs free fds under ASan+UBSan; runs in the regular build";
#endif
  start({});
  std::vector<int> clients;
  for (int i = 0; i < 3; ++i) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT_GE(fd, 0);
    clients.push_back(fd);
  }
  sockaddr_in dst{};
  dst.sin_family = AF_INET;
  dst.sin_port = htons(server_->port());
  ::inet_pton(AF_INET, "127.0.0.1", &dst.sin_addr);
  rlimit saved{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &saved), 0);
  rlimit low = saved;
  low.rlim_cur = 256;
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &low), 0);
  std::vector<int> hogs;
  for (;;) {
    int fd = ::dup(0);
    if (fd < 0) break;
    hogs.push_back(fd);
  }
  ASSERT_EQ(errno, EMFILE);
  for (int fd : clients)
    ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&dst), sizeof dst), 0)
        << "the kernel completes the handshake into the backlog";
  std::this_thread::sleep_for(100ms);  // the acceptor hits EMFILE
  double cpu0 = process_cpu_seconds();
  std::this_thread::sleep_for(1s);
  double cpu = process_cpu_seconds() - cpu0;
  std::printf("process CPU over 1 s with accept failing (EMFILE): %.3f s\n", cpu);
  for (int fd : hogs) ::close(fd);
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &saved), 0);
  // Backing off, the process is idle (~0.001 s); spinning took 0.24 s of CPU even on a
  // machine loaded 9x over its 2 cores.
  EXPECT_LT(cpu, 0.5) << "the accept loop spins on EMFILE";  // spinning costs ~1 s per thread
  // Free fds: the waiting connections are accepted and served (backoff is at most 1 s).
  for (int fd : clients) {
    EXPECT_TRUE(send_all(fd, "GET /x HTTP/1.1\r\nHost: t\r\n\r\n"));
    auto r = read_response(fd, 5s);
    EXPECT_TRUE(r && r->status == 200u) << "not served after fds were freed";
    ::close(fd);
  }
}

TEST(ConnectionLimits, CountsPerAddressAndOverall) {
  ConnectionLimits limits(3, 2);
  auto a1 = limits.acquire("10.0.0.1");
  auto a2 = limits.acquire("10.0.0.1");
  ASSERT_TRUE(a1 && a2);
  EXPECT_FALSE(limits.acquire("10.0.0.1"));
  EXPECT_EQ(limits.open_from("10.0.0.1"), 2);
  auto b1 = limits.acquire("10.0.0.2");
  ASSERT_TRUE(b1);
  EXPECT_FALSE(limits.acquire("10.0.0.3")) << "global cap";
  a1.reset();
  EXPECT_EQ(limits.open(), 2);
  EXPECT_TRUE(limits.acquire("10.0.0.3"));
  EXPECT_EQ(limits.open_from("10.0.0.3"), 0) << "released when the ticket went";
  EXPECT_EQ(limits.open_from("10.0.0.9"), 0);
}

}  // namespace
}  // namespace strata::manager
