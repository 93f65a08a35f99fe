// The CLI's HTTP client (requests, error envelopes, upload, SSE) and whole commands
// against a minimal Beast server in the test process.
#include "strata/cli/http_client.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "strata/cli/app.h"
#include "strata/cli/exit_codes.h"
#include "test_server.h"

namespace strata::cli {
namespace {

using nlohmann::json;
using testing::Reply;
using testing::SeenRequest;
using testing::TestServer;

HttpClient client_for(const TestServer& s, std::string token = "tok") {
  return HttpClient(parse_server_url(s.url()).value(), std::move(token), std::chrono::seconds(10));
}

TEST(ServerUrl, Parsing) {
  auto ep = parse_server_url("http://example.org:81/base/").value();
  EXPECT_EQ(ep.host, "example.org");
  EXPECT_EQ(ep.port, "81");
  EXPECT_EQ(ep.base_path, "/base");
  EXPECT_EQ(parse_server_url("http://h").value().port, "80");
  EXPECT_EQ(parse_server_url("http://[::1]:7480").value().host, "::1");
  EXPECT_TRUE(parse_server_url("https://h").value().tls);  // verified: https_client_test.cc
  EXPECT_FALSE(parse_server_url("h:7480"));
  EXPECT_FALSE(parse_server_url("http://h:port"));
}

TEST(HttpClient, SendsJsonWithBearerAndParsesTheAnswer) {
  TestServer s([](const SeenRequest& r) {
    return Reply{201, json{{"echo", json::parse(r.body)}, {"target", r.target}}.dump()};
  });
  auto c = client_for(s);
  auto body = c.call({"POST", "/api/v1/vms", json{{"name", "x"}}});
  ASSERT_TRUE(body) << body.error().to_string();
  EXPECT_EQ((*body)["echo"]["name"], "x");
  EXPECT_EQ((*body)["target"], "/api/v1/vms");
  auto seen = s.seen();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].authorization, "Bearer tok");
  EXPECT_EQ(seen[0].content_type, "application/json");
}

TEST(HttpClient, ErrorEnvelopeBecomesError) {
  TestServer s([](const SeenRequest&) {
    return Reply{422, R"({"error":{"code":"resource_exhausted","message":"no host fits"}})"};
  });
  auto c = client_for(s);
  auto r = c.call({"GET", "/x", std::nullopt});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::resource_exhausted);
  EXPECT_EQ(r.error().message, "no host fits");
}

TEST(HttpClient, ConnectionRefusedIsUnavailable) {
  std::string url;
  {
    TestServer s([](const SeenRequest&) { return Reply{}; });
    url = s.url();
  }  // closed: nothing listens there now
  HttpClient c(parse_server_url(url).value(), "", std::chrono::seconds(5));
  auto r = c.call({"GET", "/api/v1/version", std::nullopt});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::unavailable);
  EXPECT_EQ(exit_code_for(r.error()), ExitCode::unavailable);
}

TEST(HttpClient, UploadStreamsTheFileWithProgress) {
  std::string path = ::testing::TempDir() + "/strata_upload_test.bin";
  std::string content(3 * (1 << 20) + 123, 'x');
  for (size_t i = 0; i < content.size(); i += 4096) content[i] = static_cast<char>(i / 4096);
  std::ofstream(path, std::ios::binary) << content;
  TestServer s([](const SeenRequest& r) {
    return Reply{201, json{{"name", "img"}, {"size_bytes", r.body.size()}}.dump()};
  });
  auto c = client_for(s);
  std::vector<uint64_t> progress;
  auto r = c.upload({"PUT", "/api/v1/images/img", std::nullopt}, path,
                    [&](uint64_t sent, uint64_t total) {
                      EXPECT_EQ(total, content.size());
                      progress.push_back(sent);
                    });
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_EQ((*r)["size_bytes"], content.size());
  auto seen = s.seen();
  EXPECT_EQ(seen[0].method, "PUT");
  EXPECT_EQ(seen[0].content_type, "application/octet-stream");
  EXPECT_TRUE(seen[0].body == content);
  ASSERT_GE(progress.size(), 2u);
  EXPECT_EQ(progress.front(), 0u);
  EXPECT_EQ(progress.back(), content.size());
  std::remove(path.c_str());
}

