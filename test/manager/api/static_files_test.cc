// The web console's files: index.html and hashed assets with their cache headers and CSP,
// application routes falling back to index.html, /api staying the API, and no path (raw
// over a socket too) reaching a file outside the folder.
#include "strata/manager/api/static_files.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "manager/api/response_header.h"
#include "manager_parts.h"
#include "raw_http.h"
#include "strata/manager/api/api_service.h"
#include "strata/manager/api/http_server.h"

namespace strata::manager {
namespace {

namespace fs = std::filesystem;

class StaticFilesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    base_ = fs::temp_directory_path() /
            ("strata-web-" + std::to_string(::getpid()) + "-" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(base_);
    fs::create_directories(base_ / "dist/assets");
    write("dist/index.html", "<!doctype html><title>Strata</title>INDEX");
    write("dist/assets/index-AbC123.js", "console.log('app')");
    write("dist/assets/index-AbC123.css", "body{}");
    write("secret.txt", "TOP-SECRET");
    fs::create_symlink(base_ / "secret.txt", base_ / "dist/assets/link.txt");
    auto f = StaticFiles::load((base_ / "dist").string());
    ASSERT_TRUE(f) << f.error().to_string();
    files_ = std::make_unique<StaticFiles>(std::move(*f));
  }
  void TearDown() override { fs::remove_all(base_); }
  void write(const std::string& rel, const std::string& text) {
    std::ofstream(base_ / rel) << text;
  }

