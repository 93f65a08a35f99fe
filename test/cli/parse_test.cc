// Size, duration and key=value parsing of command-line values.
#include "strata/cli/parse.h"

#include <gtest/gtest.h>

namespace strata::cli {
namespace {

TEST(ParseSize, UnitsAreBinary) {
  EXPECT_EQ(parse_size("512M", "--x").value(), 512ull << 20);
  EXPECT_EQ(parse_size("2G", "--x").value(), 2ull << 30);
  EXPECT_EQ(parse_size("1T", "--x").value(), 1ull << 40);
  EXPECT_EQ(parse_size("4k", "--x").value(), 4096u);
  EXPECT_EQ(parse_size("3GiB", "--x").value(), 3ull << 30);
  EXPECT_EQ(parse_size("100", "--x").value(), 100u);
  EXPECT_EQ(parse_size("100", "--x", 1 << 20).value(), 100ull << 20);
}

TEST(ParseSize, RejectsGarbageWithTheFlagInTheMessage) {
  for (const char* bad :
       {"", "-1G", "abc", "1.5G", "12Q", "G", "1 G", "99999999999T", "18446744073709551616"}) {
    auto r = parse_size(bad, "--memory");
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error().code, ErrorCode::invalid_argument);
    EXPECT_NE(r.error().message.find("--memory"), std::string::npos) << r.error().message;
  }
  EXPECT_NE(parse_size("-5M", "--m").error().message.find("negative"), std::string::npos);
  EXPECT_NE(parse_size("1.5G", "--m").error().message.find("fraction"), std::string::npos);
}

TEST(ParseMemory, WholeMibOnly) {
  EXPECT_EQ(parse_memory_mib("512M", "--memory").value(), 512u);
  EXPECT_EQ(parse_memory_mib("2G", "--memory").value(), 2048u);
  EXPECT_EQ(parse_memory_mib("768", "--memory").value(), 768u);
  EXPECT_FALSE(parse_memory_mib("1500K", "--memory"));
  EXPECT_FALSE(parse_memory_mib("0", "--memory"));
  EXPECT_FALSE(parse_memory_mib("0G", "--memory"));
}

TEST(ParseDuration, UnitsAndSequences) {
  EXPECT_EQ(parse_duration_s("90", "--ttl").value(), 90u);
  EXPECT_EQ(parse_duration_s("90s", "--ttl").value(), 90u);
  EXPECT_EQ(parse_duration_s("30m", "--ttl").value(), 1800u);
  EXPECT_EQ(parse_duration_s("24h", "--ttl").value(), 86400u);
  EXPECT_EQ(parse_duration_s("7d", "--ttl").value(), 7u * 86400);
  EXPECT_EQ(parse_duration_s("1h30m", "--ttl").value(), 5400u);
  for (const char* bad : {"", "-1h", "0", "0s", "h", "5x", "1h30", "1.5h"})
    EXPECT_FALSE(parse_duration_s(bad, "--ttl")) << bad;
}

TEST(ParseKeyValue, SplitsAtTheFirstEquals) {
  auto kv = parse_key_value("zone=a=b", "--label").value();
  EXPECT_EQ(kv.first, "zone");
  EXPECT_EQ(kv.second, "a=b");
  EXPECT_EQ(parse_key_value("k=", "--label").value().second, "");
  EXPECT_FALSE(parse_key_value("=v", "--label"));
  EXPECT_FALSE(parse_key_value("novalue", "--label"));
}

TEST(ParseVmSize, VcpusThenMemory) {
  auto s = parse_vm_size("2c4G", "--size").value();
  EXPECT_EQ(s.vcpus, 2u);
  EXPECT_EQ(s.memory_mib, 4096u);
  EXPECT_EQ(parse_vm_size("1C512", "--size").value().memory_mib, 512u);
  for (const char* bad : {"", "c4G", "2", "2c", "0c1G", "2x4G", "2c0", "2c1.5G", "-1c1G"}) {
    auto r = parse_vm_size(bad, "--size");
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error().field, "--size") << bad;
  }
}

TEST(ParseCountXSize, CountTimesSize) {
  auto a = parse_count_x_size("10 x 2c4G", "--add").value();
  EXPECT_EQ(a.first, 10u);
  EXPECT_EQ(a.second.vcpus, 2u);
  EXPECT_EQ(a.second.memory_mib, 4096u);
  EXPECT_EQ(parse_count_x_size("3x1c512M", "--add").value().first, 3u);
  for (const char* bad : {"", "x2c4G", "0x2c4G", "10 2c4G", "10x", "100001x1c1G", "10xbig"})
    EXPECT_FALSE(parse_count_x_size(bad, "--add")) << bad;
}

TEST(FormatBytes, HumanUnits) {
  EXPECT_EQ(format_bytes(0), "0B");
  EXPECT_EQ(format_bytes(512ull << 20), "512M");
  EXPECT_EQ(format_bytes(1536ull << 20), "1.5G");
  EXPECT_EQ(format_bytes(1ull << 40), "1T");
}

}  // namespace
}  // namespace strata::cli
