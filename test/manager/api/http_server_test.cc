// The Beast transport over loopback: request/response, 413 before reading a large body,
// query decoding, keep-alive.
#include "strata/manager/api/http_server.h"

#include <gtest/gtest.h>

#include "strata/enroll/http_client.h"

namespace strata::manager {
namespace {

using enroll::http_request;

TEST(ParseTarget, DecodesPathAndQuery) {
  std::string path;
  std::map<std::string, std::string> q;
  ASSERT_TRUE(parse_target("/a%20b/c?label=app%3Dweb&limit=5&flag", &path, &q));
  EXPECT_EQ(path, "/a b/c");
  EXPECT_EQ(q["label"], "app=web");
  EXPECT_EQ(q["limit"], "5");
  EXPECT_TRUE(q.count("flag"));
  EXPECT_FALSE(parse_target("/bad%zz", &path, &q));
  EXPECT_FALSE(parse_target("/bad%2", &path, &q));
}

TEST(HttpServer, ServesAndRejectsOversizedBodiesWith413) {
  auto server = start_http_server(
      [] {
        HttpServerConfig c;
        c.port = 0;
        return c;
      }(),
      [](std::string_view, std::string_view) { return size_t{1024 * 1024}; },
      [](HttpRequest& r) {
        return HttpResponse::json(200, {{"method", r.method},
                                        {"path", r.path},
                                        {"bytes", r.body.size()},
                                        {"auth", r.header("authorization")}});
      });
  ASSERT_TRUE(server) << server.error().to_string();
  std::string base = "http://127.0.0.1:" + std::to_string((*server)->port());
  auto ok = http_request(base, "POST", "/x/y?z=1", std::string(1000, 'a'), "tok");
  ASSERT_TRUE(ok) << ok.error().to_string();
  EXPECT_EQ(ok->status, 200u);
  auto j = nlohmann::json::parse(ok->body);
  EXPECT_EQ(j["bytes"], 1000);
  EXPECT_EQ(j["auth"], "Bearer tok");
  auto big = http_request(base, "POST", "/x", std::string(10 * 1024 * 1024, 'a'));
  ASSERT_TRUE(big) << big.error().to_string();
  EXPECT_EQ(big->status, 413u);
  EXPECT_EQ(nlohmann::json::parse(big->body)["error"]["code"], "payload_too_large");
  // The server still serves after the oversized request.
  auto after = http_request(base, "GET", "/after", "");
  ASSERT_TRUE(after);
  EXPECT_EQ(after->status, 200u);
  (*server)->stop();
}

}  // namespace
}  // namespace strata::manager
