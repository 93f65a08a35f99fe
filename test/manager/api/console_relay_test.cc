// The console relay holds no thread per console: 50 serial and 10 graphical consoles open
// at once, over the real HTTP server, through the real AgentService (in-memory driver, in a
// process of its own: console_test_agent.cc), leave this process's thread count where one
// console left it (a small constant), carry data both ways on every one, and give their
// slots back when closed by the client or ended by the agent. Before the consoles were
// asynchronous each one held two threads (that code: 19 threads with 2 consoles, 136 with
// 60; now 17-18 with either).
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>
#include <filesystem>
#include <iostream>
#include <thread>

#include "manager_parts.h"
#include "raw_http.h"
#include "strata/manager/api/http_server.h"

extern char** environ;

namespace strata::manager {
namespace {

namespace fs = std::filesystem;
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace websocket = boost::beast::websocket;
using Ws = websocket::stream<asio::ip::tcp::socket>;

constexpr int kSerial = 50;
constexpr int kVnc = 10;
constexpr int kConsoles = kSerial + kVnc;

size_t thread_count() {
  size_t n = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator("/proc/self/task")) ++n;
  return n;
}

// console_test_agent in a child process; stop() closes its stdin (the agent stops serving).
class AgentProcess {
 public:
  bool start(const std::string& dir, int count) {
    int in[2], out[2];
    if (::pipe2(in, O_CLOEXEC) != 0 || ::pipe2(out, O_CLOEXEC) != 0) return false;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in[0], 0);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    std::string bin = CONSOLE_TEST_AGENT, n = std::to_string(count);
    std::vector<char*> argv{bin.data(), const_cast<char*>(dir.c_str()), n.data(), nullptr};
    int rc = posix_spawn(&pid_, bin.c_str(), &fa, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    ::close(in[0]);
    ::close(out[1]);
    stdin_ = in[1];
    if (rc != 0) {
      pid_ = -1;
      ::close(out[0]);
      return false;
    }
    std::string got;
    char c;
    while (got.find("ready\n") == std::string::npos && ::read(out[0], &c, 1) == 1) got += c;
    ::close(out[0]);
    return got.find("ready\n") != std::string::npos;
  }
  void stop() {
    if (stdin_ >= 0) ::close(stdin_);
    stdin_ = -1;
    if (pid_ > 0) ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }
  ~AgentProcess() {
    if (pid_ > 0) ::kill(pid_, SIGKILL);
    stop();
  }

 private:
  pid_t pid_ = -1;
  int stdin_ = -1;
};

class ConsoleRelayTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/strata-console-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    ASSERT_TRUE(agent_.start(dir_.string(), kConsoles));
    ASSERT_NO_FATAL_FAILURE(parts_.build());
    store::HostRecord h;
    h.name = "h1";
    h.address = "unix:" + (dir_ / "agent.sock").string();
    h.state = "up";
    h.accelerator = "tcg";
    h.cpu_threads = 4;
    h.memory_mib = 4096;
    auto host = parts_.store->create_host(h);
    ASSERT_TRUE(host) << host.error().to_string();
    for (int i = 0; i < kConsoles; ++i) {
      store::VmRecord vm;
      vm.name = "c" + std::to_string(i);
      vm.desired_state = "running";
      vm.host_id = host->id;
      ASSERT_TRUE(parts_.store->create_vm(vm));
    }
    ASSERT_TRUE(parts_.agents->start());
    ApiDeps d = parts_.deps();
    d.stream_caps.per_token = 0;
    d.stream_caps.total = 0;
    d.stream_caps.consoles = kConsoles;
    api_ = std::make_unique<ApiService>(std::move(d));
    HttpServerConfig config;
    config.port = 0;
    auto server = start_http_server(
        config, [&](std::string_view m, std::string_view p) { return api_->body_limit(m, p); },
        [&](HttpRequest& r) { return api_->dispatch(r); });
    ASSERT_TRUE(server) << server.error().to_string();
    server_ = std::move(*server);
  }
  void TearDown() override {
    if (server_) server_->stop();
    api_.reset();
    if (parts_.agents) parts_.agents->stop();
    agent_.stop();
    fs::remove_all(dir_);
  }

  // Opens console i (serial below kSerial, else graphical); nullptr when refused.
  std::unique_ptr<Ws> open(int i) {
    auto ws = std::make_unique<Ws>(ioc_);
    ws->next_layer().connect({asio::ip::make_address("127.0.0.1"), server_->port()});
    ws->set_option(websocket::stream_base::decorator([this](websocket::request_type& r) {
      r.set(beast::http::field::authorization, "Bearer " + parts_.admin);
    }));
    websocket::response_type res;
    beast::error_code ec;
    std::string path = "/api/v1/vms/c" + std::to_string(i) + (i < kSerial ? "/console" : "/vnc");
    ws->handshake(res, "127.0.0.1", path, ec);
    if (ec) return nullptr;
    ws->binary(true);
    return ws;
  }
  // Reads from `ws` until what arrived holds `want`; the error that ended it otherwise.
  static beast::error_code read_until(Ws& ws, const std::string& want, std::string& got) {
    beast::flat_buffer buf;
    while (got.find(want) == std::string::npos) {
      beast::error_code ec;
      ws.read(buf, ec);
      if (ec) return ec;
      got += beast::buffers_to_string(buf.data());
      buf.consume(buf.size());
    }
    return {};
  }
  // One round trip on console i: serial input echoes back as output (the in-memory
  // guest echoes, as a shell does); the display echoes after its greeting.
  void round_trip(Ws& ws, int i, const std::string& tag) {
    std::string got;
    if (i >= kSerial && tag == "first") {
      ASSERT_FALSE(read_until(ws, "RFB 003.008\n", got));
      got.clear();
    }
    std::string msg = tag + "-" + std::to_string(i) + "\n";
    ws.write(asio::buffer(msg));
    ASSERT_FALSE(read_until(ws, msg, got)) << "console " << i;
  }
  // Every slot given back, however long the session's end takes to reach the agent.
  void expect_slots_free() {
    for (int i = 0; i < 3000 && api_->stream_limiter().active() > 0; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    EXPECT_EQ(api_->stream_limiter().active(), 0u);
  }

  fs::path dir_;
  AgentProcess agent_;
  test_support::ManagerParts parts_;
  std::unique_ptr<ApiService> api_;
  HttpServerPtr server_;
  asio::io_context ioc_;
};

