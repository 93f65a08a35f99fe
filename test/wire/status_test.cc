// Error <-> grpc::Status mapping: every ErrorCode survives the round trip with its field.
#include "strata/wire/status.h"

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include "strata/agent/v1/agent.pb.h"

namespace strata::wire {
namespace {

TEST(GrpcStatus, CodesMapToTheDocumentedGrpcCodes) {
  EXPECT_EQ(to_grpc_code(ErrorCode::invalid_argument), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(to_grpc_code(ErrorCode::not_found), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(to_grpc_code(ErrorCode::already_exists), grpc::StatusCode::ALREADY_EXISTS);
  EXPECT_EQ(to_grpc_code(ErrorCode::conflict), grpc::StatusCode::ABORTED);
  EXPECT_EQ(to_grpc_code(ErrorCode::failed_precondition), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(to_grpc_code(ErrorCode::resource_exhausted), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(to_grpc_code(ErrorCode::unauthenticated), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(to_grpc_code(ErrorCode::permission_denied), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(to_grpc_code(ErrorCode::unavailable), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(to_grpc_code(ErrorCode::deadline_exceeded), grpc::StatusCode::DEADLINE_EXCEEDED);
  EXPECT_EQ(to_grpc_code(ErrorCode::payload_too_large), grpc::StatusCode::OUT_OF_RANGE);
  EXPECT_EQ(to_grpc_code(ErrorCode::internal), grpc::StatusCode::INTERNAL);
}

TEST(GrpcStatus, EveryCodeRoundTripsThroughCodeAlone) {
  for (ErrorCode c :
       {ErrorCode::invalid_argument, ErrorCode::not_found, ErrorCode::already_exists,
        ErrorCode::conflict, ErrorCode::failed_precondition, ErrorCode::resource_exhausted,
        ErrorCode::unauthenticated, ErrorCode::permission_denied, ErrorCode::unavailable,
        ErrorCode::deadline_exceeded, ErrorCode::payload_too_large, ErrorCode::internal}) {
    EXPECT_EQ(from_grpc_code(to_grpc_code(c)), c) << to_string(c);
  }
}

TEST(GrpcStatus, InvalidArgumentNamesTheFieldInTheMessage) {
  grpc::Status st =
      to_grpc_status(Error{ErrorCode::invalid_argument, "must be 1..288", "spec.vcpus"});
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(st.error_message(), "spec.vcpus: must be 1..288");
  Error back = from_grpc_status(st);
  EXPECT_EQ(back.code, ErrorCode::invalid_argument);
  EXPECT_EQ(back.field, "spec.vcpus");
  EXPECT_EQ(back.message, "must be 1..288");
}

TEST(GrpcStatus, FieldAlreadyInMessageIsNotRepeated) {
  grpc::Status st = to_grpc_status(Error{ErrorCode::invalid_argument, "name: too long", "name"});
  EXPECT_EQ(st.error_message(), "name: too long");
}

TEST(GrpcStatus, DetailsDisambiguateCodesSharingAGrpcCode) {
  // CANCELLED maps to unavailable when there are no details; with details the exact code wins.
  grpc::Status plain(grpc::StatusCode::CANCELLED, "gone");
  EXPECT_EQ(from_grpc_status(plain).code, ErrorCode::unavailable);
  grpc::Status with = to_grpc_status(Error{ErrorCode::payload_too_large, "big", "data"});
  EXPECT_EQ(from_grpc_status(with).code, ErrorCode::payload_too_large);
  EXPECT_EQ(from_grpc_status(with).field, "data");
}

TEST(GrpcStatus, GarbageDetailsFallBackToTheCode) {
  grpc::Status st(grpc::StatusCode::NOT_FOUND, "vm x", "\xff\xff\xff not a proto");
  Error e = from_grpc_status(st);
  EXPECT_EQ(e.code, ErrorCode::not_found);
  EXPECT_EQ(e.message, "vm x");
}

TEST(GrpcStatus, ATransportFailureNamesThePeerAndADetailWithoutMessageKeepsTheStatusOne) {
  // No details (the channel failed, not the service): the caller says which side it was.
  grpc::Status down(grpc::StatusCode::UNAVAILABLE, "failed to connect to all addresses");
  Error e = from_grpc_status(down, "agent: ");
  EXPECT_EQ(e.code, ErrorCode::unavailable);
  EXPECT_EQ(e.message, "agent: failed to connect to all addresses");
  // A service error is the service's own words: no prefix.
  EXPECT_EQ(from_grpc_status(to_grpc_status(Error{ErrorCode::not_found, "no VM x", ""}), "agent: ")
                .message,
            "no VM x");
  // Details with an empty message: the status's message stands in.
  agent::v1::ErrorDetail d;
  d.set_code("conflict");
  grpc::Status st(grpc::StatusCode::ABORTED, "busy", d.SerializeAsString());
  EXPECT_EQ(from_grpc_status(st).message, "busy");
  EXPECT_EQ(from_grpc_status(st).code, ErrorCode::conflict);
}

// A stream that its caller cancelled ended well; any other failure is an Error.
TEST(GrpcStatus, ACallsEndIsOkWhenItSucceededOrWasCancelled) {
  EXPECT_TRUE(call_end_status(grpc::Status::OK));
  EXPECT_TRUE(call_end_status(grpc::Status(grpc::StatusCode::CANCELLED, "Cancelled")));
  auto down = call_end_status(grpc::Status(grpc::StatusCode::UNAVAILABLE, "gone"), "agent: ");
  ASSERT_FALSE(down);
  EXPECT_EQ(down.error().code, ErrorCode::unavailable);
  EXPECT_EQ(down.error().message, "agent: gone");
  auto refused = call_end_status(to_grpc_status(Error{ErrorCode::not_found, "no VM x", "name"}));
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().field, "name");
}

// A missed deadline says the channel's state (a slow agent or one never reached); other
// failures are as without the channel.
TEST(GrpcStatus, AMissedDeadlineSaysTheChannelsState) {
  auto channel = grpc::CreateChannel("unix:/nonexistent/agent.sock",
                                     grpc::InsecureChannelCredentials());  // idle: never used
  Error late = from_grpc_status(
      grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED, "Deadline Exceeded"), "agent: ", *channel);
  EXPECT_EQ(late.code, ErrorCode::deadline_exceeded);
  EXPECT_EQ(late.message, "agent: Deadline Exceeded (channel idle)");
  Error down =
      from_grpc_status(grpc::Status(grpc::StatusCode::UNAVAILABLE, "gone"), "agent: ", *channel);
  EXPECT_EQ(down.message, "agent: gone");
}

}  // namespace
}  // namespace strata::wire