TEST(HttpClient, EventStreamAcrossChunks) {
  TestServer s([](const SeenRequest&) {
    Reply r;
    r.content_type = "text/event-stream";
    r.stream_chunks = {
        ": stream start\n\n", "id: 1\nevent: vm.create\ndata: {\"seq\":1,",
        "\"action\":\"vm.create\"}\n\n: keep-alive\n\nid: 2\r\ndata: {\"seq\":2}\r\n\r\n"};
    return r;
  });
  auto c = client_for(s);
  std::vector<SseEvent> events;
  auto st = c.stream_events({"GET", "/api/v1/events/stream", std::nullopt}, [&](const SseEvent& e) {
    events.push_back(e);
    return true;
  });
  ASSERT_TRUE(st) << st.error().to_string();
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].id, "1");
  EXPECT_EQ(events[0].event, "vm.create");
  EXPECT_EQ(json::parse(events[0].data)["action"], "vm.create");
  EXPECT_EQ(events[1].event, "message");
  EXPECT_EQ(json::parse(events[1].data)["seq"], 2);
}

// Regression: events must be delivered while the stream stays open (stratad never closes
// it), not only once a read buffer fills up.
TEST(HttpClient, EventStreamDeliversWhileTheStreamStaysOpen) {
  TestServer s([](const SeenRequest&) {
    Reply r;
    r.content_type = "text/event-stream";
    r.stream_chunks = {": stream start\n\n", "id: 1\ndata: {\"seq\":1}\n\n"};
    r.hold_open = true;
    return r;
  });
  auto c = client_for(s);
  int seen = 0;
  auto st = c.stream_events({"GET", "/api/v1/events/stream", std::nullopt}, [&](const SseEvent&) {
    ++seen;
    return false;  // stop after the first event
  });
  ASSERT_TRUE(st) << st.error().to_string();
  EXPECT_EQ(seen, 1);
}

TEST(SseParser, MultiLineDataAndComments) {
  SseParser p;
  EXPECT_TRUE(p.feed("data: a\nda").empty());
  auto e = p.feed("ta: b\n\n");
  ASSERT_EQ(e.size(), 1u);
  EXPECT_EQ(e[0].data, "a\nb");
  EXPECT_TRUE(p.feed(": only a comment\n\n").empty());
}

// Whole commands: run_cli against the test server.
struct Cli {
  explicit Cli(std::string s) : server(std::move(s)) {}
  std::string server;
  int code = 0;
  std::string out, err;
  int operator()(std::vector<std::string> args) {
    std::ostringstream o, e;
    CliIo io(o, e);
    io.env = [this](const std::string& k) -> std::optional<std::string> {
      if (k == "STRATA_SERVER") return server;
      if (k == "STRATA_TOKEN") return std::string("envtok");
      return std::nullopt;
    };
    io.read_file = [](const std::string&) -> std::optional<std::string> { return std::nullopt; };
    args.insert(args.begin(), "strata");
    code = run_cli(args, io);
    out = o.str();
    err = e.str();
    return code;
  }
};

TEST(Commands, CreateAndWaitPollsTheTaskToTheEnd) {
  std::atomic<int> polls{0};
  TestServer s([&](const SeenRequest& r) {
    if (r.method == "POST" && r.target == "/api/v1/vms")
      return Reply{202, R"({"vm":{"name":"v1"},"task":{"id":"t-1","state":"pending"}})"};
    if (r.target == "/api/v1/tasks/t-1") {
      int n = ++polls;
      json t = {{"id", "t-1"},
                {"kind", "vm.create"},
                {"progress", n * 30},
                {"state", n < 3 ? "running" : "succeeded"},
                {"message", "step " + std::to_string(n)}};
      return Reply{200, t.dump()};
    }
    return Reply{404, R"({"error":{"code":"not_found","message":"no"}})"};
  });
  Cli cli(s.url());
  ASSERT_EQ(cli({"vm", "create", "v1", "--vcpus", "1", "--memory", "128M", "--wait"}), 0)
      << cli.err;
  EXPECT_EQ(polls.load(), 3);
  EXPECT_NE(cli.err.find("task t-1"), std::string::npos) << cli.err;
  EXPECT_NE(cli.err.find("100% step 3"), std::string::npos) << cli.err;  // plain lines (no TTY)
  EXPECT_EQ(s.seen()[0].authorization, "Bearer envtok");
}

