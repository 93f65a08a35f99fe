// Datastores against the real qemu-img on temp folders: the marker and its UUID, disks made
// once and adopted after (the HA restart / migration path), full copies of a base, the
// identity checks (other storage under the same name), deletion.
#include "strata/agent/datastore.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "strata/common/process.h"

namespace strata::agent {
namespace {

namespace fs = std::filesystem;

constexpr const char* kVm = "0b6e3d4e-8f1a-4c2b-9d3e-1f2a3b4c5d6e";

class DatastoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/strata-datastore-test.XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    fs::create_directories(dir_ + "/nfs");
    fs::create_directories(dir_ + "/other");
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  DatastoresPtr open(std::vector<std::pair<std::string, std::string>> m) {
    auto d = Datastores::open(m);
    EXPECT_TRUE(d) << d.error().to_string();
    return d ? *d : nullptr;
  }
  std::string dir_;
};

TEST_F(DatastoreTest, MarkerGivesOneUuidToEveryHostThatOpensIt) {
  auto a = open({{"shared", dir_ + "/nfs"}});
  ASSERT_TRUE(a);
  auto list = a->list();
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0].name, "shared");
  EXPECT_EQ(list[0].id.size(), 36u);
  EXPECT_GT(list[0].total_bytes, 0u);
  EXPECT_TRUE(fs::exists(dir_ + "/nfs/" + kDatastoreMarker));
  // A second host (agent) opening the same folder reads the same UUID.
  auto b = open({{"shared", dir_ + "/nfs"}});
  ASSERT_TRUE(b);
  EXPECT_EQ(b->list()[0].id, list[0].id);
  // Another folder is another datastore.
  auto c = open({{"shared", dir_ + "/other"}});
  ASSERT_TRUE(c);
  EXPECT_NE(c->list()[0].id, list[0].id);
}

TEST_F(DatastoreTest, RefusesMissingFolderSymlinkDuplicateAndBadMarker) {
  EXPECT_FALSE(Datastores::open({{"shared", dir_ + "/absent"}}));
  fs::create_directory_symlink(dir_ + "/nfs", dir_ + "/link");
  auto link = Datastores::open({{"shared", dir_ + "/link"}});
  ASSERT_FALSE(link);
  EXPECT_NE(link.error().message.find("not a directory"), std::string::npos);
  auto twice = Datastores::open({{"a", dir_ + "/nfs"}, {"b", dir_ + "/nfs"}});
  ASSERT_FALSE(twice);
  EXPECT_NE(twice.error().message.find("same storage"), std::string::npos);
  EXPECT_FALSE(Datastores::open({{"a", dir_ + "/nfs"}, {"a", dir_ + "/other"}}));
  std::ofstream(dir_ + "/other/" + kDatastoreMarker) << "{\"uuid\": \"not-a-uuid\"}";
  auto bad = Datastores::open({{"x", dir_ + "/other"}});
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, ErrorCode::failed_precondition);
}

TEST_F(DatastoreTest, FlagParsing) {
  auto ok = parse_datastore_flag("shared=/mnt/nfs/");
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->first, "shared");
  EXPECT_EQ(ok->second, "/mnt/nfs");
  EXPECT_FALSE(parse_datastore_flag("shared"));
  EXPECT_FALSE(parse_datastore_flag("shared=relative/path"));
  EXPECT_FALSE(parse_datastore_flag("Bad_Name=/mnt"));
  EXPECT_FALSE(parse_datastore_flag("../x=/mnt"));
}

