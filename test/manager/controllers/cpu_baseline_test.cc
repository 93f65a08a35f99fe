// The cluster CPU baseline over fixture inventories of five CPU generations (Westmere,
// Haswell, Skylake, Cascade Lake, EPYC Rome; made from QEMU 7.2's model definitions by
// test/manager/fixtures/cpu/make_fixtures.py), and the scheduler's "can this host run the
// VM's CPU" check.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "strata/manager/controllers/cpu_models.h"
#include "strata/sched/cpu_baseline.h"

namespace strata::manager {
namespace {

sched::HostCpu fixture(const std::string& gen) {
  std::ifstream in(std::string(STRATA_MANAGER_FIXTURES) + "/cpu/" + gen + ".json");
  std::ostringstream ss;
  ss << in.rdbuf();
  EXPECT_FALSE(ss.str().empty()) << gen;
  return host_cpu("h-" + gen, ss.str());
}

std::vector<sched::HostCpu> hosts(std::initializer_list<const char*> gens) {
  std::vector<sched::HostCpu> out;
  for (const char* g : gens) out.push_back(fixture(g));
  return out;
}

TEST(HostCpu, ReadsTheAgentsCompactCpuModels) {
  auto h = fixture("haswell");
  EXPECT_TRUE(h.probed);
  EXPECT_EQ(h.accelerator, "kvm");
  EXPECT_TRUE(h.usable.count("Haswell-v4"));
  EXPECT_GT(h.usable.at("Haswell-v4"), h.usable.at("Westmere-v1"));
  ASSERT_TRUE(h.lacking.count("Broadwell-v4"));
  EXPECT_EQ(h.lacking.at("Broadwell-v4"),
            (std::vector<std::string>{"3dnowprefetch", "adx", "rdseed", "smap"}));
  EXPECT_EQ(h.signature.size(), 64u);
  EXPECT_NE(h.signature, fixture("skylake").signature);
  EXPECT_EQ(h.signature, fixture("haswell").signature);
}

TEST(HostCpu, MalformedOrOldInventoriesAreNotProbed) {
  EXPECT_FALSE(host_cpu("a", "not json").probed);
  EXPECT_FALSE(host_cpu("a", "{}").probed);
  EXPECT_FALSE(host_cpu("a", R"({"cpu_models": null})").probed);
  auto odd = host_cpu("a", R"({"cpu_models": {"models": [1, {"name": 5}, {"name": "X-v1",
      "usable": true, "feature_count": -3}]}})");
  EXPECT_TRUE(odd.probed);
  ASSERT_EQ(odd.usable.size(), 1u);
  EXPECT_EQ(odd.usable.at("X-v1"), 0u) << "a bad count ranks lowest, it is not trusted";
}

TEST(CpuBaseline, TheNewestGenerationEveryHostOffers) {
  auto b = sched::compute_baseline(hosts({"haswell", "skylake", "cascadelake"}));
  EXPECT_EQ(b.model, "Haswell-v4");
  // The reason says what keeps it from being higher, naming the host and its gap.
  EXPECT_NE(b.reason.find("all 3 hosts"), std::string::npos) << b.reason;
  EXPECT_NE(b.reason.find("h-haswell lacks"), std::string::npos) << b.reason;

  EXPECT_EQ(sched::compute_baseline(hosts({"skylake", "cascadelake"})).model, "Skylake-Server-v4");
  EXPECT_EQ(sched::compute_baseline(hosts({"westmere", "haswell", "skylake"})).model, "Westmere-v1");
  // One host: its best model (the later version wins a tie in features).
  EXPECT_EQ(sched::compute_baseline(hosts({"cascadelake"})).model, "Cascadelake-Server-v4");
}

TEST(CpuBaseline, IntelAndAmdShareAnOlderModel) {
  auto b = sched::compute_baseline(hosts({"haswell", "epyc-rome"}));
  EXPECT_EQ(b.model, "Westmere-v1") << b.reason;
  EXPECT_NE(b.reason.find("would need"), std::string::npos) << b.reason;
}

TEST(CpuBaseline, HostsThatReportedNoModelsAreLeftOutAndNamed) {
  auto list = hosts({"skylake"});
  sched::HostCpu old;
  old.host = "h-old";
  list.push_back(old);
  auto b = sched::compute_baseline(list);
  EXPECT_EQ(b.model, "Skylake-Server-v4");
  EXPECT_NE(b.reason.find("h-old"), std::string::npos) << b.reason;
  EXPECT_EQ(sched::compute_baseline({old}).model, "");
  EXPECT_EQ(sched::compute_baseline({}).model, "");
}

TEST(CpuBaseline, HostsWithNothingInCommonHaveNoBaseline) {
  sched::HostCpu a, b;
  a.host = "a";
  a.probed = true;
  a.usable["X-v1"] = 10;
  b.host = "b";
  b.probed = true;
  b.usable["Y-v1"] = 10;
  auto r = sched::compute_baseline({a, b});
  EXPECT_EQ(r.model, "");
  EXPECT_NE(r.reason.find("share no named CPU model"), std::string::npos) << r.reason;
}

TEST(CpuOffer, NamedModelsByProbeHostDependentOnesBySignature) {
  auto haswell = fixture("haswell");
  auto skylake = fixture("skylake");
  EXPECT_FALSE(sched::cannot_offer(skylake, "Haswell-v4"));
  auto why = sched::cannot_offer(haswell, "Skylake-Server-v4");
  ASSERT_TRUE(why);
  EXPECT_NE(why->find("avx512f"), std::string::npos) << *why;
  EXPECT_NE(why->find("more"), std::string::npos) << "the total is said: " << *why;
  EXPECT_TRUE(sched::cannot_offer(haswell, "NoSuchModel-v9"));
  // "max"/"host" were the CPU of the host the VM started on: the same CPU only.
  EXPECT_FALSE(sched::cannot_offer(haswell, "max", haswell.signature));
  EXPECT_TRUE(sched::cannot_offer(skylake, "max", haswell.signature));
  EXPECT_FALSE(sched::cannot_offer(skylake, "", ""));
  sched::HostCpu unprobed;
  EXPECT_TRUE(sched::cannot_offer(unprobed, "Westmere-v1"));
}

}  // namespace
}  // namespace strata::manager
