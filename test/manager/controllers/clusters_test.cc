// Clusters and their CPU baseline on a real (in-memory SQLite) store and a simulated
// clock, with fixture inventories of several CPU generations (fixtures/cpu): the auto
// baseline follows the hosts (lowered by a weaker one, with an event), a fixed baseline
// refuses hosts that cannot offer it, the setting is checked against the hosts, the
// default cluster stays, and a VM's CPU comes from its host's cluster.
#include "strata/manager/controllers/clusters.h"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "strata/common/clock_wait.h"

namespace strata::manager {
namespace {

std::string inventory(const std::string& gen) {
  std::ifstream in(std::string(STRATA_MANAGER_FIXTURES) + "/cpu/" + gen + ".json");
  std::ostringstream ss;
  ss << in.rdbuf();
  EXPECT_FALSE(ss.str().empty()) << gen;
  return ss.str();
}

class ClustersTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = store::open_store("sqlite::memory:", store::StoreOptions{clock_, 1});
    ASSERT_TRUE(s) << s.error().to_string();
    store_ = std::move(*s);
    events_ = std::make_unique<EventLog>(*store_);
    clusters_ = std::make_unique<ClusterService>(*store_, *events_, clock_);
    ASSERT_TRUE(clusters_->ensure_default());
    ASSERT_TRUE(clusters_->ensure_default()) << "idempotent";
  }
  store::HostRecord add_host(const std::string& name, const std::string& gen,
                             const std::string& cluster = kDefaultCluster) {
    store::HostRecord h;
    h.name = name;
    h.address = "10.0.0." + std::to_string(++hosts_) + ":7443";
    h.state = "up";
    h.inventory = inventory(gen);
    h.cluster = cluster;
    auto made = store_->create_host(h);
    EXPECT_TRUE(made) << made.error().to_string();
    clusters_->invalidate(cluster);
    return *made;
  }
  std::vector<std::string> events(const std::string& action) {
    std::vector<std::string> out;
    auto all = store_->list_events(0, 1000);
    EXPECT_TRUE(all);
    for (const auto& e : *all)
      if (e.action == action) out.push_back(e.message);
    return out;
  }

  std::shared_ptr<SimulatedClock> clock_ = std::make_shared<SimulatedClock>();
  store::StorePtr store_;
  std::unique_ptr<EventLog> events_;
  std::unique_ptr<ClusterService> clusters_;
  int hosts_ = 0;
};

TEST_F(ClustersTest, AutoBaselineFollowsTheHostsAndSaysWhenItDrops) {
  EXPECT_EQ(clusters_->current(kDefaultCluster)->cpu_model, "") << "no hosts yet";
  auto h1 = add_host("h1", "cascadelake");
  add_host("h2", "skylake");
  auto c = clusters_->current(kDefaultCluster);
  ASSERT_TRUE(c) << c.error().to_string();
  EXPECT_EQ(c->cpu_model, "Skylake-Server-v4");
  EXPECT_EQ(*clusters_->cpu_model_for(h1), "Skylake-Server-v4");
  // A Haswell host joins: the baseline drops, and says so.
  add_host("h3", "haswell");
  EXPECT_EQ(clusters_->current(kDefaultCluster)->cpu_model, "Haswell-v4");
  auto changes = events("cluster.cpu_baseline");
  ASSERT_EQ(changes.size(), 2u);
  EXPECT_NE(changes.back().find("Skylake-Server-v4 -> Haswell-v4"), std::string::npos) << changes.back();
  EXPECT_NE(changes.back().find("h3 lacks"), std::string::npos) << changes.back();
}

TEST_F(ClustersTest, RecomputedOnTheClockWhenNotInvalidated) {
  auto h = add_host("h1", "skylake");
  EXPECT_EQ(clusters_->current(kDefaultCluster)->cpu_model, "Skylake-Server-v4");
  // The host's CPU is re-probed as older (its inventory changed, nobody invalidated).
  h.inventory = inventory("westmere");
  ASSERT_TRUE(store_->update_host(h));
  EXPECT_EQ(clusters_->current(kDefaultCluster)->cpu_model, "Skylake-Server-v4") << "cached";
  clock_->advance(ClusterService::kRecompute);
  EXPECT_EQ(clusters_->current(kDefaultCluster)->cpu_model, "Westmere-v1");
}

