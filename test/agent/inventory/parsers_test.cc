// Tests for the pure inventory parsers (cpuinfo, meminfo, cpu lists, os-release).
#include "strata/agent/inventory_parsers.h"

#include <gtest/gtest.h>

namespace strata::agent {
namespace {

TEST(ParseCpuinfo, ReadsProcessorBlocks) {
  auto r = parse_cpuinfo(
      "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Xeon X\nphysical id\t: 1\n"
      "core id\t\t: 4\nflags\t\t: fpu  vme sse\n\nprocessor\t: 1\nvendor_id\t: GenuineIntel\n");
  ASSERT_TRUE(r) << r.error().to_string();
  ASSERT_EQ(r->size(), 2u);
  EXPECT_EQ((*r)[0].vendor, "GenuineIntel");
  EXPECT_EQ((*r)[0].model_name, "Xeon X");
  EXPECT_EQ((*r)[0].physical_id, 1);
  EXPECT_EQ((*r)[0].core_id, 4);
  EXPECT_EQ((*r)[0].flags, (std::vector<std::string>{"fpu", "vme", "sse"}));
  EXPECT_EQ((*r)[1].processor, 1u);
  EXPECT_EQ((*r)[1].physical_id, -1);  // absent -> unknown
}

TEST(ParseCpuinfo, RejectsEmptyAndBadNumbers) {
  EXPECT_FALSE(parse_cpuinfo(""));
  EXPECT_FALSE(parse_cpuinfo("vendor_id: x\n"));
  auto bad = parse_cpuinfo("processor : zero\n");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().field, "cpuinfo.processor");
  EXPECT_FALSE(parse_cpuinfo("processor : 0\nphysical id : x\n"));
}

TEST(ParseMeminfo, ConvertsKilobytesAndKeepsCounts) {
  auto r = parse_meminfo("MemTotal:  1000 kB\nHugePages_Total:    16\nHugepagesize: 2048 kB\n");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->at("MemTotal"), 1000u * 1024);
  EXPECT_EQ(r->at("HugePages_Total"), 16u);
  EXPECT_EQ(r->at("Hugepagesize"), 2048u * 1024);
}

TEST(ParseMeminfo, RejectsMalformed) {
  EXPECT_FALSE(parse_meminfo(""));
  EXPECT_FALSE(parse_meminfo("MemTotal 1000 kB\n"));
  auto r = parse_meminfo("MemTotal: lots kB\n");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().field, "meminfo.MemTotal");
  EXPECT_FALSE(parse_meminfo("MemTotal: -5 kB\n"));
}

TEST(ParseNodeMeminfo, StripsNodePrefix) {
  auto r = parse_node_meminfo("Node 1 MemTotal:  2048 kB\nNode 1 MemFree:   1024 kB\n");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->at("MemTotal"), 2048u * 1024);
  EXPECT_EQ(r->at("MemFree"), 1024u * 1024);
  EXPECT_FALSE(parse_node_meminfo("MemTotal: 5 kB\n"));
  EXPECT_FALSE(parse_node_meminfo("Node x MemTotal: 5 kB\n"));
}

TEST(ParseCpuList, ExpandsRangesAndSingles) {
  auto r = parse_cpu_list("0-3,8,10-11\n");
  ASSERT_TRUE(r);
  EXPECT_EQ(*r, (std::vector<uint32_t>{0, 1, 2, 3, 8, 10, 11}));
  EXPECT_EQ(*parse_cpu_list(""), std::vector<uint32_t>{});
  EXPECT_EQ(*parse_cpu_list("5"), std::vector<uint32_t>{5});
}

TEST(ParseCpuList, RejectsMalformed) {
  EXPECT_FALSE(parse_cpu_list("3-1"));
  EXPECT_FALSE(parse_cpu_list("a-b"));
  EXPECT_FALSE(parse_cpu_list("1,,2"));
  EXPECT_FALSE(parse_cpu_list("0-99999999"));
}

// The largest uint64 as an id looped forever (i <= hi never false), found by
// fuzz/targets/inventory_parsers.cc; ids past uint32 and lists of more than 65536 ids in
// all are refused.
TEST(ParseCpuList, BoundsIdsAndTotal) {
  EXPECT_FALSE(parse_cpu_list("18446744073709551615"));
  EXPECT_FALSE(parse_cpu_list("18446744073709551614-18446744073709551615"));
  EXPECT_FALSE(parse_cpu_list("4294967296"));
  EXPECT_EQ(parse_cpu_list("4294967295")->size(), 1u);
  EXPECT_EQ(parse_cpu_list("0-65535")->size(), 65536u);
  EXPECT_FALSE(parse_cpu_list("0-65535,70000"));
  EXPECT_FALSE(parse_cpu_list("0-40000,0-40000"));
}

TEST(ParseOsRelease, HandlesQuotesEscapesAndComments) {
  auto kv = parse_os_release(
      "# comment\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\n"
      "NAME='Single Quoted'\nVARIANT=\"say \\\"hi\\\"\"\n\nBROKEN\n");
  EXPECT_EQ(kv["PRETTY_NAME"], "Debian GNU/Linux 12 (bookworm)");
  EXPECT_EQ(kv["ID"], "debian");
  EXPECT_EQ(kv["NAME"], "Single Quoted");
  EXPECT_EQ(kv["VARIANT"], "say \"hi\"");
  EXPECT_EQ(kv.count("BROKEN"), 0u);
}

TEST(ParseNumbers, StrictDecimal) {
  EXPECT_EQ(*parse_u64(" 42\n"), 42u);
  EXPECT_FALSE(parse_u64("42abc"));
  EXPECT_FALSE(parse_u64(""));
  EXPECT_FALSE(parse_u64("-1"));
  EXPECT_FALSE(parse_u64("99999999999999999999999"));
  EXPECT_EQ(*parse_i64("-1\n"), -1);
}

}  // namespace
}  // namespace strata::agent
