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

TEST(FormatBytes, HumanUnits) {
  EXPECT_EQ(format_bytes(0), "0B");
  EXPECT_EQ(format_bytes(512ull << 20), "512M");
  EXPECT_EQ(format_bytes(1536ull << 20), "1.5G");
  EXPECT_EQ(format_bytes(1ull << 40), "1T");
}

}  // namespace
}  // namespace strata::cli