TEST(Commands, FailedTaskAndServerErrorsMapToExitCodes) {
  TestServer s([&](const SeenRequest& r) {
    if (r.target == "/api/v1/vms/v1/start") return Reply{202, R"({"task":{"id":"t-2"}})"};
    if (r.target == "/api/v1/tasks/t-2")
      return Reply{200, R"({"id":"t-2","kind":"vm.start","state":"failed","message":"qemu died"})"};
    if (r.target == "/api/v1/vms/gone")
      return Reply{404, R"({"error":{"code":"not_found","message":"no VM named gone"}})"};
    if (r.target == "/api/v1/vms")
      return Reply{
          400, R"({"error":{"code":"invalid_argument","message":"too big","field":"memory_mib"}})"};
    return Reply{403, R"({"error":{"code":"permission_denied","message":"viewer"}})"};
  });
  Cli cli(s.url());
  EXPECT_EQ(cli({"vm", "start", "v1", "--wait"}), 1);
  EXPECT_NE(cli.err.find("qemu died"), std::string::npos) << cli.err;
  EXPECT_EQ(cli({"vm", "show", "gone"}), 3);
  EXPECT_NE(cli.err.find("error: not_found: no VM named gone"), std::string::npos) << cli.err;
  EXPECT_EQ(cli({"vm", "create", "x", "--vcpus", "1", "--memory", "1T"}), 7);
  EXPECT_NE(cli.err.find("error: invalid_argument (memory_mib): too big"), std::string::npos);
  EXPECT_EQ(cli({"token", "create", "t", "--role", "admin"}), 5);
}

TEST(Commands, ListsRenderAsTableJsonAndYaml) {
  TestServer s([&](const SeenRequest&) {
    return Reply{200, R"({"hosts":[{"name":"h1","state":"up","reachability":"up",
      "cluster":"default","accelerator":"tcg","cpu_threads":2,"memory_mib":4096,
      "labels":{"zone":"a"}}]})"};
  });
  Cli cli(s.url());
  ASSERT_EQ(cli({"host", "list"}), 0) << cli.err;
  EXPECT_EQ(cli.out,
            "NAME  STATE  REACHABILITY  CLUSTER  ACCEL  CPUS  MEMORY  AGENT  API  LABELS\n"
            "h1    up     up            default  tcg    2     4G      -      -    zone=a\n");
  ASSERT_EQ(cli({"host", "list", "-o", "json"}), 0);
  EXPECT_EQ(json::parse(cli.out)[0]["name"], "h1");
  ASSERT_EQ(cli({"host", "list", "-o", "yaml"}), 0);
  EXPECT_NE(cli.out.find("- accelerator: tcg\n  cluster: default\n  cpu_threads: 2\n"), std::string::npos) << cli.out;
}

TEST(Commands, EventsFollowPrintsJsonLines) {
  TestServer s([](const SeenRequest&) {
    Reply r;
    r.content_type = "text/event-stream";
    r.stream_chunks = {"id: 3\nevent: vm.start\ndata: {\"seq\":3,\"action\":\"vm.start\"}\n\n"};
    return r;
  });
  Cli cli(s.url());
  ASSERT_EQ(cli({"events", "--follow", "--after", "2", "-o", "json"}), 0) << cli.err;
  EXPECT_EQ(cli.out, "{\"action\":\"vm.start\",\"seq\":3}\n");
  EXPECT_EQ(s.seen()[0].target, "/api/v1/events/stream?after=2");
}

TEST(Commands, UnreachableServerExitsSix) {
  Cli cli("http://127.0.0.1:1");
  EXPECT_EQ(cli({"vm", "list"}), 6);
  EXPECT_NE(cli.err.find("error: unavailable"), std::string::npos) << cli.err;
}

}  // namespace
}  // namespace strata::cli