TEST_F(DatastoreTest, DiskIsMadeOnceThenAdoptedAndDeletedOnlyWithTheVm) {
  auto ds = open({{"shared", dir_ + "/nfs"}});
  ASSERT_TRUE(ds);
  const std::string id = ds->list()[0].id;
  auto made = ds->ensure_disk("shared", id, kVm, "root", nullptr, 8 << 20);
  ASSERT_TRUE(made) << made.error().to_string();
  EXPECT_TRUE(made->created);
  EXPECT_EQ(made->info.format, "qcow2");
  EXPECT_EQ(made->info.virtual_size, 8u << 20);
  EXPECT_EQ(made->info.path, dir_ + "/nfs/vms/" + kVm + "/root.qcow2");
  // Write a block through qemu-io, as a guest would.
  auto w = run_checked({"qemu-io", "-f", "qcow2", "-c", "write -P 0x5a 0 64k", made->info.path});
  ASSERT_TRUE(w) << w.error().to_string();
  // Another host (same storage) defining the VM after a failover adopts the file: same data.
  auto other = open({{"shared", dir_ + "/nfs"}});
  auto adopted = other->ensure_disk("shared", id, kVm, "root", nullptr, 8 << 20);
  ASSERT_TRUE(adopted) << adopted.error().to_string();
  EXPECT_FALSE(adopted->created);
  auto r = run_checked({"qemu-io", "-f", "qcow2", "-c", "read -P 0x5a 0 64k", adopted->info.path});
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_EQ(r->find("Pattern verification failed"), std::string::npos) << *r;
  // The wrong UUID (other storage mounted under the same name) is refused.
  auto wrong = ds->disk_info("shared", "11111111-2222-4333-8444-555555555555", kVm, "root");
  ASSERT_FALSE(wrong);
  EXPECT_EQ(wrong.error().code, ErrorCode::failed_precondition);
  EXPECT_FALSE(ds->find("nope", ""));
  // Bad names never reach a path.
  EXPECT_FALSE(ds->disk_info("shared", id, "../../etc", "root"));
  EXPECT_FALSE(ds->disk_info("shared", id, kVm, "../root"));
  ASSERT_TRUE(ds->delete_vm("shared", id, kVm));
  EXPECT_FALSE(fs::exists(dir_ + "/nfs/vms/" + std::string(kVm)));
  EXPECT_TRUE(ds->delete_vm("shared", id, kVm)) << "absent is fine";
}

TEST_F(DatastoreTest, FullCopyOfABaseIsSelfContained) {
  auto ds = open({{"shared", dir_ + "/nfs"}});
  ASSERT_TRUE(ds);
  const std::string base_path = dir_ + "/base.qcow2";
  ASSERT_TRUE(run_checked({"qemu-img", "create", "-q", "-f", "qcow2", base_path, "4M"}));
  ASSERT_TRUE(run_checked({"qemu-io", "-f", "qcow2", "-c", "write -P 0x33 0 4k", base_path}));
  ImageInfo base;
  base.name = "base";
  base.path = base_path;
  base.format = "qcow2";
  base.virtual_size = 4 << 20;
  auto made = ds->ensure_disk("shared", "", kVm, "root", &base, 16 << 20);
  ASSERT_TRUE(made) << made.error().to_string();
  EXPECT_TRUE(made->info.backing_file.empty()) << "a datastore disk needs no base image";
  EXPECT_EQ(made->info.virtual_size, 16u << 20);
  fs::remove(base_path);
  auto r = run_checked({"qemu-io", "-f", "qcow2", "-c", "read -P 0x33 0 4k", made->info.path});
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_EQ(r->find("Pattern verification failed"), std::string::npos) << *r;
  // An existing file with a backing file is never adopted (it could name any host file).
  const std::string evil = dir_ + "/nfs/vms/" + std::string(kVm) + "/data.qcow2";
  ASSERT_TRUE(run_checked({"qemu-img", "create", "-q", "-f", "qcow2", "-b", "/etc/shadow", "-F",
                           "raw", "-u", evil, "1M"}));
  auto refused = ds->ensure_disk("shared", "", kVm, "data", nullptr, 1 << 20);
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message.find("self-contained"), std::string::npos);
  // Undo of a define removes just the disk it made.
  ASSERT_TRUE(ds->delete_disk("shared", "", kVm, "root"));
  EXPECT_FALSE(fs::exists(made->info.path));
}

}  // namespace
}  // namespace strata::agent