TEST_F(ClustersTest, FixedBaselineRefusesHostsThatCannotOfferIt) {
  auto c = clusters_->create("edge", "Skylake-Server-v4", "token:admin");
  ASSERT_TRUE(c) << c.error().to_string();
  EXPECT_EQ(c->cpu_model, "Skylake-Server-v4");
  EXPECT_TRUE(clusters_->admit("edge", "new", inventory("cascadelake")));
  auto refused = clusters_->admit("edge", "old", inventory("haswell"));
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, ErrorCode::failed_precondition);
  EXPECT_EQ(refused.error().field, "cluster");
  EXPECT_NE(refused.error().message.find("avx512"), std::string::npos) << refused.error().message;
  auto unknown = clusters_->admit("nope", "x", inventory("haswell"));
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.error().code, ErrorCode::invalid_argument);
  // An auto cluster takes anyone.
  EXPECT_TRUE(clusters_->admit(kDefaultCluster, "old", inventory("haswell")));
}

TEST_F(ClustersTest, SettingABaselineIsCheckedAgainstTheHosts) {
  add_host("h1", "skylake");
  add_host("h2", "haswell");
  auto too_high = clusters_->set_baseline(kDefaultCluster, "Skylake-Server-v4", "token:admin");
  ASSERT_FALSE(too_high);
  EXPECT_EQ(too_high.error().code, ErrorCode::failed_precondition);
  EXPECT_NE(too_high.error().message.find("h2"), std::string::npos) << too_high.error().message;
  auto lower = clusters_->set_baseline(kDefaultCluster, "Westmere-v1", "token:admin");
  ASSERT_TRUE(lower) << lower.error().to_string();
  EXPECT_EQ(lower->cpu_model, "Westmere-v1");
  EXPECT_EQ(clusters_->current(kDefaultCluster)->cpu_model, "Westmere-v1");
  EXPECT_FALSE(clusters_->set_baseline(kDefaultCluster, "max", "token:admin"))
      << "a baseline is a named model";
  EXPECT_FALSE(clusters_->set_baseline(kDefaultCluster, "Bad,model", "token:admin"));
  auto back = clusters_->set_baseline(kDefaultCluster, "auto", "token:admin");
  ASSERT_TRUE(back);
  EXPECT_EQ(back->cpu_model, "Haswell-v4");
}

TEST_F(ClustersTest, DefaultAndNonEmptyClustersStay) {
  EXPECT_FALSE(clusters_->remove(kDefaultCluster, "token:admin"));
  ASSERT_TRUE(clusters_->create("edge", "auto", "token:admin"));
  EXPECT_EQ(clusters_->create("edge", "auto", "token:admin").error().code, ErrorCode::already_exists);
  EXPECT_EQ(clusters_->create("Bad Name", "auto", "token:admin").error().field, "name");
  add_host("h1", "skylake", "edge");
  auto busy = clusters_->remove("edge", "token:admin");
  ASSERT_FALSE(busy);
  EXPECT_NE(busy.error().message.find("h1"), std::string::npos);
  auto h = store_->get_host_by_name("h1");
  h->cluster = kDefaultCluster;
  ASSERT_TRUE(store_->update_host(*h));
  EXPECT_TRUE(clusters_->remove("edge", "token:admin"));
  EXPECT_EQ(clusters_->list()->size(), 1u);
}

TEST_F(ClustersTest, ViewSaysWhichHostsOfferTheBaseline) {
  ASSERT_TRUE(clusters_->create("edge", "Westmere-v1", "token:admin"));
  add_host("h1", "skylake", "edge");
  // A host whose CPU was re-probed as too old after it joined is named, not hidden.
  store::HostRecord odd;
  odd.name = "h2";
  odd.address = "10.0.0.99:7443";
  odd.inventory = R"({"cpu_models": {"models": [{"name": "qemu64-v1", "usable": true,
      "feature_count": 10}, {"name": "Westmere-v1", "usable": false, "unavailable": ["aes"],
      "unavailable_count": 1}]}})";
  odd.cluster = "edge";
  ASSERT_TRUE(store_->create_host(odd));
  clusters_->invalidate("edge");
  auto v = clusters_->view("edge");
  ASSERT_TRUE(v) << v.error().to_string();
  ASSERT_EQ(v->hosts.size(), 2u);
  EXPECT_TRUE(v->hosts[0].offers);
  EXPECT_EQ(v->hosts[0].best_model, "Skylake-Server-v4");
  EXPECT_FALSE(v->hosts[1].offers);
  EXPECT_NE(v->hosts[1].why_not.find("aes"), std::string::npos);
  // Such a host starts new VMs with its own default rather than fail them.
  EXPECT_EQ(*clusters_->cpu_model_for(*store_->get_host_by_name("h2")), "");
  EXPECT_NE(v->cluster.cpu_reason.find("h2"), std::string::npos) << v->cluster.cpu_reason;
}

}  // namespace
}  // namespace strata::manager
