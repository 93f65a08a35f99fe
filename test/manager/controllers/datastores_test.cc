// Datastores from host inventories, and a VM spec's datastore UUIDs resolved from them.
#include "strata/manager/controllers/datastores.h"

#include <gtest/gtest.h>

namespace strata::manager {
namespace {

store::HostRecord host(const std::string& name, const std::string& inventory) {
  store::HostRecord h;
  h.name = name;
  h.inventory = inventory;
  return h;
}

constexpr const char* kU1 = "11111111-1111-4111-8111-111111111111";
constexpr const char* kU2 = "22222222-2222-4222-8222-222222222222";

std::string inv(const std::string& name, const std::string& id) {
  return R"({"datastores": [{"name": ")" + name + R"(", "id": ")" + id +
         R"(", "path": "/mnt", "total_bytes": 100, "free_bytes": 40}]})";
}

TEST(DatastoresTest, InventoryParsingSkipsWhatIsMalformed) {
  auto ds = host_datastores(inv("shared", kU1));
  ASSERT_EQ(ds.size(), 1u);
  EXPECT_EQ(ds[0].name, "shared");
  EXPECT_EQ(ds[0].id, kU1);
  EXPECT_EQ(ds[0].free_bytes, 40u);
  EXPECT_TRUE(host_datastores("{}").empty());
  EXPECT_TRUE(host_datastores("not json").empty());
  EXPECT_TRUE(host_datastores(R"({"datastores": [1, {"name": 2}, {"name": "x"}]})").empty());
  EXPECT_EQ(datastore_key("shared", kU1), std::string("shared@") + kU1);
}

TEST(DatastoresTest, ResolveFillsTheUuidAndRefusesWhatCannotBePlaced) {
  model::VmSpec spec;
  spec.disks.push_back({"root", "debian", 0, true, false, "shared", ""});
  spec.disks.push_back({"scratch", "", 1 << 20, false, false, "", ""});
  std::vector<store::HostRecord> hosts = {host("h1", inv("shared", kU1)), host("h2", "{}"),
                                          host("h3", inv("shared", kU1))};
  ASSERT_TRUE(resolve_datastores(spec, hosts));
  EXPECT_EQ(spec.disks[0].datastore_id, kU1);
  EXPECT_TRUE(spec.disks[1].datastore_id.empty());

  // No host mounts it: 400 naming the field.
  model::VmSpec missing;
  missing.disks.push_back({"root", "", 1 << 20, false, false, "nfs2", ""});
  auto r = resolve_datastores(missing, hosts);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::invalid_argument);
  EXPECT_EQ(r.error().field, "disks[0].datastore");

  // One name, two storages: refused, both named.
  hosts.push_back(host("h4", inv("shared", kU2)));
  model::VmSpec split;
  split.disks.push_back({"root", "", 1 << 20, false, false, "shared", ""});
  r = resolve_datastores(split, hosts);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::failed_precondition);
  EXPECT_NE(r.error().message.find(kU2), std::string::npos) << r.error().message;
  // ... unless the request says which one.
  split.disks[0].datastore_id = kU2;
  EXPECT_TRUE(resolve_datastores(split, hosts));
  split.disks[0].datastore_id = "33333333-3333-4333-8333-333333333333";
  EXPECT_FALSE(resolve_datastores(split, hosts));
}

}  // namespace
}  // namespace strata::manager
