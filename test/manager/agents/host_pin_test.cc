// The manager dials an enrolled TCP host (real AgentService under mutual TLS on loopback)
// and accepts only the certificate it signed for that host at enrollment: the CN must be
// the host's name and the certificate the pinned one. A deleted host's certificate is
// revoked that way: the re-enrolled host of the same name has a new pin, so an agent still
// serving the old certificate (a decommissioned or stolen machine at the same address) is
// refused in the handshake and never comes up. The CA chain is still checked.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>

#include "../../agent/service/memory_hypervisor.h"
#include "strata/agent/service/agent_service.h"
#include "strata/manager/agents/connection_manager.h"
#include "strata/pki/certificate_authority.h"
#include "strata/pki/grpc_tls.h"
#include "strata/pki/pki.h"

namespace strata::manager {
namespace {

namespace fs = std::filesystem;
using pki::CertUsage;

class HostPinTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/strata-pin-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    auto ca = pki::CertificateAuthority::create("Strata manager CA");
    ASSERT_TRUE(ca);
    ca_ = std::make_unique<pki::CertificateAuthority>(std::move(*ca));
    auto client = ca_->issue("stratad", {}, CertUsage::client, 30);
    ASSERT_TRUE(client);
    manager_ = std::make_shared<pki::TlsIdentity>(
        pki::TlsIdentity{ca_->cert_pem(), client->cert_pem, client->key_pem});
    auto s = store::open_store("sqlite::memory:", store::StoreOptions{system_clock(), 1});
    ASSERT_TRUE(s) << s.error().to_string();
    store_ = std::move(*s);
    events_ = std::make_unique<EventLog>(*store_);
  }
  void TearDown() override {
    if (server_) {
      service_->shutdown();
      server_->Shutdown();
    }
    fs::remove_all(dir_);
  }

  // What enrollment gives an agent: its own key, a certificate for `name` signed by the CA.
  pki::TlsIdentity host_identity(const std::string& name) {
    auto key = pki::generate_key();
    EXPECT_TRUE(key);
    auto cert =
        ca_->sign_csr(*pki::make_csr(*key, name), name, {"127.0.0.1"}, CertUsage::server, 30);
    EXPECT_TRUE(cert) << cert.error().to_string();
    return {ca_->cert_pem(), *cert, *key};
  }

  // An agent serving `id` on loopback TCP; its address.
  std::string serve(const pki::TlsIdentity& id) {
    agent::service::AgentServiceOptions opts;
    opts.state_dir = (dir_ / "state").string();
    opts.agent_version = "test";
    opts.hostname = "h1";
    opts.accelerator = "tcg";
    auto svc = agent::service::AgentService::create(hv_, opts);
    EXPECT_TRUE(svc);
    service_ = std::move(*svc);
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", pki::server_credentials(id), &port);
    builder.RegisterService(service_.get());
    server_ = builder.BuildAndStart();
    EXPECT_NE(server_, nullptr);
    return "127.0.0.1:" + std::to_string(port);
  }

  store::HostRecord add_host(const std::string& name, const std::string& address,
                             const std::string& fingerprint) {
    store::HostRecord h;
    h.name = name;
    h.address = address;
    h.cert_fingerprint = fingerprint;
    auto c = store_->create_host(h);
    EXPECT_TRUE(c) << c.error().to_string();
    return *c;
  }

  // The manager's view of the host after its first heartbeat.
  Liveness first_heartbeat(const store::HostRecord& h) {
    AgentClient::set_default_tls(manager_);
    ConnectionConfig c;
    c.heartbeat.interval = std::chrono::seconds(60);
    c.heartbeat.rpc_timeout = std::chrono::milliseconds(1500);
    c.startup_wait = std::chrono::seconds(20);
    ConnectionManager cm(*store_, *events_, system_clock(), c);
    EXPECT_TRUE(cm.start());
    Liveness l = cm.liveness(h.id);
    cm.stop();
    AgentClient::set_default_tls(nullptr);
    return l;
  }

  static std::string fingerprint(const pki::TlsIdentity& id) {
    return *pki::cert_fingerprint(id.cert_pem);
  }

  fs::path dir_;
  std::unique_ptr<pki::CertificateAuthority> ca_;
  std::shared_ptr<const pki::TlsIdentity> manager_;
  store::StorePtr store_;
  std::unique_ptr<EventLog> events_;
  agent::testing::MemoryHypervisor hv_;
  std::unique_ptr<agent::service::AgentService> service_;
  std::unique_ptr<grpc::Server> server_;
};

TEST_F(HostPinTest, TheEnrolledCertificateIsAccepted) {
  auto id = host_identity("h1");
  auto h = add_host("h1", serve(id), fingerprint(id));
  EXPECT_EQ(first_heartbeat(h), Liveness::up);
}

