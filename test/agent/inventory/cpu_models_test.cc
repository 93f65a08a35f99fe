// The CPU model probe's parser over a transcript recorded from QEMU 7.2 (Debian 12) under
// TCG (definitions cut to seven models, their aliases and the special ones), and malformed
// variants of it.
#include "strata/agent/cpu_models.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <sstream>

#include "agent/inventory/qmp_transcript.h"
#include "strata/agent/inventory_qemu.h"

namespace strata::agent {
namespace {

const CpuModel* find(const CpuModelProbe& p, const std::string& name) {
  for (const auto& m : p.models)
    if (m.name == name) return &m;
  return nullptr;
}

bool has(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

TEST(CpuModelProbeScript, DefinitionsThenOneExpansionPerModelEachWithId) {
  std::istringstream in(cpu_model_probe_script({"Westmere-v1", "Haswell-v1"}));
  std::vector<std::string> ids;
  std::string line;
  while (std::getline(in, line)) ids.push_back(nlohmann::json::parse(line).at("id"));
  EXPECT_EQ(ids, (std::vector<std::string>{"caps", "cpu-defs", "exp:Westmere-v1", "exp:Haswell-v1",
                                           "quit"}));
}

TEST(CpuModelTranscript, RealQemu72UnderTcg) {
  auto r = parse_cpu_model_transcript(transcript("cpu_models_tcg.txt"), "tcg");
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_EQ(r->accelerator, "tcg");
  // Concrete models only: no aliases ("Westmere"), no max/host/base.
  EXPECT_EQ(r->models.size(), 7u);
  EXPECT_EQ(find(*r, "Westmere"), nullptr);
  EXPECT_EQ(find(*r, "max"), nullptr);
  EXPECT_TRUE(std::is_sorted(r->models.begin(), r->models.end(),
                             [](const auto& a, const auto& b) { return a.name < b.name; }));
  // TCG in QEMU 7.2 offers Westmere (SSE4.2, AES) but not Haswell (no AVX2, FMA).
  const CpuModel* westmere = find(*r, "Westmere-v1");
  ASSERT_NE(westmere, nullptr);
  EXPECT_TRUE(westmere->usable);
  EXPECT_TRUE(westmere->unavailable.empty());
  EXPECT_TRUE(has(westmere->features, "sse4.2")) << "static expansion lists the model's features";
  EXPECT_TRUE(has(westmere->features, "aes"));
  EXPECT_FALSE(has(westmere->features, "avx"));
  const CpuModel* haswell = find(*r, "Haswell-v1");
  ASSERT_NE(haswell, nullptr);
  EXPECT_FALSE(haswell->usable);
  EXPECT_TRUE(has(haswell->unavailable, "x2apic"));
  EXPECT_TRUE(haswell->features.empty()) << "features are kept for usable models only";
  const CpuModel* nehalem = find(*r, "Nehalem-v1");
  ASSERT_NE(nehalem, nullptr);
  ASSERT_TRUE(nehalem->usable);
  // A newer generation is a superset of the older one's features.
  for (const auto& f : nehalem->features) EXPECT_TRUE(has(westmere->features, f)) << f;
  EXPECT_GT(westmere->features.size(), nehalem->features.size());
}

TEST(CpuModelTranscript, MissingExpansionMakesTheModelUnusable) {
  std::string t = transcript("cpu_models_tcg.txt");
  std::istringstream in(t);
  std::string line, cut;
  while (std::getline(in, line))
    if (line.find("\"exp:Westmere-v1\"") == std::string::npos) cut += line + "\n";
  auto r = parse_cpu_model_transcript(cut, "tcg");
  ASSERT_TRUE(r) << r.error().to_string();
  const CpuModel* westmere = find(*r, "Westmere-v1");
  ASSERT_NE(westmere, nullptr);
  EXPECT_FALSE(westmere->usable);
  EXPECT_EQ(westmere->unavailable, std::vector<std::string>{"expansion-failed"});
}

TEST(CpuModelTranscript, MalformedInputIsAnErrorNamingTheReply) {
  const std::string greet = R"({"QMP":{"version":{},"capabilities":[]}})" "\n";
  auto none = parse_cpu_model_transcript(greet, "tcg");
  ASSERT_FALSE(none);
  EXPECT_NE(none.error().field.find("cpu-defs"), std::string::npos);
  auto failed = parse_cpu_model_transcript(
      greet + R"({"error":{"class":"GenericError","desc":"x"},"id":"cpu-defs"})" "\n", "tcg");
  ASSERT_FALSE(failed);
  auto bad_feature = parse_cpu_model_transcript(
      greet +
          R"({"return":[{"name":"Evil-v1","unavailable-features":["a b;rm -rf /"]}],"id":"cpu-defs"})"
          "\n",
      "tcg");
  ASSERT_FALSE(bad_feature);
  // A model name QEMU would never use is skipped, never passed on.
  auto bad_name = parse_cpu_model_transcript(
      greet + R"({"return":[{"name":"x,y=z","unavailable-features":[]}],"id":"cpu-defs"})" "\n", "tcg");
  ASSERT_TRUE(bad_name) << bad_name.error().to_string();
  EXPECT_TRUE(bad_name->models.empty());
  EXPECT_FALSE(parse_cpu_model_transcript("not json\n", "tcg"));
}

TEST(CpuModelJson, UsableModelsCarryFeaturesOthersWhatTheyLack) {
  CpuModelProbe p;
  p.accelerator = "kvm";
  p.models.push_back({"Haswell-v1", false, false, {"a", "b", "c", "d", "e", "f", "g", "h", "i", "j"}, {}});
  p.models.push_back({"Nehalem-v1", true, false, {}, {"sse4.1", "sse4.2"}});
  auto j = to_json(p);
  EXPECT_EQ(j["accelerator"], "kvm");
  EXPECT_EQ(j["models"][0]["unavailable"].size(), 8u) << "at most 8 names shown";
  EXPECT_EQ(j["models"][0]["unavailable_count"], 10);
  EXPECT_FALSE(j["models"][0].contains("feature_count"));
  EXPECT_EQ(j["models"][1]["feature_count"], 2);
  EXPECT_FALSE(j["models"][1].contains("unavailable"));
  EXPECT_TRUE(j["models"][1]["usable"]);
}

TEST(QmpCapabilities, ConcreteCpuModelNamesFromTheProbe) {
  auto r = parse_qmp_probe_transcript(transcript("qemu-7.2-debian12.txt"));
  ASSERT_TRUE(r) << r.error().to_string();
  // Recorded before the probe asked for CPU definitions: the list is simply empty.
  EXPECT_TRUE(r->cpu_model_names.empty());
}

}  // namespace
}  // namespace strata::agent
