// The snapshot record (snapshots.h) and the reply parser of query-named-block-nodes.
#include "snapshots.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "qemu_monitor.h"

namespace strata::agent::qemu {
namespace {

SnapshotTree sample() {
  SnapshotTree t;
  t.next_layer = 4;
  t.current = "b";
  t.active = {{"root", "/s/vms/v/root.l3.qcow2"}};
  t.snapshots.push_back({"a", "", 1, "crash", "running", {{"root", "/s/vms/v/root.qcow2"}}});
  t.snapshots.push_back(
      {"b", "a", 2, "filesystem", "stopped", {{"root", "/s/vms/v/root.l1.qcow2"}}});
  t.snapshots.push_back({"c", "a", 3, "crash", "stopped", {{"root", "/s/vms/v/root.l2.qcow2"}}});
  return t;
}

TEST(SnapshotTree, RoundTripsAndAnswersTreeQuestions) {
  auto t = snapshot_tree_from_json(snapshot_tree_to_json(sample()));
  ASSERT_TRUE(t) << t.error().to_string();
  EXPECT_EQ(t->next_layer, 4u);
  EXPECT_EQ(t->current, "b");
  ASSERT_EQ(t->snapshots.size(), 3u);
  EXPECT_EQ(t->find("b")->consistency, "filesystem");
  EXPECT_EQ(t->children("a"), (std::vector<std::string>{"b", "c"}));
  EXPECT_EQ(t->lineage("b"), (std::vector<std::string>{"b", "a"}));
  EXPECT_TRUE(t->lineage("").empty());
  EXPECT_EQ(t->all_files().size(), 4u);
}

TEST(SnapshotTree, RejectsBrokenRecords) {
  EXPECT_FALSE(snapshot_tree_from_json("[]"));
  EXPECT_FALSE(snapshot_tree_from_json("{\"version\":2}"));
  auto t = sample();
  t.current = "zz";
  EXPECT_FALSE(snapshot_tree_from_json(snapshot_tree_to_json(t)));
  t = sample();
  t.snapshots[1].parent = "gone";
  EXPECT_FALSE(snapshot_tree_from_json(snapshot_tree_to_json(t)));
}

TEST(SnapshotTree, WrittenAtomicallyAndAbsentIsNotFound) {
  std::string dir = ::testing::TempDir() + "/snaptree";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  EXPECT_EQ(read_snapshot_tree(dir).error().code, ErrorCode::not_found);
  ASSERT_TRUE(write_snapshot_tree(dir, sample()));
  auto t = read_snapshot_tree(dir);
  ASSERT_TRUE(t);
  EXPECT_EQ(t->snapshots.size(), 3u);
  std::filesystem::remove_all(dir);
}

TEST(ParseNamedBlockNodes, ReadsNodesAndRejectsMalformedReplies) {
  // Shape of QEMU 7.2's reply (fields the driver does not read trimmed).
  auto ok = parse_named_block_nodes(nlohmann::json::parse(R"([
    {"node-name":"l1d0","drv":"qcow2","file":"/s/root.l1.qcow2","backing_file":"/s/root.qcow2",
     "backing_file_depth":2,"ro":false},
    {"node-name":"disk0","drv":"qcow2","file":"/s/root.qcow2","ro":true},
    {"node-name":"file0","drv":"file","file":"/s/root.qcow2","ro":true}])"));
  ASSERT_TRUE(ok) << ok.error().to_string();
  ASSERT_EQ(ok->size(), 3u);
  EXPECT_EQ((*ok)[0].backing_file, "/s/root.qcow2");
  EXPECT_EQ((*ok)[1].backing_file, "");
  EXPECT_EQ((*ok)[2].drv, "file");
  // A running mirror's own dirty bitmap has no name (QEMU 7.2's BlockDirtyInfo): the node
  // still parses (the driver finds a leftover mirror's nodes this way after an agent
  // restart), and only named bitmaps are reported. Found by the netns e2e.
  auto mirroring = parse_named_block_nodes(nlohmann::json::parse(R"([
    {"node-name":"disk0","drv":"qcow2","file":"/s/root.qcow2","dirty-bitmaps":[
      {"count":65536,"granularity":65536,"recording":true,"busy":false,"persistent":false},
      {"name":"strata-backup","count":0,"granularity":65536,"recording":true,"busy":false,
       "persistent":true}]},
    {"node-name":"mig-disk0","drv":"nbd","file":"nbd://127.0.0.1:10899/disk0"}])"));
  ASSERT_TRUE(mirroring) << mirroring.error().to_string();
  ASSERT_EQ(mirroring->size(), 2u);
  ASSERT_EQ((*mirroring)[0].dirty_bitmaps.size(), 1u);
  EXPECT_EQ((*mirroring)[0].dirty_bitmaps[0].name, "strata-backup");
  EXPECT_EQ((*mirroring)[1].node_name, "mig-disk0");
  for (auto bad :
       {R"({})", R"([{"drv":"qcow2","file":"x"}])", R"([{"node-name":"a","drv":1,"file":"x"}])",
        R"([{"node-name":"a","drv":"qcow2","file":"x","backing_file":3}])"}) {
    auto r = parse_named_block_nodes(nlohmann::json::parse(bad));
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error().code, ErrorCode::internal);
  }
}

}  // namespace
}  // namespace strata::agent::qemu
