// The agent's TCP gRPC listener under mutual TLS, over a real loopback TCP connection with
// the credentials serve.cc and the manager's AgentClient build (pki/grpc_tls.h): only a
// client holding a client certificate of the manager's CA gets an answer; no certificate,
// another CA's certificate, a host (server-only) certificate, plaintext, or a client that
// trusts another CA all fail in the handshake.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <thread>

#include "memory_hypervisor.h"
#include "strata/agent/service/agent_service.h"
#include "strata/pki/certificate_authority.h"
#include "strata/pki/grpc_tls.h"
#include "strata/pki/pki.h"

namespace strata::agent::service {
namespace {

namespace fs = std::filesystem;
using pki::CertUsage;

class AgentTlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/strata-tls-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    auto ca = pki::CertificateAuthority::create("Strata manager CA");
    ASSERT_TRUE(ca);
    ca_ = std::make_unique<pki::CertificateAuthority>(std::move(*ca));
    // The agent's side of enrollment: own key, CSR, certificate signed by the manager's CA.
    auto key = pki::generate_key();
    ASSERT_TRUE(key);
    auto cert =
        ca_->sign_csr(*pki::make_csr(*key, "h1"), "h1", {"127.0.0.1"}, CertUsage::server, 30);
    ASSERT_TRUE(cert) << cert.error().to_string();
    host_ = {ca_->cert_pem(), *cert, *key};

    auto svc = AgentService::create(hv_, options("state"));
    ASSERT_TRUE(svc) << svc.error().to_string();
    service_ = std::move(*svc);
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", pki::server_credentials(host_), &port_);
    builder.RegisterService(service_.get());
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    ASSERT_GT(port_, 0);
  }
  void TearDown() override {
    if (server_) {
      service_->shutdown();
      server_->Shutdown();
    }
    fs::remove_all(dir_);
  }

  AgentServiceOptions options(const std::string& state) const {
    AgentServiceOptions opts;
    opts.state_dir = (dir_ / state).string();
    opts.agent_version = "test";
    opts.hostname = "h1";
    opts.accelerator = "tcg";
    return opts;
  }

  // One Health call through a fresh channel; the gRPC status code.
  grpc::StatusCode health(std::shared_ptr<grpc::ChannelCredentials> creds,
                          const std::string& host = "127.0.0.1") {
    auto channel = grpc::CreateChannel(host + ":" + std::to_string(port_), creds);
    auto stub = v1::AgentService::NewStub(channel);
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    v1::HealthRequest req;
    v1::HealthResponse resp;
    auto st = stub->Health(&ctx, req, &resp);
    if (st.ok()) {
      EXPECT_EQ(resp.hostname(), "h1");
    }
    return st.error_code();
  }

  pki::TlsIdentity client_of(const pki::CertificateAuthority& ca, CertUsage usage) {
    auto issued = ca.issue("stratad", {}, usage, 30);
    EXPECT_TRUE(issued);
    return {ca_->cert_pem(), issued->cert_pem, issued->key_pem};
  }

  fs::path dir_;
  testing::MemoryHypervisor hv_;
  std::unique_ptr<pki::CertificateAuthority> ca_;
  pki::TlsIdentity host_;
  std::unique_ptr<AgentService> service_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
};

TEST_F(AgentTlsTest, ManagerClientCertificateIsServed) {
  EXPECT_EQ(health(pki::channel_credentials(client_of(*ca_, CertUsage::client))),
            grpc::StatusCode::OK);
}

TEST_F(AgentTlsTest, NoClientCertificateFailsTheHandshake) {
  grpc::SslCredentialsOptions trust_only;
  trust_only.pem_root_certs = ca_->cert_pem();
  EXPECT_EQ(health(grpc::SslCredentials(trust_only)), grpc::StatusCode::UNAVAILABLE);
}

TEST_F(AgentTlsTest, ClientCertificateOfAnotherCaIsRefused) {
  auto other = pki::CertificateAuthority::create("Strata manager CA");
  ASSERT_TRUE(other);
  EXPECT_EQ(health(pki::channel_credentials(client_of(*other, CertUsage::client))),
            grpc::StatusCode::UNAVAILABLE);
}

TEST_F(AgentTlsTest, HostCertificateCannotActAsTheManager) {
  // Another host's certificate, same CA, but for servers only: a compromised host cannot
  // drive its neighbours' agents.
  EXPECT_EQ(health(pki::channel_credentials(client_of(*ca_, CertUsage::server))),
            grpc::StatusCode::UNAVAILABLE);
}

TEST_F(AgentTlsTest, MigrationCertificateCannotActAsTheManager) {
  // A host's migration certificate (same CA, clientAuth + serverAuth, given to its QEMUs
  // for the migration stream): refused by the agent's port like a host certificate.
  EXPECT_EQ(health(pki::channel_credentials(client_of(*ca_, CertUsage::migration))),
            grpc::StatusCode::UNAVAILABLE);
}

TEST_F(AgentTlsTest, PlaintextClientIsRefused) {
  EXPECT_EQ(health(grpc::InsecureChannelCredentials()), grpc::StatusCode::UNAVAILABLE);
}

TEST_F(AgentTlsTest, ManagerRefusesAnAgentItsCaDidNotSign) {
  auto other = pki::CertificateAuthority::create("impostor");
  ASSERT_TRUE(other);
  auto id = client_of(*ca_, CertUsage::client);
  id.ca_cert_pem = other->cert_pem();  // the manager trusts another CA than the agent's
  EXPECT_EQ(health(pki::channel_credentials(id)), grpc::StatusCode::UNAVAILABLE);
}

TEST_F(AgentTlsTest, ManagerChecksTheDialledNameAgainstTheSan) {
  // The certificate names 127.0.0.1; dialling it as "localhost" must not pass.
  EXPECT_EQ(health(pki::channel_credentials(client_of(*ca_, CertUsage::client)), "localhost"),
            grpc::StatusCode::UNAVAILABLE);
}

TEST_F(AgentTlsTest, ChannelDialledBeforeTheAgentServesRecovers) {
  // The manager may dial a host right after enrollment, before the agent serves.
  const int port = port_;
  service_->shutdown();
  server_->Shutdown();
  server_.reset();
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 200);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 2000);
  auto channel = grpc::CreateCustomChannel(
      "127.0.0.1:" + std::to_string(port),
      pki::channel_credentials(client_of(*ca_, CertUsage::client)), args);
  auto stub = v1::AgentService::NewStub(channel);
  auto call = [&] {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(500));
    v1::HealthRequest req;
    v1::HealthResponse resp;
    return stub->Health(&ctx, req, &resp).error_code();
  };
  EXPECT_EQ(call(), grpc::StatusCode::UNAVAILABLE);
  auto svc = AgentService::create(hv_, options("state2"));
  ASSERT_TRUE(svc);
  service_ = std::move(*svc);
  grpc::ServerBuilder builder;
  builder.AddListeningPort("127.0.0.1:" + std::to_string(port), pki::server_credentials(host_));
  builder.RegisterService(service_.get());
  server_ = builder.BuildAndStart();
  ASSERT_NE(server_, nullptr);
  grpc::StatusCode last = grpc::StatusCode::UNKNOWN;
  for (int i = 0; i < 40 && last != grpc::StatusCode::OK; ++i) {
    last = call();
    if (last != grpc::StatusCode::OK) std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
  EXPECT_EQ(last, grpc::StatusCode::OK);
}

}  // namespace
}  // namespace strata::agent::service
