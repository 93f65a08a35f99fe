// The QMP capability parser over transcripts recorded from QEMU 7.2 (Debian 12) on a
// development machine, and malformed variants of them.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "agent/inventory/qmp_transcript.h"
#include "strata/agent/inventory_qemu.h"

namespace strata::agent {
namespace {

TEST(QmpProbeScript, OneCommandPerLineEachWithId) {
  std::istringstream in(qmp_probe_script());
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    auto j = nlohmann::json::parse(line);
    EXPECT_TRUE(j.contains("execute")) << line;
    EXPECT_TRUE(j.contains("id")) << line;
    ++n;
  }
  EXPECT_GE(n, 5);
  EXPECT_EQ(nlohmann::json::parse(qmp_probe_script().substr(0, qmp_probe_script().find('\n')))["execute"],
            "qmp_capabilities");
}

TEST(QmpTranscript, RealQemu72) {
  std::string t = transcript("qemu-7.2-debian12.txt");
  ASSERT_FALSE(t.empty());
  auto r = parse_qmp_probe_transcript(t);
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_EQ(r->version, "7.2.22");
  EXPECT_EQ(r->package, "Debian 1:7.2+dfsg-7+deb12u18+b3");
  EXPECT_GT(r->machines.size(), 30u);
  EXPECT_TRUE(std::is_sorted(r->machines.begin(), r->machines.end(),
                             [](const auto& a, const auto& b) { return a.name < b.name; }));
  const QemuMachineType* q35 = r->find_machine("q35");
  ASSERT_NE(q35, nullptr);
  EXPECT_EQ(q35->name, "pc-q35-7.2");
  EXPECT_FALSE(q35->is_default);
  const QemuMachineType* pc = r->find_machine("pc");
  ASSERT_NE(pc, nullptr);
  EXPECT_EQ(pc->name, "pc-i440fx-7.2");
  EXPECT_TRUE(pc->is_default);
  EXPECT_EQ(pc->cpu_max, 255);
  int defaults = 0;
  for (const auto& m : r->machines) defaults += m.is_default;
  EXPECT_EQ(defaults, 1);
  EXPECT_EQ(r->find_machine("pc-q35-7.2"), q35);
  EXPECT_EQ(r->find_machine("virt"), nullptr);
  EXPECT_EQ(r->accelerators, (std::vector<std::string>{"kvm", "tcg"}));
  EXPECT_FALSE(r->has_query_accelerators);  // CommandNotFound in 7.2
  EXPECT_TRUE(r->kvm_present);
  EXPECT_TRUE(r->sandbox);  // recorded query-command-line-options(sandbox)

  nlohmann::json j = to_json(*r);
  EXPECT_EQ(j["version"], "7.2.22");
  EXPECT_EQ(j["sandbox"], true);
  EXPECT_EQ(j["machines"].size(), r->machines.size());
}

// A QEMU built without seccomp answers "invalid option name"; one whose -sandbox lacks a
// parameter the agent sets is as good as none; a transcript without the reply, too.
TEST(QemuCapsTest, SandboxMissingOrIncompleteIsReported) {
  std::string t = transcript("qemu-7.2-debian12.txt");
  const std::string ok_line = R"("option": "sandbox"}], "id": "sandbox"})";
  size_t at = t.find(ok_line);
  ASSERT_NE(at, std::string::npos);
  size_t begin = t.rfind('\n', at) + 1, end = t.find('\n', at) + 1;
  auto with_line = [&](const std::string& line) {
    return t.substr(0, begin) + line + t.substr(end);
  };
  auto no_seccomp = parse_qmp_probe_transcript(with_line(
      R"({"id": "sandbox", "error": {"class": "GenericError", "desc": "invalid option name: sandbox"}})"
      "\n"));
  ASSERT_TRUE(no_seccomp) << no_seccomp.error().to_string();
  EXPECT_FALSE(no_seccomp->sandbox);
  auto partial = parse_qmp_probe_transcript(with_line(
      R"({"return": [{"parameters": [{"name": "enable", "type": "boolean"}], "option": "sandbox"}], "id": "sandbox"})"
      "\n"));
  ASSERT_TRUE(partial) << partial.error().to_string();
  EXPECT_FALSE(partial->sandbox);
  auto absent = parse_qmp_probe_transcript(with_line(""));
  ASSERT_TRUE(absent) << absent.error().to_string();
  EXPECT_FALSE(absent->sandbox);
}

void expect_rejected(const std::string& text, const std::string& field_part) {
  auto r = parse_qmp_probe_transcript(text);
  ASSERT_FALSE(r) << "accepted: " << text.substr(0, 80);
  EXPECT_EQ(r.error().code, ErrorCode::invalid_argument);
  EXPECT_NE(r.error().field.find(field_part), std::string::npos)
      << r.error().field << " / " << r.error().message;
}

TEST(QmpTranscript, RejectsMalformed) {
  expect_rejected(transcript("truncated.txt"), "line");
  expect_rejected(transcript("garbage-line.txt"), "line3");
  expect_rejected(transcript("no-greeting.txt"), "greeting");
  expect_rejected(transcript("machines-error.txt"), "machines");
  expect_rejected(transcript("version-missing-micro.txt"), "version");
  expect_rejected("", "greeting");
}

TEST(QmpTranscript, RejectsMissingOrBadFields) {
  const std::string greet = R"({"QMP": {"version": {}, "capabilities": []}})" "\n";
  const std::string ok_caps = R"({"return": {}, "id": "caps"})" "\n";
  const std::string ok_ver =
      R"({"return": {"qemu": {"micro": 0, "minor": 2, "major": 8}, "package": ""}, "id": "version"})" "\n";
  const std::string ok_kvm = R"({"return": {"enabled": false, "present": false}, "id": "kvm"})" "\n";
  const std::string ok_types =
      R"({"return": [{"name": "tcg-accel", "parent": "accel"}], "id": "accel-types"})" "\n";
  const std::string ok_machines =
      R"({"return": [{"name": "pc-q35-8.2", "alias": "q35", "is-default": false}], "id": "machines"})" "\n";
  // The minimal valid transcript parses; each variant below breaks one thing.
  auto base = parse_qmp_probe_transcript(greet + ok_caps + ok_ver + ok_machines + ok_kvm + ok_types);
  ASSERT_TRUE(base) << base.error().to_string();
  EXPECT_EQ(base->version, "8.2.0");
  EXPECT_EQ(base->accelerators, std::vector<std::string>{"tcg"});
  EXPECT_FALSE(base->kvm_present);

  expect_rejected(greet + ok_caps + ok_ver + ok_kvm + ok_types, "machines");  // no reply
  expect_rejected(greet + ok_caps + ok_ver + R"({"return": [], "id": "machines"})" "\n" + ok_kvm + ok_types,
                  "machines");
  expect_rejected(greet + ok_caps + ok_ver + R"({"return": [{"alias": "q35"}], "id": "machines"})" "\n" +
                      ok_kvm + ok_types,
                  "machines[0]");
  expect_rejected(greet + ok_caps + ok_ver +
                      R"({"return": [{"name": "x", "is-default": "yes"}], "id": "machines"})" "\n" +
                      ok_kvm + ok_types,
                  "is-default");
  expect_rejected(greet + ok_caps + ok_ver + R"({"return": {}, "id": "machines"})" "\n" + ok_kvm + ok_types,
                  "machines");
  expect_rejected(greet + ok_caps + ok_ver + ok_machines + R"({"return": {}, "id": "kvm"})" "\n" + ok_types,
                  "kvm");
  expect_rejected(greet + ok_caps + R"({"return": {"qemu": "7.2"}, "id": "version"})" "\n" + ok_machines +
                      ok_kvm + ok_types,
                  "version");
  expect_rejected(greet + ok_caps + ok_ver + ok_machines + ok_kvm, "accel-types");
  expect_rejected(greet + R"({"error": {"class": "GenericError", "desc": "JSON parse error"}})" "\n",
                  "error");
  expect_rejected(greet + "[1, 2, 3]\n", "line2");
}

}  // namespace
}  // namespace strata::agent
