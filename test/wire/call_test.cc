// wire::call, the unary call both AgentClients make, against an in-process AgentService:
// the response, the agent's own error recovered exactly, a transport failure named by the
// peer, and the deadline kept.
#include "strata/wire/call.h"

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <thread>

#include "strata/agent/v1/agent.grpc.pb.h"

namespace strata::wire {
namespace {

using namespace std::chrono_literals;
using Stub = v1::AgentService::Stub;

// Only GetVm: "web-1" exists, "slow" answers after 300 ms, any other name is not found.
class GetVmOnly final : public v1::AgentService::Service {
  grpc::Status GetVm(grpc::ServerContext*, const v1::GetVmRequest* req,
                     v1::GetVmResponse* resp) override {
    if (req->name() == "slow") std::this_thread::sleep_for(300ms);
    if (req->name() == "web-1" || req->name() == "slow") {
      resp->mutable_vm()->set_pid(7);
      return grpc::Status::OK;
    }
    return to_grpc_status(Error{ErrorCode::not_found, "no VM " + req->name(), "name"});
  }
};

class WireCallTest : public ::testing::Test {
 protected:
  void SetUp() override {
    grpc::ServerBuilder b;
    b.RegisterService(&service_);
    server_ = b.BuildAndStart();
    ASSERT_TRUE(server_);
    stub_ = v1::AgentService::NewStub(server_->InProcessChannel({}));
  }
  void TearDown() override {
    if (server_) server_->Shutdown();
  }
  Result<v1::GetVmResponse> get_vm(const std::string& name, std::chrono::milliseconds timeout) {
    v1::GetVmRequest req;
    req.set_name(name);
    return call(*stub_, &Stub::GetVm, req, timeout, "agent: ");
  }

  GetVmOnly service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<Stub> stub_;
};

TEST_F(WireCallTest, ReturnsTheResponse) {
  auto r = get_vm("web-1", 5s);
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_EQ(r->vm().pid(), 7);
}

TEST_F(WireCallTest, TheAgentsErrorComesBackExactly) {
  auto r = get_vm("web-2", 5s);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::not_found);
  EXPECT_EQ(r.error().message, "no VM web-2");  // the agent's words: no peer prefix
  EXPECT_EQ(r.error().field, "name");
}

TEST_F(WireCallTest, AFailureWithoutTheAgentsWordsNamesThePeer) {
  v1::ListVmsRequest req;  // not implemented by this service: gRPC answers, not the agent
  auto r = call(*stub_, &Stub::ListVms, req, 5s, "agent: ");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::internal);
  EXPECT_EQ(r.error().message.rfind("agent: ", 0), 0u) << r.error().message;
}

TEST_F(WireCallTest, KeepsTheDeadline) {
  const auto start = std::chrono::steady_clock::now();
  auto r = get_vm("slow", 50ms);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::deadline_exceeded) << r.error().to_string();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 250ms);
}

}  // namespace
}  // namespace strata::wire
