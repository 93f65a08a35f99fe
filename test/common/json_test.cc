// The strict JSON parser: depth and size limits, duplicate keys, malformed input.
#include "strata/common/json.h"

#include <string>

#include <gtest/gtest.h>

namespace strata {
namespace {

TEST(ParseJson, ParsesOrdinaryDocuments) {
  auto j = parse_json(R"({"name":"a","disks":[{"size":1},{"size":2}],"x":null,"f":1.5})");
  ASSERT_TRUE(j) << j.error().message;
  EXPECT_EQ((*j)["name"], "a");
  EXPECT_EQ((*j)["disks"][1]["size"], 2);
  EXPECT_TRUE((*j)["x"].is_null());
  EXPECT_DOUBLE_EQ((*j)["f"].get<double>(), 1.5);
  EXPECT_EQ(*parse_json("[]"), nlohmann::json::array());
  EXPECT_EQ(*parse_json("7"), 7);
}

TEST(ParseJson, RefusesDuplicateKeysNamingThem) {
  auto j = parse_json(R"({"name":"a","name":"b"})");
  ASSERT_FALSE(j);
  EXPECT_EQ(j.error().code, ErrorCode::invalid_argument);
  EXPECT_EQ(j.error().field, "name");
  EXPECT_NE(j.error().message.find("duplicate key 'name'"), std::string::npos);

  auto nested = parse_json(R"({"spec":{"disks":[{"a":1},{"b":1,"b":2}]}})");
  ASSERT_FALSE(nested);
  EXPECT_EQ(nested.error().field, "spec.disks[1].b");
  // The same key in sibling objects is fine.
  EXPECT_TRUE(parse_json(R"({"a":{"k":1},"b":{"k":2}})"));
}

TEST(ParseJson, RefusesDeepNestingWithoutRecursion) {
  // 1 MiB of '[' would overflow a recursive walk; the parser must refuse it early.
  std::string deep(1 << 20, '[');
  auto j = parse_json(deep);
  ASSERT_FALSE(j);
  EXPECT_NE(j.error().message.find("deeper than 32"), std::string::npos);

  std::string objects;
  for (int i = 0; i < 100000; ++i) objects += "{\"a\":";
  EXPECT_FALSE(parse_json(objects));

  std::string ok;
  for (int i = 0; i < 32; ++i) ok += '[';
  for (int i = 0; i < 32; ++i) ok += ']';
  EXPECT_TRUE(parse_json(ok));
  EXPECT_FALSE(parse_json("[" + ok + "]"));
  EXPECT_TRUE(parse_json("[" + ok + "]", JsonLimits{.max_depth = 33}));
}

TEST(ParseJson, RefusesTooManyValues) {
  std::string many = "[";
  for (int i = 0; i < 1000; ++i) many += "1,";
  many += "1]";
  EXPECT_TRUE(parse_json(many));
  auto j = parse_json(many, JsonLimits{.max_values = 500});
  ASSERT_FALSE(j);
  EXPECT_NE(j.error().message.find("more than 500 values"), std::string::npos);
}

TEST(ParseJson, ReportsMalformedInput) {
  for (const char* bad : {"", "{", "{\"a\":}", "[1,]", "{nope}", "nul", "\"abc", "1 2"}) {
    auto j = parse_json(bad);
    ASSERT_FALSE(j) << bad;
    EXPECT_EQ(j.error().code, ErrorCode::invalid_argument) << bad;
    EXPECT_NE(j.error().message.find("malformed JSON"), std::string::npos) << j.error().message;
  }
}

}  // namespace
}  // namespace strata
