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

#include "../../agent/service/memory_hypervisor.h"
#include "../../agent/service/served_agent.h"
#include "strata/backup/disk_backup.h"
#include "strata/manager/vms/vm_service.h"

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

class BackupServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("mgrbk-" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "repo");
    auto s = store::open_store("sqlite::memory:", store::StoreOptions{clock_, 1});
    ASSERT_TRUE(s) << s.error().to_string();
    store_ = std::move(*s);
    events_ = std::make_unique<EventLog>(*store_);
    auto sched = sched::Scheduler::create({1.0, 1.0, sched::WeightStrategy::pack});
    ASSERT_TRUE(sched);
    placement_ = std::make_unique<PlacementService>(*store_, std::move(*sched));
    agent::service::AgentServiceOptions opts;
    opts.state_dir = (dir_ / "state").string();
    opts.agent_version = "test";
    opts.hostname = "h1";
    opts.accelerator = "tcg";
    auto served = agent::testing::ServedAgent::start(hv_, opts, (dir_ / "agent.sock").string());
    ASSERT_TRUE(served) << served.error().to_string();
    agent_ = std::move(*served);
    store::HostRecord h;
    h.name = "h1";
    h.address = agent_->address();
    h.state = "up";
    h.accelerator = "tcg";
    h.cpu_threads = 4;
    h.memory_mib = 4096;
    ASSERT_TRUE(store_->create_host(h));
    ASSERT_TRUE(placement_->load());
    vms_ = std::make_unique<VmService>(*store_, *placement_, *events_, clock_);
    auto repo = backup::Repository::open((dir_ / "repo").string());
    ASSERT_TRUE(repo);
    repo_.emplace(*repo);
    auto client = std::make_shared<AgentClient>(agent_->address());
    service_ = std::make_unique<BackupService>(
        *store_, *events_, clock_, [client](const std::string&) { return client; }, *repo);
  }
  void TearDown() override {
    service_.reset();
    vms_.reset();
    agent_.reset();
    fs::remove_all(dir_);
  }

  void make_vm(const std::string& name, bool start) {
    VmDocument d;
    d.spec.name = name;
    d.spec.memory_mib = 256;
    d.spec.kernel_boot = model::KernelBoot{"vmlinuz", "", ""};
    ASSERT_TRUE(vms_->create(d, start, "token:alice"));
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
  store::TaskRecord wait_task(const std::string& id) {
    store::TaskRecord t;
    for (int i = 0; i < 500; ++i) {
      auto r = store_->get_task(id);
      if (r) t = *r;
      if (t.state == "succeeded" || t.state == "failed") break;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return t;
  }
  size_t audit(const std::string& action) {
    size_t n = 0;
    if (auto all = store_->list_events(0, 0))
      for (auto& e : *all) n += e.action == action;
    return n;
  }

  std::shared_ptr<ManualClock> clock_ = std::make_shared<ManualClock>();
  fs::path dir_;
  agent::testing::MemoryHypervisor hv_;
  std::unique_ptr<agent::testing::ServedAgent> agent_;
  store::StorePtr store_;
  std::unique_ptr<EventLog> events_;
  std::unique_ptr<PlacementService> placement_;
  std::unique_ptr<VmService> vms_;
  std::optional<backup::Repository> repo_;
  std::unique_ptr<BackupService> service_;
  int64_t ms_ = 1000;
};

TEST_F(BackupServiceTest, CreateRunsOnTheHostAndItsRefusalFailsTheTask) {
  make_vm("web", true);
  auto t = service_->create("web", false, "token:alice");
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
  auto all = service_->list("");
  ASSERT_TRUE(all) << all.error().to_string();
  EXPECT_EQ(all->size(), 2u);
  auto web = service_->list("web");
  ASSERT_TRUE(web);
  ASSERT_EQ(web->size(), 1u);
  EXPECT_EQ((*web)[0].id, "b1");
  EXPECT_EQ(service_->show("b2")->vm, "db");
  EXPECT_EQ(service_->show("nope").error().code, ErrorCode::not_found);
  EXPECT_EQ(service_->show("../x").error().code, ErrorCode::invalid_argument);

  auto v = service_->verify("b1", "token:alice");
  ASSERT_TRUE(v) << v.error().to_string();
  auto vt = wait_task(v->task.id);
  ASSERT_EQ(vt.state, "succeeded") << vt.message;
  EXPECT_EQ(nlohmann::json::parse(vt.result)["chunks_checked"], 4);
  // A damaged chunk fails the verify task, naming it.
  auto idx = repo_->read_index("b2", "root");
  ASSERT_TRUE(idx);
  { std::ofstream(repo_->chunk_path(idx->chunks[0]), std::ios::trunc) << "x"; }
  auto bad = service_->verify("b2", "token:alice");
  ASSERT_TRUE(bad);
  auto bt = wait_task(bad->task.id);
  EXPECT_EQ(bt.state, "failed");
  EXPECT_NE(bt.message.find("chunk 0"), std::string::npos) << bt.message;

  auto gc = service_->remove("b2", "token:alice");
  ASSERT_TRUE(gc) << gc.error().to_string();
  EXPECT_EQ(gc->chunks_removed, 4u);
  EXPECT_EQ(service_->list("")->size(), 1u);
  EXPECT_EQ(audit("backup.delete"), 1u);
}

TEST_F(BackupServiceTest, RefusalsWriteNothing) {
  make_vm("run", true);
  write_backup("b1", "run", 1);
  auto before = store_->list_tasks(store::TaskListOptions{});
  ASSERT_TRUE(before);
  EXPECT_EQ(service_->create("nope", false, "a").error().code, ErrorCode::not_found);
  EXPECT_EQ(service_->create("Bad_Name", false, "a").error().code, ErrorCode::invalid_argument);
  EXPECT_EQ(service_->restore("b1", "run", "a").error().code, ErrorCode::failed_precondition);
  EXPECT_EQ(service_->restore("zz", "run", "a").error().code, ErrorCode::not_found);
  EXPECT_EQ(service_->verify("zz", "a").error().code, ErrorCode::not_found);
  EXPECT_EQ(store_->list_tasks(store::TaskListOptions{})->size(), before->size());

  BackupService off(*store_, *events_, clock_, {}, std::nullopt);
  EXPECT_EQ(off.list("").error().code, ErrorCode::failed_precondition);
  EXPECT_EQ(off.create("run", false, "a").error().code, ErrorCode::failed_precondition);
}

}  // namespace
}  // namespace strata::manager
