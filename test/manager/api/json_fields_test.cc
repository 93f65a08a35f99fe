// Strict JSON bodies: malformed input, non-objects, unknown fields, wrong types, required.
#include "strata/manager/api/json_fields.h"

#include <gtest/gtest.h>

namespace strata::manager {
namespace {

using T = JsonType;

TEST(JsonFields, RejectsMalformedAndNonObjectBodies) {
  EXPECT_FALSE(parse_json_object("{\"a\":"));
  EXPECT_FALSE(parse_json_object("[1,2]"));
  EXPECT_FALSE(parse_json_object(""));
  EXPECT_TRUE(parse_json_object("", /*allow_empty=*/true));
  auto bad = parse_json_object("{nope}");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, ErrorCode::invalid_argument);
}

TEST(JsonFields, UnknownFieldIsNamed) {
  auto j = *parse_json_object(R"({"name":"a","colour":"red"})");
  auto st = check_fields(j, {{"name", T::string, true}});
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().field, "colour");
}

TEST(JsonFields, WrongTypeIsNamedWithPrefix) {
  auto j = *parse_json_object(R"({"size_bytes":"big"})");
  auto st = check_fields(j, {{"size_bytes", T::unsigned_integer}}, "disks[0].");
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().field, "disks[0].size_bytes");
  EXPECT_NE(st.error().message.find("non-negative integer"), std::string::npos);
}

TEST(JsonFields, NegativeAndFractionalAreNotUnsigned) {
  for (const char* body : {R"({"n":-1})", R"({"n":1.5})", R"({"n":1e30})"}) {
    auto st = check_fields(*parse_json_object(body), {{"n", T::unsigned_integer}});
    ASSERT_FALSE(st) << body;
    EXPECT_EQ(st.error().field, "n");
  }
  EXPECT_TRUE(check_fields(*parse_json_object(R"({"n":7})"), {{"n", T::unsigned_integer}}));
}

TEST(JsonFields, MissingRequiredIsNamed) {
  auto st = check_fields(*parse_json_object("{}"), {{"vcpus", T::unsigned_integer, true}});
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().field, "vcpus");
}

TEST(JsonFields, OptionalNullIsAccepted) {
  EXPECT_TRUE(check_fields(*parse_json_object(R"({"ttl_s":null})"), {{"ttl_s", T::integer}}));
}

}  // namespace
}  // namespace strata::manager
