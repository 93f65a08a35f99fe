// ctl's compact flag syntaxes and the ErrorCode -> exit code mapping.
#include "ctl_format.h"

#include <gtest/gtest.h>

#include "strata/agent/service/agent_cli.h"

namespace strata::agent::cli {
namespace {

TEST(CtlFormat, Sizes) {
  EXPECT_EQ(*parse_size("s", "1024"), 1024u);
  EXPECT_EQ(*parse_size("s", "512K"), 512u << 10);
  EXPECT_EQ(*parse_size("s", "1G"), 1ull << 30);
  EXPECT_EQ(*parse_size("s", "10GiB"), 10ull << 30);
  EXPECT_EQ(*parse_size("s", "2t"), 2ull << 40);
  EXPECT_EQ(parse_size("s", "G").error().field, "s");
  EXPECT_FALSE(parse_size("s", "1X"));
  EXPECT_FALSE(parse_size("s", "99999999999999999999"));
  EXPECT_FALSE(parse_size("s", "20000000000T"));  // overflow
}

TEST(CtlFormat, DiskFlag) {
  auto d = parse_disk_flag("name=root,base=debian-12,size=10G,boot");
  ASSERT_TRUE(d);
  EXPECT_EQ(d->name, "root");
  EXPECT_EQ(d->base_image, "debian-12");
  EXPECT_EQ(d->size_bytes, 10ull << 30);
  EXPECT_TRUE(d->boot);
  EXPECT_FALSE(d->readonly);
  EXPECT_TRUE(parse_disk_flag("name=data,size=1G,ro")->readonly);
  EXPECT_EQ(parse_disk_flag("name=x,colour=red").error().field, "--disk");
  EXPECT_FALSE(parse_disk_flag("name=x,size=big"));
}

TEST(CtlFormat, NicFlag) {
  auto u = parse_nic_flag("user");
  ASSERT_TRUE(u);
  EXPECT_EQ(u->mode, model::NicMode::user);
  auto b = parse_nic_flag("bridge=br0,mac=52:54:00:00:00:01");
  ASSERT_TRUE(b);
  EXPECT_EQ(b->mode, model::NicMode::bridge);
  EXPECT_EQ(b->bridge, "br0");
  EXPECT_EQ(b->mac, "52:54:00:00:00:01");
  EXPECT_FALSE(parse_nic_flag("mac=52:54:00:00:00:01"));  // no mode
  EXPECT_FALSE(parse_nic_flag("tap"));
  auto v = parse_nic_flag("bridge=br0,vlan=4094");
  ASSERT_TRUE(v) << v.error().to_string();
  EXPECT_EQ(v->vlan, 4094);
  EXPECT_EQ(b->vlan, 0);
  for (const char* bad : {"bridge=br0,vlan=0", "bridge=br0,vlan=4095", "bridge=br0,vlan=10x",
                          "bridge=br0,vlan=", "bridge=br0,vlan=-1", "bridge=br0,vlan=65546"})
    EXPECT_FALSE(parse_nic_flag(bad)) << bad;
}

TEST(CtlFormat, LabelFlag) {
  auto kv = parse_label_flag("tier=web=1");
  ASSERT_TRUE(kv);
  EXPECT_EQ(kv->first, "tier");
  EXPECT_EQ(kv->second, "web=1");
  EXPECT_FALSE(parse_label_flag("=x"));
  EXPECT_FALSE(parse_label_flag("novalue"));
}

TEST(CtlFormat, StateNames) {
  EXPECT_EQ(state_name(v1::VM_STATE_SHUTTING_DOWN), "shutting_down");
  EXPECT_EQ(state_name(v1::VM_STATE_RUNNING), "running");
}

TEST(CtlExitCodes, OneMappingForEveryCode) {
  EXPECT_EQ(exit_code(ErrorCode::invalid_argument), kExitUsage);
  EXPECT_EQ(exit_code(ErrorCode::not_found), kExitNotFound);
  EXPECT_EQ(exit_code(ErrorCode::already_exists), kExitExists);
  EXPECT_EQ(exit_code(ErrorCode::conflict), kExitExists);
  EXPECT_EQ(exit_code(ErrorCode::failed_precondition), kExitPrecondition);
  EXPECT_EQ(exit_code(ErrorCode::unavailable), kExitUnavailable);
  EXPECT_EQ(exit_code(ErrorCode::deadline_exceeded), kExitUnavailable);
  EXPECT_EQ(exit_code(ErrorCode::internal), kExitError);
}

}  // namespace
}  // namespace strata::agent::cli
