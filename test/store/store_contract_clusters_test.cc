// Store contract, part 4: clusters (unique names, CAS of the baseline, delete) and each
// host's cluster, on every backend.
#include "store_contract.h"

namespace strata::store::testing {
namespace {

TEST_P(StoreContractTest, ClustersRoundTripCasAndDelete) {
  ClusterRecord c;
  c.name = "default";
  auto a = store_->create_cluster(c);
  STORE_ASSERT_OK(a);
  EXPECT_EQ(a->resource_version, 1);
  EXPECT_EQ(a->cpu_baseline, "auto");
  EXPECT_EQ(a->cpu_model, "");
  STORE_ASSERT_CODE(store_->create_cluster(c), ErrorCode::already_exists);
  EXPECT_EQ(store_->create_cluster(c).error().field, "name");
  ClusterRecord bad;
  bad.name = "x";
  bad.cpu_baseline = "";
  STORE_ASSERT_CODE(store_->create_cluster(bad), ErrorCode::invalid_argument);

  ClusterRecord edge;
  edge.name = "edge";
  edge.cpu_baseline = "Westmere-v1";
  STORE_ASSERT_OK(store_->create_cluster(edge));
  auto all = store_->list_clusters();
  STORE_ASSERT_OK(all);
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ(all->front().name, "default") << "listed by name";
  EXPECT_EQ(all->back().cpu_baseline, "Westmere-v1");

  ClusterRecord up = *a;
  up.cpu_model = "Haswell-v4";
  up.cpu_reason = "every host offers it";
  auto u = store_->update_cluster(up);
  STORE_ASSERT_OK(u);
  EXPECT_EQ(u->resource_version, 2);
  EXPECT_EQ(store_->get_cluster_by_name("default")->cpu_model, "Haswell-v4");
  STORE_ASSERT_CODE(store_->update_cluster(up), ErrorCode::conflict);  // a stale version loses
  STORE_ASSERT_CODE(store_->get_cluster_by_name("nope"), ErrorCode::not_found);
  STORE_ASSERT_OK(store_->delete_cluster(store_->get_cluster_by_name("edge")->id, std::nullopt));
  EXPECT_EQ(store_->list_clusters()->size(), 1u);
}

TEST_P(StoreContractTest, HostsBelongToDefaultUnlessMoved) {
  auto h = store_->create_host(host_named("h1"));
  STORE_ASSERT_OK(h);
  EXPECT_EQ(h->cluster, "default");
  EXPECT_EQ(store_->get_host(h->id)->cluster, "default");
  HostRecord moved = *h;
  moved.cluster = "edge";
  auto u = store_->update_host(moved);
  STORE_ASSERT_OK(u);
  EXPECT_EQ(u->cluster, "edge");
  EXPECT_EQ(store_->get_host_by_name("h1")->cluster, "edge");
  moved = *u;
  moved.cluster = "";
  STORE_ASSERT_CODE(store_->update_host(moved), ErrorCode::invalid_argument);
}

}  // namespace
}  // namespace strata::store::testing
