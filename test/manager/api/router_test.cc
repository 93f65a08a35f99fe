// Router: literal vs parameter segments, 404 vs 405, parameter capture.
#include "strata/manager/api/router.h"

#include <gtest/gtest.h>

namespace strata::manager {
namespace {

Handler named(std::string name) {
  return [name](HttpRequest&) { return HttpResponse::text(200, name, "text/plain"); };
}

TEST(Router, MatchesLiteralsAndCapturesParams) {
  Router r;
  r.add("GET", "/api/v1/vms/{name}", {}, named("get"));
  r.add("POST", "/api/v1/vms/{name}/start", {}, named("start"));
  auto m = r.match("GET", "/api/v1/vms/web-1");
  ASSERT_NE(m.route, nullptr);
  EXPECT_EQ(m.route->pattern, "/api/v1/vms/{name}");
  EXPECT_EQ(m.params.at("name"), "web-1");
  m = r.match("POST", "/api/v1/vms/web-1/start");
  ASSERT_NE(m.route, nullptr);
  EXPECT_EQ(m.params.at("name"), "web-1");
}

TEST(Router, LiteralSegmentBeatsParameter) {
  Router r;
  r.add("POST", "/api/v1/hosts/{name}", {}, named("param"));
  r.add("POST", "/api/v1/hosts/enroll", {}, named("literal"));
  auto m = r.match("POST", "/api/v1/hosts/enroll");
  ASSERT_NE(m.route, nullptr);
  EXPECT_EQ(m.route->pattern, "/api/v1/hosts/enroll");
  m = r.match("POST", "/api/v1/hosts/h1");
  ASSERT_NE(m.route, nullptr);
  EXPECT_EQ(m.route->pattern, "/api/v1/hosts/{name}");
}

TEST(Router, DistinguishesNotFoundFromMethodNotAllowed) {
  Router r;
  r.add("GET", "/api/v1/vms", {}, named("list"));
  EXPECT_EQ(r.match("DELETE", "/api/v1/vms").status, 405u);
  EXPECT_EQ(r.match("GET", "/api/v1/nothing").status, 404u);
  EXPECT_EQ(r.match("GET", "/api/v1/vms/x/y/z").status, 404u);
}

TEST(Router, SplitPathDropsEmptySegments) {
  EXPECT_EQ(split_path("//a/b//c/"), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_TRUE(split_path("/").empty());
}

}  // namespace
}  // namespace strata::manager
