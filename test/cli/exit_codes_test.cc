// The one error -> exit code mapping and the server error envelope decoding.
#include "strata/cli/exit_codes.h"

#include <gtest/gtest.h>

namespace strata::cli {
namespace {

TEST(ExitCodes, EveryErrorCodeMapsAsDocumented) {
  EXPECT_EQ(exit_code_for(ErrorCode::invalid_argument), ExitCode::invalid);
  EXPECT_EQ(exit_code_for(ErrorCode::payload_too_large), ExitCode::invalid);
  EXPECT_EQ(exit_code_for(ErrorCode::resource_exhausted), ExitCode::invalid);
  EXPECT_EQ(exit_code_for(ErrorCode::not_found), ExitCode::not_found);
  EXPECT_EQ(exit_code_for(ErrorCode::already_exists), ExitCode::conflict);
  EXPECT_EQ(exit_code_for(ErrorCode::conflict), ExitCode::conflict);
  EXPECT_EQ(exit_code_for(ErrorCode::failed_precondition), ExitCode::conflict);
  EXPECT_EQ(exit_code_for(ErrorCode::unauthenticated), ExitCode::unauthorized);
  EXPECT_EQ(exit_code_for(ErrorCode::permission_denied), ExitCode::unauthorized);
  EXPECT_EQ(exit_code_for(ErrorCode::unavailable), ExitCode::unavailable);
  EXPECT_EQ(exit_code_for(ErrorCode::internal), ExitCode::generic);
  EXPECT_EQ(exit_code_for(ErrorCode::deadline_exceeded), ExitCode::generic);
  EXPECT_EQ(to_int(ExitCode::invalid), 7);
  EXPECT_EQ(to_int(ExitCode::usage), 2);
}

TEST(ExitCodes, HttpStatusesWithoutEnvelope) {
  struct Case {
    unsigned status;
    ExitCode exit;
  } cases[] = {{400, ExitCode::invalid},      {401, ExitCode::unauthorized},
               {403, ExitCode::unauthorized}, {404, ExitCode::not_found},
               {409, ExitCode::conflict},     {413, ExitCode::invalid},
               {422, ExitCode::invalid},      {503, ExitCode::unavailable},
               {500, ExitCode::generic},      {418, ExitCode::generic}};
  for (const auto& c : cases) {
    Error e = error_from_response(c.status, "<html>oops</html>");
    EXPECT_EQ(exit_code_for(e), c.exit) << c.status;
    EXPECT_NE(e.message.find(std::to_string(c.status)), std::string::npos);
  }
}

TEST(ExitCodes, EnvelopeIsDecodedAndPrinted) {
  Error e = error_from_response(
      400, R"({"error":{"code":"invalid_argument","message":"memory_mib must be 64..1048576",)"
           R"("field":"memory_mib"}})");
  EXPECT_EQ(e.code, ErrorCode::invalid_argument);
  EXPECT_EQ(e.field, "memory_mib");
  EXPECT_EQ(format_error(e),
            "error: invalid_argument (memory_mib): memory_mib must be 64..1048576");

  // The envelope's code wins over the status (409 carries already_exists or conflict).
  Error dup = error_from_response(409, R"({"error":{"code":"already_exists","message":"x"}})");
  EXPECT_EQ(dup.code, ErrorCode::already_exists);
  EXPECT_EQ(format_error(dup), "error: already_exists: x");

  // An unknown code from a newer server falls back to the status.
  Error future = error_from_response(404, R"({"error":{"code":"gone_fishing","message":"m"}})");
  EXPECT_EQ(future.code, ErrorCode::not_found);
  EXPECT_EQ(future.message, "m");
}

TEST(ExitCodes, ErrorCodeNamesRoundTrip) {
  EXPECT_EQ(error_code_from_string("resource_exhausted"), ErrorCode::resource_exhausted);
  EXPECT_EQ(error_code_from_string("nope"), std::nullopt);
}

}  // namespace
}  // namespace strata::cli
