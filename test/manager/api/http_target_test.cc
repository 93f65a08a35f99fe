// Request target parsing: decoding, bad escapes, and inputs found by fuzzing.
#include "strata/manager/api/http_target.h"

#include <gtest/gtest.h>

namespace strata::manager {
namespace {

TEST(HttpTarget, DecodesPathAndQuery) {
  std::string path;
  std::map<std::string, std::string> q;
  ASSERT_TRUE(parse_target("/a%20b/c?label=app%3Dweb&limit=5&flag&x+y=1+2", &path, &q));
  EXPECT_EQ(path, "/a b/c");
  EXPECT_EQ(q.at("label"), "app=web");
  EXPECT_EQ(q.at("limit"), "5");
  EXPECT_EQ(q.at("flag"), "");
  EXPECT_EQ(q.at("x y"), "1 2");
}

TEST(HttpTarget, RejectsBadEscapesAnywhere) {
  std::string path;
  std::map<std::string, std::string> q;
  EXPECT_FALSE(parse_target("/bad%zz", &path, &q));
  EXPECT_FALSE(parse_target("/bad%2", &path, &q));
  EXPECT_FALSE(parse_target("/ok?k=%", &path, &q));
  EXPECT_FALSE(parse_target("/ok?%4=v", &path, &q));
  EXPECT_TRUE(parse_target("/ok?&&=v&", &path, &q));
  EXPECT_TRUE(q.empty());
}

}  // namespace
}  // namespace strata::manager
