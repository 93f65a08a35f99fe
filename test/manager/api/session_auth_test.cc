// Browser sessions: login sets an HttpOnly SameSite=Strict cookie (Secure over HTTPS) and
// answers a CSRF token; the cookie authenticates reads, unsafe methods need X-CSRF-Token,
// cross-origin requests are refused, logout and revoked tokens end sessions, and bearer
// tokens keep working without any of it.
#include "strata/manager/api/session_auth.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include "manager/api/response_header.h"
#include "manager_parts.h"
#include "raw_http.h"
#include "strata/manager/api/http_server.h"
#include "strata/manager/auth/sessions.h"

namespace strata::manager {
namespace {

using nlohmann::json;

class SessionAuthTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(parts_.build());
    sessions_ = std::make_unique<SessionStore>(parts_.clock);
    make_api(false);
  }
  void make_api(bool secure) {
    api_.reset();
    ApiDeps d = parts_.deps();
    d.sessions = sessions_.get();
    d.secure_cookies = secure;
    api_ = std::make_unique<ApiService>(std::move(d));
  }
  HttpResponse call(const std::string& method, const std::string& path, const std::string& body,
                    std::map<std::string, std::string> headers = {}) {
    HttpRequest r;
    r.method = method;
    r.path = path;
    r.body = body;
    r.headers = std::move(headers);
    r.headers["host"] = "127.0.0.1:7480";
    if (!body.empty()) r.headers["content-type"] = "application/json";
    return api_->dispatch(r);
  }
  // Logs in with `token`; sets cookie_ and csrf_.
  HttpResponse login(const std::string& token) {
    auto r = call("POST", "/api/v1/session", json{{"token", token}}.dump());
    if (r.status == 200) {
      std::string set = header(r, "Set-Cookie");
      cookie_ = set.substr(0, set.find(';'));
      csrf_ = json::parse(r.body)["csrf_token"];
    }
    return r;
  }
  std::map<std::string, std::string> with_cookie(std::map<std::string, std::string> h = {}) {
    h["cookie"] = "theme=dark; " + cookie_;
    return h;
  }
  std::string make_token(const std::string& name, const std::string& role) {
    auto r = call("POST", "/api/v1/tokens", json{{"name", name}, {"role", role}}.dump(),
                  {{"authorization", "Bearer " + parts_.admin}});
    EXPECT_EQ(r.status, 201u) << r.body;
    return json::parse(r.body)["token"];
  }

  test_support::ManagerParts parts_;
  std::unique_ptr<SessionStore> sessions_;
  std::unique_ptr<ApiService> api_;
  std::string cookie_, csrf_;
};

TEST_F(SessionAuthTest, LoginSetsAnHttpOnlyStrictCookieAndAnswersTheCsrfToken) {
  auto r = login(parts_.admin);
  ASSERT_EQ(r.status, 200u) << r.body;
  std::string set = header(r, "Set-Cookie");
  EXPECT_EQ(set.rfind("strata_session=", 0), 0u) << set;
  EXPECT_NE(set.find("; HttpOnly"), std::string::npos) << set;
  EXPECT_NE(set.find("; SameSite=Strict"), std::string::npos) << set;
  EXPECT_NE(set.find("; Path=/"), std::string::npos) << set;
  EXPECT_EQ(set.find("Secure"), std::string::npos) << set;
  EXPECT_EQ(set.find(parts_.admin), std::string::npos) << "the cookie is not the token";
  auto j = json::parse(r.body);
  EXPECT_EQ(j["role"], "admin");
  EXPECT_EQ(j["name"], "admin");
  EXPECT_EQ(csrf_.size(), 64u);
  EXPECT_EQ(r.body.find(parts_.admin), std::string::npos);

  auto me = call("GET", "/api/v1/session", "", with_cookie());
  ASSERT_EQ(me.status, 200u) << me.body;
  EXPECT_EQ(json::parse(me.body)["csrf_token"], csrf_);
  EXPECT_EQ(call("GET", "/api/v1/vms", "", with_cookie()).status, 200u);

  make_api(true);  // over HTTPS the cookie is Secure
  EXPECT_NE(header(login(parts_.admin), "Set-Cookie").find("; Secure"), std::string::npos);
}