  fs::path base_;
  std::unique_ptr<StaticFiles> files_;
};

TEST_F(StaticFilesTest, IndexAndAssetsWithCacheHeadersAndCsp) {
  auto index = files_->serve("/");
  EXPECT_EQ(index.status, 200u);
  EXPECT_NE(index.body.find("INDEX"), std::string::npos);
  EXPECT_EQ(index.content_type, "text/html; charset=utf-8");
  EXPECT_EQ(header(index, "Cache-Control"), "no-cache");
  std::string csp = header(index, "Content-Security-Policy");
  EXPECT_NE(csp.find("script-src 'self'"), std::string::npos) << csp;
  EXPECT_NE(csp.find("frame-ancestors 'none'"), std::string::npos) << csp;
  EXPECT_EQ(csp.find("unsafe-inline"), std::string::npos) << csp;
  EXPECT_EQ(header(index, "X-Content-Type-Options"), "nosniff");

  auto js = files_->serve("/assets/index-AbC123.js");
  EXPECT_EQ(js.status, 200u);
  EXPECT_EQ(js.body, "console.log('app')");
  EXPECT_EQ(js.content_type, "text/javascript; charset=utf-8");
  EXPECT_EQ(header(js, "Cache-Control"), "public, max-age=31536000, immutable");
  EXPECT_FALSE(header(js, "Content-Security-Policy").empty());
  EXPECT_EQ(files_->serve("/assets/index-AbC123.css").content_type, "text/css; charset=utf-8");
}

TEST_F(StaticFilesTest, ApplicationRoutesFallBackToIndexButMissingFilesAre404) {
  for (const char* route : {"/vms", "/vms/", "/vms/web-1", "/hosts/h1/metrics", "/login"}) {
    auto r = files_->serve(route);
    EXPECT_EQ(r.status, 200u) << route;
    EXPECT_NE(r.body.find("INDEX"), std::string::npos) << route;
    EXPECT_EQ(header(r, "Cache-Control"), "no-cache") << route;
  }
  for (const char* missing : {"/assets/index-old.js", "/assets/x", "/favicon.ico", "/a/b.png"}) {
    auto r = files_->serve(missing);
    EXPECT_EQ(r.status, 404u) << missing;
    EXPECT_FALSE(header(r, "Content-Security-Policy").empty()) << missing;
  }
}

TEST_F(StaticFilesTest, TraversalIsRefused) {
  for (const char* bad : {"/../secret.txt", "/assets/../../secret.txt", "/assets/..",
                          "/./index.html", "//etc/passwd", "/assets//index-AbC123.js",
                          "/..\\secret.txt", "/assets\\..\\..\\secret.txt"}) {
    auto r = files_->serve(bad);
    EXPECT_EQ(r.status, 404u) << bad;
    EXPECT_EQ(r.body.find("SECRET"), std::string::npos) << bad;
  }
  std::string with_nul("/assets/index-AbC123.js\0.html", 30);
  EXPECT_EQ(files_->serve(with_nul).status, 404u);
  // A symlink in the folder is not served; nothing is read from disk per request.
  EXPECT_EQ(files_->serve("/assets/link.txt").status, 404u);
  fs::remove(base_ / "dist/assets/index-AbC123.js");
  EXPECT_EQ(files_->serve("/assets/index-AbC123.js").status, 200u);
}

TEST_F(StaticFilesTest, RefusesAFolderWithoutIndex) {
  auto f = StaticFiles::load((base_ / "dist/assets").string());
  ASSERT_FALSE(f);
  EXPECT_NE(f.error().message.find("index.html"), std::string::npos);
  EXPECT_FALSE(StaticFiles::load((base_ / "dist").string(), 10));  // over the byte cap
}

TEST(ConsolePaths, ApiHealthAndMetricsAreNotTheConsole) {
  EXPECT_TRUE(is_console_path("/"));
  EXPECT_TRUE(is_console_path("/vms/web-1"));
  EXPECT_TRUE(is_console_path("/apis"));
  EXPECT_FALSE(is_console_path("/api"));
  EXPECT_FALSE(is_console_path("/api/v1/nothing"));
  EXPECT_FALSE(is_console_path("/healthz"));
  EXPECT_FALSE(is_console_path("/metrics"));
}

TEST(WebRoot, ConfiguredWinsThenInstalledThenBuildTree) {
  EXPECT_EQ(find_web_root("/some/dir", "/src/web/dist"), "/some/dir");
  EXPECT_EQ(find_web_root("", "/nonexistent/web/dist"), std::nullopt);
}

// Through the API and the real server: GET / is the console, /api/... stays JSON, and raw
// request targets with dot segments (plain or percent-encoded) never leave the folder.
TEST_F(StaticFilesTest, ServedByTheApiOverTheRealServer) {
  test_support::ManagerParts parts;
  ASSERT_NO_FATAL_FAILURE(parts.build());
  ApiDeps d = parts.deps();
  d.web = files_.get();
  ApiService api(std::move(d));
  HttpServerConfig config;
  config.port = 0;
  auto server = start_http_server(
      config,
      [&](std::string_view m, std::string_view p) { return api.body_limit(m, p); },
      [&](HttpRequest& r) { return api.dispatch(r); });
  ASSERT_TRUE(server) << server.error().to_string();
  uint16_t port = (*server)->port();
  auto get = [&](const std::string& target) {
    int fd = test_support::connect_from("127.0.0.1", port);
    EXPECT_GE(fd, 0);
    test_support::send_all(fd, "GET " + target + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    auto r = test_support::read_response(fd, std::chrono::seconds(5));
    ::close(fd);
    return r.value_or(test_support::RawResponse{});
  };
  auto root = get("/");
  EXPECT_EQ(root.status, 200u);
  EXPECT_NE(root.body.find("INDEX"), std::string::npos);
  EXPECT_NE(root.head.find("Content-Security-Policy: default-src 'self'"), std::string::npos)
      << root.head;
  auto api404 = get("/api/v1/nothing");
  EXPECT_EQ(api404.status, 404u);
  EXPECT_NE(api404.body.find("\"not_found\""), std::string::npos) << api404.body;
  EXPECT_EQ(get("/api/v1/version").status, 401u);  // still the API, still authenticated
  EXPECT_EQ(get("/healthz").status, 200u);
  for (const char* bad : {"/../secret.txt", "/assets/../../secret.txt",
                          "/assets/%2e%2e/%2e%2e/secret.txt", "/assets/..%2f..%2fsecret.txt",
                          "/%2e%2e/secret.txt", "/assets/link.txt/../../../secret.txt"}) {
    auto r = get(bad);
    EXPECT_NE(r.status, 200u) << bad;
    EXPECT_EQ(r.body.find("SECRET"), std::string::npos) << bad;
  }
  (*server)->stop();
}

}  // namespace
}  // namespace strata::manager
