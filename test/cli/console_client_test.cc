// The console WebSocket client: --until across frame borders, timeout, input forwarding,
// --tail idle exit and a refused upgrade, against a minimal Beast server in the test.
#include "strata/cli/console_client.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <mutex>
#include <thread>

#include "test_server.h"

namespace strata::cli {
namespace {

using testing::Reply;
using testing::SeenRequest;
using testing::TestServer;
namespace websocket = testing::websocket;

Endpoint ep(const TestServer& s) { return parse_server_url(s.url()).value(); }

TEST(UntilMatcher, MatchesAcrossPieces) {
  UntilMatcher m("STRATA-READY");
  EXPECT_FALSE(m.feed("boot... STRA"));
  EXPECT_FALSE(m.feed("TA-"));
  EXPECT_TRUE(m.feed("READY\r\n"));
  EXPECT_TRUE(m.matched());
  UntilMatcher n("abc");
  EXPECT_FALSE(n.feed("ab"));
  EXPECT_FALSE(n.feed("xc"));
}

TEST(Console, UntilEndsTheSessionWhenTextArrives) {
  TestServer s([](const SeenRequest&) {
    Reply r;
    r.websocket = [](websocket::stream<testing::tcp::socket>& ws) {
      ws.binary(true);
      for (const char* chunk : {"[    0.1] booting\r\n", "STRATA-RE", "ADY\r\n"})
        ws.write(boost::asio::buffer(std::string(chunk)));
      boost::beast::flat_buffer b;
      boost::beast::error_code ec;
      ws.read(b, ec);  // until the client closes
    };
    return r;
  });
  std::string out;
  ConsoleOptions o;
  o.until = "STRATA-READY";
  o.timeout = std::chrono::seconds(30);
  auto end = run_console(ep(s), "tok", build_console("v1", 4096), o,
                         [&](std::string_view d) { out.append(d); });
  ASSERT_TRUE(end) << end.error().to_string();
  EXPECT_EQ(*end, ConsoleEnd::matched);
  EXPECT_EQ(out, "[    0.1] booting\r\nSTRATA-READY\r\n");
  auto seen = s.seen();
  EXPECT_EQ(seen[0].target, "/api/v1/vms/v1/console?tail=4096");
  EXPECT_EQ(seen[0].authorization, "Bearer tok");
}

TEST(Console, TimeoutWhenTextNeverComes) {
  TestServer s([](const SeenRequest&) {
    Reply r;
    r.websocket = [](websocket::stream<testing::tcp::socket>& ws) {
      ws.write(boost::asio::buffer(std::string("nothing useful\n")));
      boost::beast::flat_buffer b;
      boost::beast::error_code ec;
      ws.read(b, ec);
    };
    return r;
  });
  ConsoleOptions o;
  o.until = "NEVER";
  o.timeout = std::chrono::milliseconds(300);
  auto end = run_console(ep(s), "", build_console("v1", std::nullopt), o, [](std::string_view) {});
  ASSERT_FALSE(end);
  EXPECT_EQ(end.error().code, ErrorCode::deadline_exceeded);
  EXPECT_NE(end.error().message.find("NEVER"), std::string::npos);
}

TEST(Console, InputGoesToTheServerAndServerCloseEnds) {
  std::mutex mu;
  std::string received;
  TestServer s([&](const SeenRequest&) {
    Reply r;
    r.websocket = [&](websocket::stream<testing::tcp::socket>& ws) {
      boost::beast::flat_buffer b;
      std::string got;
      while (got.find("poweroff\n") == std::string::npos) {
        boost::beast::error_code ec;
        ws.read(b, ec);
        if (ec) return;
        got += boost::beast::buffers_to_string(b.data());
        b.consume(b.size());
      }
      {
        std::lock_guard l(mu);
        received = got;
      }
      ws.write(boost::asio::buffer(std::string("bye\n")));
      ws.close(websocket::close_code::normal);
    };
    return r;
  });
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  std::string line = "uname -a\npoweroff\n";
  ASSERT_EQ(::write(fds[1], line.data(), line.size()), static_cast<ssize_t>(line.size()));
  ::close(fds[1]);  // EOF after the input: the session continues until the server closes
  ConsoleOptions o;
  o.input_fd = fds[0];
  o.timeout = std::chrono::seconds(30);
  std::string out;
  auto end = run_console(ep(s), "", build_console("v1", std::nullopt), o,
                         [&](std::string_view d) { out.append(d); });
  ::close(fds[0]);
  ASSERT_TRUE(end) << end.error().to_string();
  EXPECT_EQ(*end, ConsoleEnd::server_closed);
  EXPECT_EQ(out, "bye\n");
  std::lock_guard l(mu);
  EXPECT_EQ(received, line);
}

TEST(Console, DetachKeyEndsTheSessionWithoutSendingIt) {
  std::mutex mu;
  std::string received;
  TestServer s([&](const SeenRequest&) {
    Reply r;
    r.websocket = [&](websocket::stream<testing::tcp::socket>& ws) {
      boost::beast::flat_buffer b;
      while (true) {
        boost::beast::error_code ec;
        ws.read(b, ec);
        if (ec) return;
        std::lock_guard l(mu);
        received += boost::beast::buffers_to_string(b.data());
        b.consume(b.size());
      }
    };
    return r;
  });
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  std::string keys = std::string("ls\n") + kDetachKey + "ignored";
  ASSERT_EQ(::write(fds[1], keys.data(), keys.size()), static_cast<ssize_t>(keys.size()));
  ConsoleOptions o;
  o.input_fd = fds[0];
  o.detach_key = true;
  o.timeout = std::chrono::seconds(30);
  auto end = run_console(ep(s), "", build_console("v1", std::nullopt), o, [](std::string_view) {});
  ::close(fds[0]);
  ::close(fds[1]);
  ASSERT_TRUE(end) << end.error().to_string();
  EXPECT_EQ(*end, ConsoleEnd::detached);
}

TEST(Console, TailExitsAfterSilence) {
  TestServer s([](const SeenRequest&) {
    Reply r;
    r.websocket = [](websocket::stream<testing::tcp::socket>& ws) {
      ws.write(boost::asio::buffer(std::string("old line 1\nold line 2\n")));
      boost::beast::flat_buffer b;
      boost::beast::error_code ec;
      ws.read(b, ec);
    };
    return r;
  });
  ConsoleOptions o;
  o.idle_exit = std::chrono::milliseconds(200);
  std::string out;
  auto end = run_console(ep(s), "", build_console("v1", 100), o,
                         [&](std::string_view d) { out.append(d); });
  ASSERT_TRUE(end) << end.error().to_string();
  EXPECT_EQ(*end, ConsoleEnd::idle);
  EXPECT_EQ(out, "old line 1\nold line 2\n");
}

TEST(Console, RefusedUpgradeCarriesTheServerError) {
  TestServer s([](const SeenRequest&) {
    return Reply{404, R"({"error":{"code":"not_found","message":"no VM named v9"}})"};
  });
  auto end = run_console(ep(s), "", build_console("v9", std::nullopt), ConsoleOptions{},
                         [](std::string_view) {});
  ASSERT_FALSE(end);
  EXPECT_EQ(end.error().code, ErrorCode::not_found) << end.error().to_string();
}

}  // namespace
}  // namespace strata::cli