TEST_F(SessionAuthTest, BadLoginsAre401Or400NamingTheField) {
  auto bad = login("sta_notatoken");
  EXPECT_EQ(bad.status, 401u);
  EXPECT_EQ(json::parse(bad.body)["error"]["field"], "token");
  EXPECT_TRUE(header(bad, "Set-Cookie").empty());
  EXPECT_EQ(call("POST", "/api/v1/session", R"({"tok":"x"})").status, 400u);
  EXPECT_EQ(call("POST", "/api/v1/session", "").status, 400u);
  EXPECT_EQ(call("GET", "/api/v1/vms", "", {{"cookie", "strata_session=nope"}}).status, 401u);
  EXPECT_EQ(call("POST", "/api/v1/session", json{{"token", parts_.admin}}.dump(),
                 {{"origin", "https://evil.example"}})
                .status,
            403u);
}

// Token guessing through the browser login: per client address, a burst then a few a
// second on the injected clock; above it 429 with Retry-After and the JSON envelope, before
// the body is read (admit: the server's header phase). Other addresses and routes are free.
TEST_F(SessionAuthTest, LoginIsRateLimitedPerAddressOnTheInjectedClock) {
  auto clock = std::make_shared<ManualClock>();
  api_.reset();
  ApiDeps d = parts_.deps();
  d.sessions = sessions_.get();
  d.clock = clock;
  d.login_rate = RateLimit{3, 120, 100};  // 3 at once, then 2 a second
  api_ = std::make_unique<ApiService>(std::move(d));
  auto admit = [&](const std::string& addr, const std::string& method = "POST",
                   const std::string& path = "/api/v1/session") {
    HttpRequest r;
    r.method = method;
    r.path = path;
    r.remote_address = addr;
    r.headers["host"] = "127.0.0.1:7480";
    return api_->admit(r);
  };
  for (int i = 0; i < 3; ++i) EXPECT_FALSE(admit("10.0.0.1")) << i;
  auto refused = admit("10.0.0.1");
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->status, 429u);
  EXPECT_EQ(header(*refused, "Retry-After"), "1");
  auto j = json::parse(refused->body);
  EXPECT_EQ(j["error"]["code"], "resource_exhausted") << refused->body;
  EXPECT_NE(j["error"]["message"].get<std::string>().find("/api/v1/session"), std::string::npos);
  EXPECT_FALSE(admit("10.0.0.2")) << "another address has its own bucket";
  auto get = admit("10.0.0.1", "GET");  // no cookie: 401, not 429
  EXPECT_TRUE(!get || get->status != 429u) << "only the login is limited";
  clock->advance(std::chrono::milliseconds(250));
  EXPECT_TRUE(admit("10.0.0.1")) << "a quarter of a second: half an attempt";
  clock->advance(std::chrono::milliseconds(300));
  EXPECT_FALSE(admit("10.0.0.1")) << "past half a second: one more attempt";
  EXPECT_TRUE(admit("10.0.0.1"));
  clock->advance(std::chrono::minutes(1));
  for (int i = 0; i < 3; ++i) EXPECT_FALSE(admit("10.0.0.1")) << "refilled to the burst " << i;
  EXPECT_TRUE(admit("10.0.0.1"));
}

TEST_F(SessionAuthTest, UnsafeMethodsNeedTheCsrfHeader) {
  ASSERT_EQ(login(parts_.admin).status, 200u);
  const std::string body = R"({"name":"web-1","vcpus":1,"memory_mib":64})";
  auto none = call("POST", "/api/v1/vms", body, with_cookie());
  EXPECT_EQ(none.status, 403u) << none.body;
  EXPECT_NE(json::parse(none.body)["error"]["message"].get<std::string>().find("X-CSRF-Token"),
            std::string::npos);
  EXPECT_EQ(call("POST", "/api/v1/vms", body, with_cookie({{"x-csrf-token", (csrf_[0] == '0' ? "1" : "0") + csrf_.substr(1)}}))
                .status,
            403u);
  EXPECT_EQ(call("DELETE", "/api/v1/session", "", with_cookie()).status, 403u);
  // With the header the request goes through to the route (no host: the scheduler's 422).
  auto ok = call("POST", "/api/v1/vms", body, with_cookie({{"x-csrf-token", csrf_}}));
  EXPECT_NE(ok.status, 403u) << ok.body;
  EXPECT_NE(ok.status, 401u) << ok.body;
  // A CSRF token of another session does not do.
  std::string mine = csrf_, my_cookie = cookie_;
  ASSERT_EQ(login(parts_.admin).status, 200u);
  EXPECT_EQ(call("POST", "/api/v1/vms", body, {{"cookie", my_cookie}, {"x-csrf-token", csrf_}})
                .status,
            403u);
}

