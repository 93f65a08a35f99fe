// The single ErrorCode -> HTTP status mapping and the error envelope.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "strata/manager/api/http.h"

namespace strata::manager {
namespace {

TEST(ErrorMapping, EveryCodeHasItsStatus) {
  EXPECT_EQ(http_status(ErrorCode::invalid_argument), 400u);
  EXPECT_EQ(http_status(ErrorCode::unauthenticated), 401u);
  EXPECT_EQ(http_status(ErrorCode::permission_denied), 403u);
  EXPECT_EQ(http_status(ErrorCode::not_found), 404u);
  EXPECT_EQ(http_status(ErrorCode::already_exists), 409u);
  EXPECT_EQ(http_status(ErrorCode::conflict), 409u);
  EXPECT_EQ(http_status(ErrorCode::failed_precondition), 409u);
  EXPECT_EQ(http_status(ErrorCode::payload_too_large), 413u);
  EXPECT_EQ(http_status(ErrorCode::resource_exhausted), 422u);
  EXPECT_EQ(http_status(ErrorCode::internal), 500u);
  EXPECT_EQ(http_status(ErrorCode::unavailable), 503u);
  EXPECT_EQ(http_status(ErrorCode::deadline_exceeded), 504u);
}

TEST(ErrorMapping, EnvelopeCarriesCodeMessageAndField) {
  auto r = error_response(Error{ErrorCode::invalid_argument, "memory_mib must be 16..", "memory_mib"});
  EXPECT_EQ(r.status, 400u);
  auto j = nlohmann::json::parse(r.body);
  EXPECT_EQ(j["error"]["code"], "invalid_argument");
  EXPECT_EQ(j["error"]["field"], "memory_mib");
  EXPECT_EQ(j["error"]["message"], "memory_mib must be 16..");
  auto r2 = error_response(Error{ErrorCode::not_found, "no vm", ""});
  EXPECT_FALSE(nlohmann::json::parse(r2.body)["error"].contains("field"));
}

TEST(Roles, ParseAndOrder) {
  EXPECT_EQ(role_from_string("operator"), Role::operator_);
  EXPECT_EQ(to_string(Role::operator_), "operator");
  EXPECT_FALSE(role_from_string("root"));
  EXPECT_LT(static_cast<int>(Role::viewer), static_cast<int>(Role::admin));
}

// A message or field holding bytes that are not UTF-8 (a percent-decoded path "/%ff" in a
// 404, a key cut at 64 bytes inside a multi-byte character) made dump() throw: an uncaught
// exception on an HTTP thread, found by fuzz/targets/http_target.cc.
TEST(ErrorMapping, EnvelopeOfInvalidUtf8IsValidJson) {
  auto r = error_response(Error{ErrorCode::not_found, "no route for /\xff\xc3", "k\xe2\x82"});
  EXPECT_EQ(r.status, 404u);
  auto j = nlohmann::json::parse(r.body, nullptr, false);
  ASSERT_FALSE(j.is_discarded());
  EXPECT_EQ(j["error"]["message"].get<std::string>().rfind("no route for /", 0), 0u);
  auto ok = HttpResponse::json(200, {{"name", "caf\xc3"}});
  EXPECT_FALSE(nlohmann::json::parse(ok.body, nullptr, false).is_discarded());
}

}  // namespace
}  // namespace strata::manager
