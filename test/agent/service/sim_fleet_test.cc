// The pure parts of `strata-agent sim` (sim_fleet.h): addresses, the join tokens file,
// flag validation and the simulated inventory. The whole runner against a real stratad is
// test/e2e/sim_fleet.sh.
#include "sim_fleet.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "host_inventory_proto.h"

namespace strata::agent::cli {
namespace {

TEST(SimFleetTest, LoopbackAddressesSkipDotZeroAndDot255AndStayIn127) {
  EXPECT_EQ(*loopback_address("127.1.0.1", 0), "127.1.0.1");
  EXPECT_EQ(*loopback_address("127.1.0.1", 253), "127.1.0.254");
  EXPECT_EQ(*loopback_address("127.1.0.1", 254), "127.1.1.1");
  EXPECT_EQ(*loopback_address("127.1.0.200", 60), "127.1.1.6");  // .200+54 = .254
  EXPECT_EQ(*loopback_address("127.255.255.254", 0), "127.255.255.254");
  EXPECT_EQ(loopback_address("127.255.255.254", 1).error().field, "address-base");
  EXPECT_EQ(loopback_address("10.0.0.1", 0).error().field, "address-base");
  EXPECT_EQ(loopback_address("127.0.0.0", 0).error().field, "address-base");
  EXPECT_EQ(loopback_address("127.0.0.255", 0).error().field, "address-base");
  EXPECT_EQ(loopback_address("127.1", 0).error().field, "address-base");
  EXPECT_EQ(loopback_address("", 0).error().field, "address-base");
}

SimFleetOptions good() {
  SimFleetOptions o;
  o.hosts = 10;
  o.state_dir = "/tmp/x";
  o.manager = "http://127.0.0.1:1";
  o.join_tokens_file = "/tmp/t";
  return o;
}

TEST(SimFleetTest, BadFlagsAreNamed) {
  auto field = [](SimFleetOptions o) {
    auto st = validate(o);
    return st ? std::string() : st.error().field;
  };
  EXPECT_EQ(field(good()), "");
  auto o = good();
  o.hosts = 0;
  EXPECT_EQ(field(o), "hosts");
  o = good();
  o.hosts = 60000;
  o.address_base = "127.255.255.1";
  EXPECT_EQ(field(o), "address-base");
  o = good();
  o.port = 0;
  EXPECT_EQ(field(o), "port");
  o = good();
  o.name_prefix = "Bad_";
  EXPECT_EQ(field(o), "name-prefix");
  o = good();
  o.state_dir.clear();
  EXPECT_EQ(field(o), "state-dir");
  o = good();
  o.manager.clear();
  EXPECT_EQ(field(o), "manager");
  o = good();
  o.join_tokens_file.clear();
  EXPECT_EQ(field(o), "join-tokens-file");
  o = good();
  o.cpus = 0;
  EXPECT_EQ(field(o), "cpus");
  o = good();
  o.memory_mib = 1;
  EXPECT_EQ(field(o), "memory-mib");
  o = good();
  o.boot_time = std::chrono::milliseconds(-1);
  EXPECT_EQ(field(o), "boot-ms");
  o = good();
  o.start_failure_rate = 2;
  EXPECT_EQ(field(o), "fail-start-rate");
  o = good();
  o.fail_start = {"NOT valid"};
  EXPECT_EQ(field(o), "fail-vm");
  o = good();
  o.grpc_max_threads = 1;
  EXPECT_EQ(field(o), "grpc-max-threads");
  o = good();
  o.tick = std::chrono::milliseconds(0);
  EXPECT_EQ(field(o), "tick-ms");
}

struct TokensFile : ::testing::Test {
  std::string dir;
  void SetUp() override {
    char t[] = "/tmp/sim-fleet-test.XXXXXX";
    ASSERT_NE(::mkdtemp(t), nullptr);
    dir = t;
  }
  void TearDown() override { std::filesystem::remove_all(dir); }
  std::string write(const std::string& text, mode_t mode) {
    auto p = dir + "/tokens";
    std::ofstream(p) << text;
    ::chmod(p.c_str(), mode);
    return p;
  }
};

TEST_F(TokensFile, OneTokenPerLineBlankLinesSkipped) {
  auto p = write("aaa\n\n  bbb \r\nccc\n", 0600);
  auto t = read_join_tokens(p, 3);
  ASSERT_TRUE(t) << t.error().to_string();
  EXPECT_EQ(*t, (std::vector<std::string>{"aaa", "bbb", "ccc"}));
  auto few = read_join_tokens(p, 4);
  ASSERT_FALSE(few);
  EXPECT_EQ(few.error().field, "join-tokens-file");
}

TEST_F(TokensFile, ThousandsOfTokensFitWhereOneSecretFileWouldNot) {
  std::string text;
  for (int i = 0; i < 2000; ++i) text += "sjt_" + std::string(64, 'a' + i % 26) + "\n";
  ASSERT_GT(text.size(), 64u * 1024);
  auto t = read_join_tokens(write(text, 0600), 2000);
  ASSERT_TRUE(t) << t.error().to_string();
  EXPECT_EQ(t->size(), 2000u);
}

TEST_F(TokensFile, AGroupReadableFileIsRefused) {
  auto p = write("aaa\n", 0640);
  EXPECT_FALSE(read_join_tokens(p, 1));
}

TEST(SimFleetTest, TheSimulatedInventoryReachesTheManagersFields) {
  auto inv = inventory_to_proto(simulated_inventory("sim-00007", 48, 65536), nullptr);
  EXPECT_EQ(inv.hostname(), "sim-00007");
  EXPECT_EQ(inv.cpu_threads(), 48u);
  EXPECT_EQ(inv.memory_total_bytes(), 65536ull << 20);
  EXPECT_EQ(inv.accelerator(), "kvm");
  auto j = enrollment_inventory(inv);
  EXPECT_EQ(j.at("cpu_threads"), 48);
  EXPECT_EQ(j.at("memory_total_bytes"), 65536ull << 20);
  EXPECT_EQ(j.at("accelerator"), "kvm");
  EXPECT_TRUE(j.at("datastores").is_array());
}

}  // namespace
}  // namespace strata::agent::cli
