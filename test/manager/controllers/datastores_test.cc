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

// The dashboard's datastore usage: used = total - free; one storage mounted by several hosts
// is counted once, with the figures of the host that reported last.
TEST(DatastoresTest, TallyCountsEachStorageOnceWithTheNewestFigures) {
  HostDatastore full{"local", kU2, 100, 150};  // free > total (racing statvfs): used 0
  EXPECT_EQ(used_bytes(full), 0u);
  EXPECT_EQ(used_bytes(HostDatastore{"x", kU1, 100, 40}), 60u);

  auto with_beat = [](store::HostRecord h, int64_t ms) {
    h.last_heartbeat_ms = ms;
    return h;
  };
  const std::string shared_new =
      R"({"datastores": [{"name": "shared", "id": ")" + std::string(kU1) +
      R"(", "total_bytes": 1000, "free_bytes": 250},
          {"name": "backup", "id": ")" + std::string(kU2) +
      R"(", "total_bytes": 500, "free_bytes": 500}]})";
  std::vector<store::HostRecord> hosts = {
      with_beat(host("h1", R"({"datastores": [{"name": "shared", "id": ")" + std::string(kU1) +
                               R"(", "total_bytes": 1000, "free_bytes": 400}]})"),
                10),
      with_beat(host("h2", shared_new), 30),
      with_beat(host("h3", inv("shared", kU1)), 20),  // older than h2's report
      with_beat(host("h4", "{}"), 40)};
  DatastoreTally tally;
  for (const auto& h : hosts) tally.add(h, host_datastores(h.inventory));
  auto items = tally.items();
  ASSERT_EQ(items.size(), 2u);
  EXPECT_EQ(items[0].name, "backup");
  EXPECT_EQ(items[0].hosts, 1);
  EXPECT_EQ(items[0].used_bytes, 0u);
  EXPECT_EQ(items[1].name, "shared");
  EXPECT_EQ(items[1].id, kU1);
  EXPECT_EQ(items[1].hosts, 3);
  EXPECT_EQ(items[1].total_bytes, 1000u);
  EXPECT_EQ(items[1].free_bytes, 250u);
  EXPECT_EQ(items[1].used_bytes, 750u);
  EXPECT_EQ(items[1].reported_ms, 30);
  EXPECT_TRUE(DatastoreTally().items().empty());
}

}  // namespace
}  // namespace strata::manager
