// Fence agents: the config's validation, the protocol's stdin, and real runs of Debian's
// fence_dummy (fence-agents; the `file` type keeps the "power" in a file) plus agents of
// the same protocol that lie or fail: a host is fenced only when `status` confirms off.
#include "strata/manager/ha/fence.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

namespace strata::manager {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

TEST(FenceConfigTest, ValidConfig) {
  auto c = parse_fence_config(json::parse(R"({"agent_dir": "/opt/fence", "hosts": {
      "h1": {"agent": "fence_ipmilan", "timeout_s": 20,
             "params": {"ip": "10.0.0.11", "username": "admin", "password": "p w"}}}})"));
  ASSERT_TRUE(c) << c.error().to_string();
  EXPECT_EQ(c->agent_dir, "/opt/fence");
  ASSERT_EQ(c->hosts.count("h1"), 1u);
  EXPECT_EQ(c->hosts["h1"].agent, "fence_ipmilan");
  EXPECT_EQ(c->hosts["h1"].timeout.count(), 20);
  EXPECT_EQ(fence_agent_input(c->hosts["h1"], "off"),
            "action=off\nip=10.0.0.11\npassword=p w\nusername=admin\n");
}

TEST(FenceConfigTest, RefusesWhatCouldReachAShellOrInjectAKey) {
  struct Case {
    const char* text;
    const char* field;
  } cases[] = {
      {R"({"hosts": {"h1": {"agent": "../bin/sh"}}})", "hosts.h1.agent"},
      {R"({"hosts": {"h1": {"agent": "ipmitool"}}})", "hosts.h1.agent"},
      {R"({"hosts": {"h1": {}}})", "hosts.h1.agent"},
      {R"({"hosts": {"h1": {"agent": "fence_x", "params": {"ip": "1\naction=on"}}}})",
       "hosts.h1.params.ip"},
      {R"({"hosts": {"h1": {"agent": "fence_x", "params": {"action": "on"}}}})",
       "hosts.h1.params.action"},
      {R"({"hosts": {"h1": {"agent": "fence_x", "params": {"IP=1\nx": "y"}}}})",
       "hosts.h1.params.IP=1\nx"},
      {R"({"hosts": {"h1": {"agent": "fence_x", "params": {"port": 623}}}})",
       "hosts.h1.params.port"},
      {R"({"hosts": {"h1": {"agent": "fence_x", "timeout_s": 0}}})", "hosts.h1.timeout_s"},
      {R"({"hosts": {"h1": {"agent": "fence_x", "secret": 1}}})", "hosts.h1.secret"},
      {R"({"agent_dir": "relative"})", "agent_dir"},
      {R"({"host": {}})", "host"},
  };
  for (const auto& c : cases) {
    auto r = parse_fence_config(json::parse(c.text));
    ASSERT_FALSE(r) << c.text;
    EXPECT_EQ(r.error().code, ErrorCode::invalid_argument) << c.text;
    EXPECT_EQ(r.error().field, c.field) << c.text;
  }
}

class FenceRunTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/strata-fence-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { fs::remove_all(dir_); }
  // An agent of the protocol written as a script in the test's agent folder.
  void write_agent(const std::string& name, const std::string& body) {
    std::string p = dir_ + "/" + name;
    std::ofstream(p) << "#!/bin/sh\n" << body;
    ::chmod(p.c_str(), 0755);
  }
  std::string dir_;
};

TEST_F(FenceRunTest, FenceDummyPowersOffAndStatusConfirms) {
  if (::access("/usr/sbin/fence_dummy", X_OK) != 0)
    GTEST_SKIP() << "SKIPPED: /usr/sbin/fence_dummy absent (Debian package fence-agents; "
                    "scripts/setup installs it)";
  const std::string power = dir_ + "/power";
  std::ofstream(power) << "on";  // fence_dummy compares the file's text, without a newline
  FenceConfig c;
  c.hosts["h1"] = FenceDevice{"fence_dummy", {{"type", "file"}, {"status_file", power}},
                              std::chrono::seconds(60)};
  auto fencer = make_fence_agent_runner(c);
  EXPECT_TRUE(fencer->configured("h1"));
  EXPECT_FALSE(fencer->configured("h2"));
  auto r = fencer->fence_off("h1");
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_NE(r->detail.find("status confirms off"), std::string::npos) << r->detail;
  std::ifstream in(power);
  std::string state;
  in >> state;
  EXPECT_EQ(state, "off");
}

TEST_F(FenceRunTest, FenceDummyThatFailsIsNotAFence) {
  if (::access("/usr/sbin/fence_dummy", X_OK) != 0)
    GTEST_SKIP() << "SKIPPED: /usr/sbin/fence_dummy absent (Debian package fence-agents)";
  FenceConfig c;
  c.hosts["h1"] = FenceDevice{"fence_dummy", {{"type", "fail"}, {"power_timeout", "1"}},
                              std::chrono::seconds(60)};
  auto r = make_fence_agent_runner(c)->fence_off("h1");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::unavailable);
}

TEST_F(FenceRunTest, AnAgentWhoseStatusSaysOnIsNotBelieved) {
  // `off` exits 0 but `status` says on (exit 0): the host is not proven off.
  write_agent("fence_liar", "cat >/dev/null\necho 'Status: ON'\nexit 0\n");
  FenceConfig c;
  c.agent_dir = dir_;
  c.hosts["h1"] = FenceDevice{"fence_liar", {}, std::chrono::seconds(10)};
  auto r = make_fence_agent_runner(c)->fence_off("h1");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::unavailable);
  EXPECT_NE(r.error().message.find("did not confirm off"), std::string::npos)
      << r.error().message;
  EXPECT_NE(r.error().message.find("Status: ON"), std::string::npos) << r.error().message;
}

TEST_F(FenceRunTest, ParametersArriveOnStdinAndAHungAgentTimesOut) {
  // Records what it read; `status` exits 2 (off) only after an `off` was seen.
  write_agent("fence_rec",
              "in=$(cat)\nprintf '%s\\n--\\n' \"$in\" >> " + dir_ + "/seen\n"
              "case \"$in\" in *action=off*) exit 0;; *action=status*) echo 'Status: OFF'; exit 2;; esac\n"
              "exit 1\n");
  write_agent("fence_hang", "cat >/dev/null\nsleep 30\n");
  FenceConfig c;
  c.agent_dir = dir_;
  c.hosts["h1"] = FenceDevice{"fence_rec", {{"ip", "10.0.0.9"}}, std::chrono::seconds(10)};
  c.hosts["h2"] = FenceDevice{"fence_hang", {}, std::chrono::seconds(1)};
  auto fencer = make_fence_agent_runner(c);
  auto r = fencer->fence_off("h1");
  ASSERT_TRUE(r) << r.error().to_string();
  std::ifstream in(dir_ + "/seen");
  std::stringstream seen;
  seen << in.rdbuf();
  EXPECT_EQ(seen.str(), "action=off\nip=10.0.0.9\n--\naction=status\nip=10.0.0.9\n--\n");
  auto hung = fencer->fence_off("h2");
  ASSERT_FALSE(hung);
  EXPECT_EQ(hung.error().code, ErrorCode::unavailable);
  EXPECT_NE(hung.error().message.find("timed out"), std::string::npos) << hung.error().message;
  auto none = fencer->fence_off("h3");
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().code, ErrorCode::not_found);
}

}  // namespace
}  // namespace strata::manager