TEST_F(SessionAuthTest, CrossOriginRequestsWithTheCookieAreRefused) {
  ASSERT_EQ(login(parts_.admin).status, 200u);
  EXPECT_EQ(call("GET", "/api/v1/vms", "", with_cookie({{"origin", "https://evil.example"}})).status,
            403u);
  EXPECT_EQ(call("GET", "/api/v1/vms/x/console", "",
                 with_cookie({{"origin", "http://127.0.0.1:7481"}}))
                .status,
            403u);
  EXPECT_EQ(call("GET", "/api/v1/vms", "", with_cookie({{"origin", "http://127.0.0.1:7480"}})).status,
            200u);
}

// The serial console's WebSocket handshake over the real server, as a browser sends it:
// the session cookie with a same-origin Origin is accepted (the route runs: here its host
// has no agent, so 503 naming the host), another origin is 403, a cookie without Origin is
// 403 (browsers always send one on a WebSocket), no cookie is 401, and a viewer's session
// is 403 (the console is an operator's). The browser test opens it for real.
TEST_F(SessionAuthTest, ConsoleWebSocketTakesTheCookieFromItsOwnOriginOnly) {
  store::HostRecord h;
  h.name = "h1";
  h.address = "unix:/nonexistent/h1";
  h.state = "up";
  h.accelerator = "tcg";
  h.cpu_threads = 4;
  h.memory_mib = 4096;
  ASSERT_TRUE(parts_.store->create_host(h));
  auto created = call("POST", "/api/v1/vms",
                      json{{"name", "c1"}, {"vcpus", 1}, {"memory_mib", 64}, {"start", false},
                           {"disks", {{{"name", "root"}, {"size_bytes", 1 << 20}, {"boot", true}}}}}
                          .dump(),
                      {{"authorization", "Bearer " + parts_.admin}});
  ASSERT_TRUE(created.status == 201u || created.status == 202u) << created.body;
  std::string viewer = make_token("view", "viewer");

  HttpServerConfig config;
  config.port = 0;
  auto server = start_http_server(
      config, [&](std::string_view m, std::string_view p) { return api_->body_limit(m, p); },
      [&](HttpRequest& r) { return api_->dispatch(r); });
  ASSERT_TRUE(server) << server.error().to_string();
  const std::string host = "127.0.0.1:" + std::to_string((*server)->port());
  // Both consoles, serial and graphical (VNC), take the same checks.
  for (std::string path : {"/api/v1/vms/c1/console", "/api/v1/vms/c1/vnc"}) {
    SCOPED_TRACE(path);
    auto handshake = [&](const std::string& cookie, const std::string& origin) {
      std::string req = "GET " + path + " HTTP/1.1\r\nHost: " + host +
                        "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n";
      if (!cookie.empty()) req += "Cookie: " + cookie + "\r\n";
      if (!origin.empty()) req += "Origin: " + origin + "\r\n";
      int fd = test_support::connect_from("127.0.0.1", (*server)->port());
      EXPECT_GE(fd, 0);
      test_support::send_all(fd, req + "\r\n");
      auto r = test_support::read_response(fd, std::chrono::seconds(5));
      ::close(fd);
      return r.value_or(test_support::RawResponse{});
    };

    ASSERT_EQ(login(parts_.admin).status, 200u);
    auto ok = handshake(cookie_, "http://" + host);
    EXPECT_EQ(ok.status, 503u) << ok.head << ok.body;
    EXPECT_NE(ok.body.find("host is not reachable"), std::string::npos) << ok.body;

    auto cross = handshake(cookie_, "https://evil.example");
    EXPECT_EQ(cross.status, 403u) << cross.body;
    EXPECT_NE(cross.body.find("cross-origin"), std::string::npos) << cross.body;
    auto other_port = handshake(cookie_, "http://127.0.0.1:1");
    EXPECT_EQ(other_port.status, 403u) << other_port.body;

    auto no_origin = handshake(cookie_, "");
    EXPECT_EQ(no_origin.status, 403u) << no_origin.body;
    EXPECT_NE(no_origin.body.find("same-origin Origin"), std::string::npos) << no_origin.body;

    auto no_cookie = handshake("", "http://" + host);
    EXPECT_EQ(no_cookie.status, 401u) << no_cookie.body;
    auto unknown = handshake("strata_session=0123456789abcdef", "http://" + host);
    EXPECT_EQ(unknown.status, 401u) << unknown.body;

    ASSERT_EQ(login(viewer).status, 200u);
    EXPECT_EQ(handshake(cookie_, "http://" + host).status, 403u);
  }
}

