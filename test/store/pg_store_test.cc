// Runs the Store contract suite on a real PostgreSQL 15 (a throwaway cluster for the
// whole binary, a fresh database per test), plus PostgreSQL-only checks (reconnect
// after a server restart). Label: pg. Skips with the reason when no cluster can start.
#include "pg_cluster.h"
#include "store_contract.h"

namespace strata::store::testing {
namespace {

class PgBackend final : public TestBackend {
 public:
  std::string name() const override { return "postgres"; }
  Result<std::string> fresh_url() override {
    if (!started_) {
      started_ = true;
      auto c = PgCluster::start();
      if (c) {
        cluster_ = std::move(*c);
      } else {
        error_ = c.error();
      }
    }
    if (!cluster_) return tl::unexpected(error_);
    return cluster_->create_database();
  }
  PgCluster* cluster() { return cluster_.get(); }
  void stop() { cluster_.reset(); }

 private:
  bool started_ = false;
  std::unique_ptr<PgCluster> cluster_;
  Error error_;
};

PgBackend* backend() {
  static PgBackend b;
  return &b;
}

// Stops and removes the cluster at the end of the run (before static destruction).
class StopCluster : public ::testing::Environment {
 public:
  void TearDown() override { backend()->stop(); }
};
const auto* const kStop = ::testing::AddGlobalTestEnvironment(new StopCluster);  // gtest owns it

INSTANTIATE_TEST_SUITE_P(Postgres, StoreContractTest, ::testing::Values(backend()), backend_name);

class PgStoreTest : public StoreContractTest {};

TEST_P(PgStoreTest, RecoversAfterServerRestart) {
  for (int i = 0; i < 4; ++i) {  // fill the pool with connections
    STORE_ASSERT_OK(store_->create_host(host_named("h" + std::to_string(i))));
  }
  ASSERT_TRUE(backend()->cluster()->restart());
  // Reads retry once on a fresh connection: they succeed straight away.
  auto h = store_->get_host_by_name("h1");
  STORE_ASSERT_OK(h);
  // A write on a connection that lost the server may fail once with unavailable (it is
  // not retried: it might have committed); after that every connection was checked.
  for (int i = 0; i < 3; ++i) {
    auto w = store_->create_host(host_named("after-" + std::to_string(i)));
    if (!w) {
      EXPECT_EQ(w.error().code, ErrorCode::unavailable) << w.error().to_string();
    }
  }
  for (int i = 0; i < 10; ++i) {
    STORE_ASSERT_OK(store_->create_host(host_named("later-" + std::to_string(i))));
  }
  STORE_ASSERT_OK(store_->ping());
}

TEST_P(PgStoreTest, UnreachableServerIsUnavailable) {
  auto s = open_store("postgresql://strata@/nodb?host=/nonexistent-strata-dir&port=1");
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code, ErrorCode::unavailable) << s.error().to_string();
}

INSTANTIATE_TEST_SUITE_P(Postgres, PgStoreTest, ::testing::Values(backend()), backend_name);

}  // namespace
}  // namespace strata::store::testing
