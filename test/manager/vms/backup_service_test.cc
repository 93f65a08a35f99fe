// Backups in the manager (vms/backup_service.h) on an in-memory SQLite store, a real
// repository folder and a real AgentService over a MemoryHypervisor (which cannot back up:
// its refusal must end the task failed, with the agent's reason). The repository side
// (list, show, verify as a task, delete with gc) runs on backups written by the backup
// library; refusals write nothing.
#include "strata/manager/vms/backup_service.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include "strata/backup/disk_backup.h"
#include "vm_service_fixture.h"

namespace strata::manager {
namespace {

namespace fs = std::filesystem;
constexpr uint64_t kCs = 64 << 10;

class MemDisk final : public backup::DiskSource {
 public:
  explicit MemDisk(uint64_t size, uint32_t seed) : bytes(size, 0) {
    std::mt19937 rng(seed);
    for (auto& b : bytes) b = static_cast<char>(rng());
  }
  uint64_t size() const override { return bytes.size(); }
  Result<std::vector<backup::Extent>> data_extents() override {
    return std::vector<backup::Extent>{{0, bytes.size()}};
  }
  Result<std::vector<backup::Extent>> dirty_extents() override {
    return std::vector<backup::Extent>{};
  }
  Status read(uint64_t off, size_t len, void* buf) override {
    std::memcpy(buf, bytes.data() + off, len);
    return {};
  }
  std::string bytes;
};

// The VM service's fixture (a store, placement, a real agent as host h1) plus a real
// repository folder and the backup service over them.
class BackupServiceTest : public testing::VmServiceOnAgentTest {
 protected:
  void SetUp() override {
    testing::VmServiceOnAgentTest::SetUp();
    if (HasFatalFailure()) return;
    fs::create_directories(dir_ / "repo");
    auto repo = backup::Repository::open((dir_ / "repo").string());
    ASSERT_TRUE(repo);
    repo_.emplace(*repo);
    auto client = std::make_shared<AgentClient>(agent_->address());
    backups_ = std::make_unique<BackupService>(
        *store_, *events_, clock_, [client](const std::string&) { return client; }, *repo);
  }
  void TearDown() override {
    backups_.reset();
    testing::VmServiceOnAgentTest::TearDown();
  }

  void make_vm(const std::string& name, bool start) {
    VmDocument d;
    d.spec.name = name;
    d.spec.memory_mib = 256;
    d.spec.kernel_boot = model::KernelBoot{"vmlinuz", "", ""};
    ASSERT_TRUE(service_->create(d, start, "token:alice"));
    ASSERT_TRUE(hv_.define(d.spec));
  }
  // A backup of `vm` written straight into the repository (as an agent would).
  void write_backup(const std::string& id, const std::string& vm, uint32_t seed) {
    MemDisk disk(4 * kCs, seed);
    ASSERT_TRUE(repo_->begin_backup(id));
    auto r = backup::backup_disk(*repo_, disk, "root", nullptr, kCs);
    ASSERT_TRUE(r) << r.error().to_string();
    ASSERT_TRUE(repo_->write_index(id, r->index));
    backup::Manifest m{
        id,
        vm,
        ++ms_,
        "full",
        "",
        false,
        {backup::DiskRecord{"root", disk.size(), "strata-" + id, r->stats.bytes_read,
                            r->stats.bytes_new, r->stats.chunks_read, r->stats.zero_chunks}}};
    ASSERT_TRUE(repo_->commit(m));
  }
  std::optional<backup::Repository> repo_;
  std::unique_ptr<BackupService> backups_;
  int64_t ms_ = 1000;
};

TEST_F(BackupServiceTest, CreateRunsOnTheHostAndItsRefusalFailsTheTask) {
  make_vm("web", true);
  auto t = backups_->create("web", false, "token:alice");
  ASSERT_TRUE(t) << t.error().to_string();
  EXPECT_EQ(t->task.kind, "backup.create");
  EXPECT_EQ(t->vm, "web");
  EXPECT_EQ(t->backup_id.rfind("web-", 0), 0u) << t->backup_id;
  EXPECT_TRUE(backup::validate_backup_id(t->backup_id));
  EXPECT_EQ(audit("backup.create"), 1u);
  auto done = wait_task(t->task.id);
  EXPECT_EQ(done.state, "failed");
  EXPECT_NE(done.message.find("cannot back up"), std::string::npos) << done.message;
}

TEST_F(BackupServiceTest, ListShowVerifyDeleteOnTheRepository) {
  make_vm("web", false);
  write_backup("b1", "web", 1);
  write_backup("b2", "db", 2);
  auto all = backups_->list("");
  ASSERT_TRUE(all) << all.error().to_string();
  EXPECT_EQ(all->size(), 2u);
  auto web = backups_->list("web");
  ASSERT_TRUE(web);
  ASSERT_EQ(web->size(), 1u);
  EXPECT_EQ((*web)[0].id, "b1");
  EXPECT_EQ(backups_->show("b2")->vm, "db");
  EXPECT_EQ(backups_->show("nope").error().code, ErrorCode::not_found);
  EXPECT_EQ(backups_->show("../x").error().code, ErrorCode::invalid_argument);

  auto v = backups_->verify("b1", "token:alice");
  ASSERT_TRUE(v) << v.error().to_string();
  auto vt = wait_task(v->task.id);
  ASSERT_EQ(vt.state, "succeeded") << vt.message;
  EXPECT_EQ(nlohmann::json::parse(vt.result)["chunks_checked"], 4);
  // A damaged chunk fails the verify task, naming it.
  auto idx = repo_->read_index("b2", "root");
  ASSERT_TRUE(idx);
  { std::ofstream(repo_->chunk_path(idx->chunks[0]), std::ios::trunc) << "x"; }
  auto bad = backups_->verify("b2", "token:alice");
  ASSERT_TRUE(bad);
  auto bt = wait_task(bad->task.id);
  EXPECT_EQ(bt.state, "failed");
  EXPECT_NE(bt.message.find("chunk 0"), std::string::npos) << bt.message;

  auto gc = backups_->remove("b2", "token:alice");
  ASSERT_TRUE(gc) << gc.error().to_string();
  EXPECT_EQ(gc->chunks_removed, 4u);
  EXPECT_EQ(backups_->list("")->size(), 1u);
  EXPECT_EQ(audit("backup.delete"), 1u);
}

TEST_F(BackupServiceTest, RefusalsWriteNothing) {
  make_vm("run", true);
  write_backup("b1", "run", 1);
  auto before = store_->list_tasks(store::TaskListOptions{});
  ASSERT_TRUE(before);
  EXPECT_EQ(backups_->create("nope", false, "a").error().code, ErrorCode::not_found);
  EXPECT_EQ(backups_->create("Bad_Name", false, "a").error().code, ErrorCode::invalid_argument);
  EXPECT_EQ(backups_->restore("b1", "run", "a").error().code, ErrorCode::failed_precondition);
  EXPECT_EQ(backups_->restore("zz", "run", "a").error().code, ErrorCode::not_found);
  EXPECT_EQ(backups_->verify("zz", "a").error().code, ErrorCode::not_found);
  EXPECT_EQ(store_->list_tasks(store::TaskListOptions{})->size(), before->size());

  BackupService off(*store_, *events_, clock_, {}, std::nullopt);
  EXPECT_EQ(off.list("").error().code, ErrorCode::failed_precondition);
  EXPECT_EQ(off.create("run", false, "a").error().code, ErrorCode::failed_precondition);
}

}  // namespace
}  // namespace strata::manager