TEST_F(SessionAuthTest, RolesApplyToSessionsToo) {
  ASSERT_EQ(login(make_token("view", "viewer")).status, 200u);
  EXPECT_EQ(call("GET", "/api/v1/vms", "", with_cookie()).status, 200u);
  auto denied = call("POST", "/api/v1/vms", R"({"name":"a","vcpus":1,"memory_mib":64})",
                     with_cookie({{"x-csrf-token", csrf_}}));
  EXPECT_EQ(denied.status, 403u);
  EXPECT_NE(denied.body.find("viewer"), std::string::npos) << denied.body;
}

TEST_F(SessionAuthTest, LogoutAndRevokedTokensEndTheSession) {
  ASSERT_EQ(login(parts_.admin).status, 200u);
  auto out = call("DELETE", "/api/v1/session", "", with_cookie({{"x-csrf-token", csrf_}}));
  ASSERT_EQ(out.status, 200u) << out.body;
  EXPECT_NE(header(out, "Set-Cookie").find("Max-Age=0"), std::string::npos);
  EXPECT_EQ(call("GET", "/api/v1/vms", "", with_cookie()).status, 401u);

  std::string ops = make_token("ops", "operator");
  ASSERT_EQ(login(ops).status, 200u);
  EXPECT_EQ(call("GET", "/api/v1/vms", "", with_cookie()).status, 200u);
  auto list = json::parse(call("GET", "/api/v1/tokens", "",
                               {{"authorization", "Bearer " + parts_.admin}})
                              .body);
  std::string id;
  for (const auto& t : list["tokens"])
    if (t["name"] == "ops") id = t["id"];
  ASSERT_EQ(call("DELETE", "/api/v1/tokens/" + id, "",
                 {{"authorization", "Bearer " + parts_.admin}})
                .status,
            200u);
  EXPECT_EQ(call("GET", "/api/v1/vms", "", with_cookie()).status, 401u);
  EXPECT_EQ(sessions_->size(), 0u);
}

TEST_F(SessionAuthTest, BearerTokensWorkUnchangedWithoutCsrf) {
  auto r = call("POST", "/api/v1/vms", R"({"name":"web-1","vcpus":1,"memory_mib":64})",
                {{"authorization", "Bearer " + parts_.admin}, {"origin", "https://elsewhere"}});
  EXPECT_NE(r.status, 401u);
  EXPECT_NE(r.status, 403u) << r.body;
  auto me = call("GET", "/api/v1/session", "", {{"authorization", "Bearer " + parts_.admin}});
  EXPECT_EQ(me.status, 200u);
  EXPECT_EQ(json::parse(me.body)["csrf_token"], "");
}

TEST(SessionStore, IdleTimeoutMaxAgeAndCap) {
  auto clock = std::make_shared<ManualClock>();
  SessionStore store(clock, SessionConfig{std::chrono::seconds(60), std::chrono::seconds(300), 3});
  auto s = store.create("tok1");
  ASSERT_TRUE(s);
  EXPECT_NE(s->id, s->csrf);
  clock->advance(std::chrono::seconds(50));
  EXPECT_TRUE(store.find(s->id));  // touch
  clock->advance(std::chrono::seconds(50));
  EXPECT_TRUE(store.find(s->id));
  clock->advance(std::chrono::seconds(61));
  EXPECT_FALSE(store.find(s->id));  // idle
  auto t = store.create("tok1");
  for (int i = 0; i < 6; ++i) {
    clock->advance(std::chrono::seconds(50));
    bool alive = store.find(t->id).has_value();
    EXPECT_EQ(alive, i < 5) << i;  // max age 300 s
  }
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(store.create("t"));
  EXPECT_EQ(store.size(), 3u);
  EXPECT_FALSE(store.find(""));
}

TEST(Cookies, ValueParsing) {
  EXPECT_EQ(cookie_value("a=1; strata_session=abc; b=2", "strata_session"), "abc");
  EXPECT_EQ(cookie_value("strata_session=\"q\"", "strata_session"), "q");
  EXPECT_EQ(cookie_value("xstrata_session=abc", "strata_session"), std::nullopt);
  EXPECT_EQ(cookie_value("", "strata_session"), std::nullopt);
  EXPECT_TRUE(constant_time_equal("abc", "abc"));
  EXPECT_FALSE(constant_time_equal("abc", "abd"));
  EXPECT_FALSE(constant_time_equal("abc", "ab"));
}

}  // namespace
}  // namespace strata::manager