TEST_F(HostPinTest, ARevokedCertificateIsRefusedWhenDialled) {
  // h1 enrolled with `old`, was deleted (its pin went with its record) and enrolled again
  // with a new key: the machine still serving `old` at that address is not h1 any more.
  auto old = host_identity("h1");
  auto address = serve(old);
  auto renewed = host_identity("h1");
  ASSERT_NE(fingerprint(old), fingerprint(renewed));
  auto h = add_host("h1", address, fingerprint(renewed));
  EXPECT_NE(first_heartbeat(h), Liveness::up);

  // The same refusal for any call on a pinned client, not only the heartbeat.
  AgentClient client(address, pki::PeerPin{"h1", fingerprint(renewed)},
                     std::chrono::seconds(2), manager_);
  auto health = client.health(std::chrono::milliseconds(1500));
  ASSERT_FALSE(health);
  EXPECT_FALSE(client.list_vms());
  AgentClient right(address, pki::PeerPin{"h1", fingerprint(old)}, std::chrono::seconds(5),
                    manager_);
  EXPECT_TRUE(right.health(std::chrono::seconds(5)));
}

TEST_F(HostPinTest, AnotherHostsCertificateIsRefusedEvenWithoutAPin) {
  // A host enrolled before pins existed has no fingerprint; the CN still has to be its
  // name, so host h2's certificate (same CA, same address in its SAN) cannot answer as h1.
  auto other = host_identity("h2");
  auto h = add_host("h1", serve(other), "");
  EXPECT_NE(first_heartbeat(h), Liveness::up);
  AgentClient as_h2(h.address, pki::PeerPin{"h2", ""}, std::chrono::seconds(5), manager_);
  EXPECT_TRUE(as_h2.health(std::chrono::seconds(5)));
}

TEST_F(HostPinTest, AnUnpinnedHostIsPinnedOnFirstUseThenRefusesAnotherCertificate) {
  // h1 was enrolled before pins existed (no fingerprint in the store). Its first successful
  // connection pins the certificate it presented, with an audit event.
  auto first = host_identity("h1");
  auto h = add_host("h1", serve(first), "");
  EXPECT_EQ(first_heartbeat(h), Liveness::up);
  auto stored = store_->get_host(h.id);
  ASSERT_TRUE(stored);
  EXPECT_EQ(stored->cert_fingerprint, fingerprint(first));
  auto events = store_->list_events(0, 0);
  ASSERT_TRUE(events);
  int pinned = 0;
  for (const auto& e : *events)
    if (e.action == "host.cert_pinned") {
      ++pinned;
      EXPECT_EQ(e.target, "host/h1");
      EXPECT_NE(e.message.find(fingerprint(first)), std::string::npos) << e.message;
    }
  EXPECT_EQ(pinned, 1);
  EXPECT_EQ(first_heartbeat(*stored), Liveness::up) << "the pinned certificate still works";

  // Afterwards another certificate from the same CA with the same CN (a machine that got
  // one issued for h1 some other way) is refused, wherever it answers.
  service_->shutdown();
  server_->Shutdown();
  server_.reset();
  auto other = host_identity("h1");
  ASSERT_NE(fingerprint(other), fingerprint(first));
  stored = store_->get_host(h.id);
  ASSERT_TRUE(stored);
  stored->address = serve(other);
  auto moved = store_->update_host(*stored);
  ASSERT_TRUE(moved) << moved.error().to_string();
  EXPECT_NE(first_heartbeat(*moved), Liveness::up);
  EXPECT_EQ(store_->get_host(h.id)->cert_fingerprint, fingerprint(first)) << "pin unchanged";
}

TEST_F(HostPinTest, ACertificateOfAnotherCaIsRefusedWithTheRightName) {
  // The pin check adds to the CA chain check, it does not replace it: a certificate for
  // "h1" from another CA is refused even for a host without a pin.
  auto other = pki::CertificateAuthority::create("impostor CA");
  ASSERT_TRUE(other);
  auto key = pki::generate_key();
  auto cert =
      other->sign_csr(*pki::make_csr(*key, "h1"), "h1", {"127.0.0.1"}, CertUsage::server, 30);
  ASSERT_TRUE(cert);
  // The agent accepts the manager's client certificate (it trusts the real CA for clients),
  // so only the manager's check of the agent's chain can refuse.
  pki::TlsIdentity forged{ca_->cert_pem(), *cert, *key};
  auto h = add_host("h1", serve(forged), "");
  EXPECT_NE(first_heartbeat(h), Liveness::up);
  AgentClient pinned(h.address, pki::PeerPin{"h1", fingerprint(forged)}, std::chrono::seconds(2),
                     manager_);
  EXPECT_FALSE(pinned.health(std::chrono::milliseconds(1500)));
}

}  // namespace
}  // namespace strata::manager