TEST_F(ConsoleRelayTest, ManyConsolesHoldNoThreadEachAndCarryDataBothWays) {
  std::vector<std::unique_ptr<Ws>> consoles(kConsoles);
  // One of each kind first: whatever the relay starts once (gRPC's callback threads) is
  // running before the count is taken.
  for (int i : {0, kSerial}) {
    consoles[i] = open(i);
    ASSERT_TRUE(consoles[i]) << "console " << i;
    ASSERT_NO_FATAL_FAILURE(round_trip(*consoles[i], i, "first"));
  }
  const size_t base = thread_count();
  for (int i = 0; i < kConsoles; ++i) {
    if (consoles[i]) continue;
    consoles[i] = open(i);
    ASSERT_TRUE(consoles[i]) << "console " << i;
    ASSERT_NO_FATAL_FAILURE(round_trip(*consoles[i], i, "first"));
  }
  // Every console carries data again, all open at once.
  for (int i = 0; i < kConsoles; ++i) ASSERT_NO_FATAL_FAILURE(round_trip(*consoles[i], i, "again"));
  const size_t all = thread_count();
  std::cout << "threads: " << base << " with 2 consoles open, " << all << " with " << kConsoles
            << "\n";
  EXPECT_LE(all, base + 8) << "threads with 2 consoles open: " << base << ", with " << kConsoles
                           << ": " << all;
  EXPECT_EQ(api_->stream_limiter().active(), size_t(kConsoles));

  // Full: the next console is refused (a raw handshake: Beast 1.74 does not always hand
  // back the refusal's status).
  {
    int fd = test_support::connect_from("127.0.0.1", server_->port());
    ASSERT_GE(fd, 0);
    test_support::send_all(fd,
                           "GET /api/v1/vms/c0/console HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                           "Authorization: Bearer " +
                               parts_.admin +
                               "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                               "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                               "Sec-WebSocket-Version: 13\r\n\r\n");
    auto refused = test_support::read_response(fd, std::chrono::seconds(10));
    ::close(fd);
    ASSERT_TRUE(refused);
    EXPECT_EQ(refused->status, 503u) << refused->body;
    EXPECT_NE(refused->body.find("open consoles"), std::string::npos) << refused->body;
  }

  // The clients close: each session ends cleanly and its slot comes back.
  for (auto& ws : consoles) {
    beast::error_code ec;
    ws->close(websocket::close_code::normal, ec);
    EXPECT_FALSE(ec) << ec.message();
  }
  consoles.clear();
  expect_slots_free();

  // As many again (the slots really are free), then the agent goes away: every console
  // ends with a normal closure from the manager, and the slots come back again.
  for (int i = 0; i < kConsoles; ++i) {
    consoles.push_back(open(i));
    ASSERT_TRUE(consoles.back()) << "console " << i;
    ASSERT_NO_FATAL_FAILURE(round_trip(*consoles.back(), i, "first"));
  }
  agent_.stop();
  for (int i = 0; i < kConsoles; ++i) {
    std::string rest;
    auto ec = read_until(*consoles[i], "never sent", rest);
    EXPECT_EQ(ec, websocket::error::closed) << "console " << i << ": " << ec.message();
    EXPECT_EQ(consoles[i]->reason().code, websocket::close_code::normal) << "console " << i;
  }
  expect_slots_free();
}

// The server stops with consoles open: stop() returns once every relay let go of its
// session, by then every slot is back (the tickets refer to the ApiService, which goes
// next), and each client's connection ends with the server.
TEST_F(ConsoleRelayTest, ServerStopEndsOpenConsolesAndWaitsForTheirRelays) {
  std::vector<std::unique_ptr<Ws>> consoles;
  for (int i : {0, 1, 2, kSerial, kSerial + 1}) {
    consoles.push_back(open(i));
    ASSERT_TRUE(consoles.back()) << "console " << i;
    ASSERT_NO_FATAL_FAILURE(round_trip(*consoles.back(), i, "first"));
  }
  EXPECT_EQ(api_->stream_limiter().active(), consoles.size());
  server_->stop();
  EXPECT_EQ(api_->stream_limiter().active(), 0u);
  server_.reset();  // the sockets close with the server's io_context
  for (auto& ws : consoles) {
    std::string rest;
    EXPECT_TRUE(read_until(*ws, "never sent", rest));
  }
}

}  // namespace
}  // namespace strata::manager
