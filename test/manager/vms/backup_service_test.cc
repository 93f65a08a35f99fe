// Backups in the manager (vms/backup_service.h) on an in-memory SQLite store, a real
// repository folder and a real AgentService over a MemoryHypervisor (which cannot back up:
// its refusal must end the task failed, with the agent's reason). The repository side
// (list, show, verify as a task, delete with gc) runs on backups written by the backup
// library; refusals write nothing.
#include "strata/manager/vms/backup_service.h"

#include <fmt/format.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <future>
#include <random>
#include <thread>

#include "strata/backup/disk_backup.h"
#include "strata/manager/tasks/task_leases.h"
#include "strata/manager/vms/backup_schedules.h"
#include "strata/model/vm_spec_json.h"
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

  void make_vm(const std::string& name, bool start, store::Labels labels = {}) {
    VmDocument d;
    d.spec.name = name;
    d.spec.labels = std::move(labels);
    d.spec.memory_mib = 256;
    d.spec.kernel_boot = model::KernelBoot{"vmlinuz", "", ""};
    ASSERT_TRUE(service_->create(d, start, "token:alice"));
    ASSERT_TRUE(hv_.define(d.spec));
  }
  // A backup of `vm` written straight into the repository (as an agent would).
  void write_backup(const std::string& id, const std::string& vm, uint32_t seed,
                    int64_t created_ms = 0) {
    MemDisk disk(4 * kCs, seed);
    ASSERT_TRUE(repo_->begin_backup(id));
    auto r = backup::backup_disk(*repo_, disk, "root", nullptr, kCs);
    ASSERT_TRUE(r) << r.error().to_string();
    ASSERT_TRUE(repo_->write_index(id, r->index));
    backup::Manifest m{
        id,
        vm,
        created_ms ? created_ms : ++ms_,
        "full",
        "",
        false,
        {backup::DiskRecord{"root", disk.size(), "strata-" + id, r->stats.bytes_read,
                            r->stats.bytes_new, r->stats.chunks_read, r->stats.zero_chunks}},
        nullptr};
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

// The agent streams the copy's progress (BackupVm): the task shows it while the backup
// runs, in percent and MiB, and ends with the outcome.
TEST_F(BackupServiceTest, TheTaskShowsTheAgentsCopyProgress) {
  make_vm("web", true);
  std::promise<void> seen;
  auto seen_f = seen.get_future().share();
  hv_.backup_script =
      [seen_f](const agent::BackupProgressCallback& progress) -> Result<agent::BackupOutcome> {
    progress(0, 100ull << 20);
    progress(50ull << 20, 100ull << 20);
    seen_f.wait_for(std::chrono::seconds(20));  // the test has looked at the task
    progress(100ull << 20, 100ull << 20);
    agent::BackupOutcome out;
    out.id = "x";
    out.kind = "full";
    out.full_reason = "requested";
    out.bytes_read = out.bytes_new = out.disk_bytes = 100ull << 20;
    return out;
  };
  auto t = backups_->create("web", true, "token:alice");
  ASSERT_TRUE(t) << t.error().to_string();
  store::TaskRecord mid;
  for (int i = 0; i < 2000; ++i) {
    auto r = store_->get_task(t->task.id);
    if (r && r->progress == 49) {
      mid = *r;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  seen.set_value();
  EXPECT_EQ(mid.state, "running");
  EXPECT_EQ(mid.progress, 49);
  EXPECT_EQ(mid.message, "backing up web: 50 of 100 MiB") << mid.message;
  auto done = wait_task(t->task.id);
  ASSERT_EQ(done.state, "succeeded") << done.message;
  EXPECT_EQ(done.progress, 100);
  auto result = nlohmann::json::parse(done.result, nullptr, false);
  ASSERT_TRUE(result.is_object()) << done.result;
  EXPECT_EQ(result["kind"], "full");
  EXPECT_EQ(result["bytes_new"], 100ull << 20);
}

// A backup's worker holds its task in the manager's registry while it runs: the lease
// renewal keeps it fresh, so a sweep long after it started leaves it alone; once it ends it
// is no longer registered. (Without the registration the sweep would fail it here.)
TEST_F(BackupServiceTest, ARunningBackupIsRegisteredAndRenewedSoNeverSwept) {
  make_vm("web", true);
  RunningTasks running;
  backups_->set_running_tasks(&running);
  TaskLeases leases(*store_, clock_, running, TaskLeaseConfig{});
  std::promise<void> release;
  auto release_f = release.get_future().share();
  hv_.backup_script =
      [release_f](const agent::BackupProgressCallback& progress) -> Result<agent::BackupOutcome> {
    progress(50ull << 20, 100ull << 20);
    release_f.wait_for(std::chrono::seconds(20));
    agent::BackupOutcome out;
    out.id = "x";
    out.kind = "full";
    out.full_reason = "requested";
    return out;
  };
  auto t = backups_->create("web", true, "token:alice");
  ASSERT_TRUE(t) << t.error().to_string();
  // Wait (bounded) until the worker is parked in the agent's call, past its last write.
  bool parked = false;
  for (int i = 0; i < 2000 && !parked; ++i) {
    auto r = store_->get_task(t->task.id);
    parked = r && r->progress == 49 && running.contains(t->task.id);
    if (!parked) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_TRUE(parked);
  // Ten minutes of renewals (the worker writes nothing meanwhile), then a sweep.
  for (int minute = 0; minute < 10; ++minute) {
    clock_->advance(std::chrono::minutes(1));
    EXPECT_EQ(leases.renew(), 1);
  }
  RunningTasks peer;  // another manager's sweep: the lease's age alone keeps the task
  TaskLeases other(*store_, clock_, peer, TaskLeaseConfig{});
  auto swept = other.sweep();
  ASSERT_TRUE(swept) << swept.error().to_string();
  EXPECT_TRUE(swept->empty());
  EXPECT_EQ(store_->get_task(t->task.id)->state, "running");
  release.set_value();
  EXPECT_EQ(wait_task(t->task.id).state, "succeeded");
  for (int i = 0; i < 500 && running.contains(t->task.id); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_FALSE(running.contains(t->task.id)) << "the guard goes with the worker";
}

// An agent that predates the progress streams answers BackupVm / RestoreVmDisks with
// UNIMPLEMENTED: the client makes the unary call with the same request instead.
TEST_F(BackupServiceTest, AnAgentWithoutTheStreamsGetsTheUnaryCalls) {
  class OlderAgent final : public pb::AgentService::Service {
   public:
    grpc::Status CreateBackup(grpc::ServerContext*, const pb::CreateBackupRequest* req,
                              pb::CreateBackupResponse* resp) override {
      seen.push_back("CreateBackup " + req->request_id() + " " + req->backup_id());
      resp->set_kind("full");
      resp->set_disk_bytes(7);
      return grpc::Status::OK;
    }
    grpc::Status RestoreBackup(grpc::ServerContext*, const pb::RestoreBackupRequest* req,
                               pb::RestoreBackupResponse*) override {
      seen.push_back("RestoreBackup " + req->request_id() + " " + req->backup_id());
      return grpc::Status::OK;
    }
    std::vector<std::string> seen;
  } older;
  const std::string socket = "unix:" + (dir_ / "older.sock").string();
  grpc::ServerBuilder b;
  b.AddListeningPort(socket, grpc::InsecureServerCredentials());
  b.RegisterService(&older);
  auto server = b.BuildAndStart();
  ASSERT_TRUE(server);
  AgentClient client(socket);
  int progress_calls = 0;
  auto r = client.create_backup("req-1", "web", "/repo", "b1", false, "", std::chrono::seconds(5),
                                [&](uint64_t, uint64_t) { ++progress_calls; });
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_EQ(r->kind(), "full");
  EXPECT_EQ(r->disk_bytes(), 7u);
  auto st = client.restore_backup("req-2", "web", "/repo", "b1", "", std::chrono::seconds(5));
  ASSERT_TRUE(st) << st.error().to_string();
  EXPECT_EQ(progress_calls, 0);
  EXPECT_EQ(older.seen,
            (std::vector<std::string>{"CreateBackup req-1 b1", "RestoreBackup req-2 b1"}));
  server->Shutdown();
}

// An encrypted repository: the manager opens it with its key, and the key reaches the
// agent in the CreateBackup / RestoreBackup request (what the agent's driver opens the
// repository with); a plain repository sends none.
TEST_F(BackupServiceTest, AnEncryptedRepositorysKeyReachesTheAgentInTheRequest) {
  make_vm("web", false);
  auto key = backup::RepoKey::generate();
  ASSERT_TRUE(key);
  fs::create_directories(dir_ / "enc");
  auto enc = backup::Repository::open((dir_ / "enc").string(), &*key);
  ASSERT_TRUE(enc) << enc.error().to_string();
  auto client = std::make_shared<AgentClient>(agent_->address());
  BackupService svc(
      *store_, *events_, clock_, [client](const std::string&) { return client; }, *enc);
  // A backup in the encrypted repository, to restore.
  MemDisk disk(2 * kCs, 5);
  ASSERT_TRUE(enc->begin_backup("b1"));
  auto r = backup::backup_disk(*enc, disk, "root", nullptr, kCs);
  ASSERT_TRUE(r);
  ASSERT_TRUE(enc->write_index("b1", r->index));
  backup::Manifest m{"b1",
                     "web",
                     5,
                     "full",
                     "",
                     false,
                     {backup::DiskRecord{"root", disk.size(), "", 0, 0, 0, 0}},
                     nullptr};
  ASSERT_TRUE(enc->commit(m));
  auto listed = svc.list("");
  ASSERT_TRUE(listed) << listed.error().to_string();
  ASSERT_EQ(listed->size(), 1u);

  auto restore = svc.restore("b1", "web", "token:alice");
  ASSERT_TRUE(restore) << restore.error().to_string();
  EXPECT_EQ(wait_task(restore->task.id).state, "failed");  // the memory driver cannot
  EXPECT_EQ(hv_.count("restore_disks"), 1);
  EXPECT_EQ(hv_.last_repo_key(), std::string(key->raw()));

  auto plain = backups_->restore("b1", "web", "token:alice");  // not in the plain repo
  EXPECT_FALSE(plain);
  make_vm("db", true);
  auto created = svc.create("db", false, "token:alice");
  ASSERT_TRUE(created) << created.error().to_string();
  EXPECT_EQ(wait_task(created->task.id).state, "failed");
  EXPECT_EQ(hv_.count("backup"), 1);
  EXPECT_EQ(hv_.last_repo_key(), std::string(key->raw()));
  auto created_plain = backups_->create("db", false, "token:alice");
  ASSERT_TRUE(created_plain);
  EXPECT_EQ(wait_task(created_plain->task.id).state, "failed");
  EXPECT_EQ(hv_.last_repo_key(), "");
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

// Sync as a task: refused until a target is configured; then every backup the target
// lacks is copied (progress and result in the task), the copy verifies and a second sync
// copies nothing.
TEST_F(BackupServiceTest, SyncCopiesIntoTheConfiguredTargetAsATask) {
  write_backup("b1", "web", 1);
  write_backup("b2", "db", 2);
  auto none = backups_->sync(false, false, "token:alice");
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().code, ErrorCode::failed_precondition);
  EXPECT_FALSE(backups_->sync_configured());

  fs::create_directories(dir_ / "offsite");
  auto target = backup::Repository::open((dir_ / "offsite").string());
  ASSERT_TRUE(target);
  backups_->set_sync_target(*target);
  EXPECT_TRUE(backups_->sync_configured());
  auto t = backups_->sync(true, false, "token:alice");
  ASSERT_TRUE(t) << t.error().to_string();
  EXPECT_EQ(t->kind, "backup.sync");
  EXPECT_EQ(audit("backup.sync"), 1u);
  auto done = wait_task(t->id);
  ASSERT_EQ(done.state, "succeeded") << done.message;
  EXPECT_EQ(done.progress, 100);
  auto r = nlohmann::json::parse(done.result);
  EXPECT_EQ(r["copied"], (nlohmann::json{"b1", "b2"}));
  EXPECT_EQ(r["chunks_copied"], 8);
  EXPECT_EQ(r["bytes_copied"], 8 * kCs);
  EXPECT_EQ(r["chunks_verified"], 8);
  EXPECT_EQ(r["ok"], true);
  ASSERT_EQ(target->list()->size(), 2u);
  for (const char* id : {"b1", "b2"}) EXPECT_TRUE(target->verify(id)->problems.empty()) << id;

  auto again = backups_->sync(false, false, "token:alice");
  ASSERT_TRUE(again);
  auto d2 = wait_task(again->id);
  ASSERT_EQ(d2.state, "succeeded") << d2.message;
  EXPECT_EQ(nlohmann::json::parse(d2.result)["backups_done"], 0);
  EXPECT_EQ(nlohmann::json::parse(d2.result)["already_present"], 2);

  // b1 is deleted from the repository: a plain sync keeps its copy; one that removes
  // vanished backups removes it from the target and frees its chunks (b1's 4 are its own).
  ASSERT_TRUE(backups_->remove("b1", "token:alice"));
  auto keep = backups_->sync(false, false, "token:alice");
  ASSERT_TRUE(keep);
  ASSERT_EQ(wait_task(keep->id).state, "succeeded");
  EXPECT_EQ(target->list()->size(), 2u) << "a plain sync never removes";
  auto mirror = backups_->sync(false, true, "token:alice");
  ASSERT_TRUE(mirror) << mirror.error().to_string();
  auto d3 = wait_task(mirror->id);
  ASSERT_EQ(d3.state, "succeeded") << d3.message;
  auto r3 = nlohmann::json::parse(d3.result);
  EXPECT_EQ(r3["removed"], (nlohmann::json{"b1"}));
  EXPECT_EQ(r3["chunks_removed"], 4);
  EXPECT_NE(d3.message.find("1 vanished backups removed"), std::string::npos) << d3.message;
  ASSERT_EQ(target->list()->size(), 1u);
  EXPECT_EQ(target->list()->front().id, "b2");
  EXPECT_TRUE(target->verify("b2")->problems.empty());
}

// The sync target's own retention (an off-site copy usually keeps more, or less, than the
// repository): the same policy engine over the target's backups, under the target's lock;
// the repository is not touched, and the events say where.
TEST_F(BackupServiceTest, PruneOnTheSyncTargetAppliesItsOwnPolicyThere) {
  make_vm("web", false);
  for (int i = 0; i < 3; ++i)
    write_backup("web-" + std::to_string(i), "web", 40 + i, 1795996800000 + i * 3600000);
  auto none = backups_->prune({"web"}, {}, RetentionPolicy{1, 0, 0}, false, "token:alice", true);
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().code, ErrorCode::failed_precondition);
  EXPECT_EQ(none.error().field, "sync_target");

  fs::create_directories(dir_ / "offsite");
  auto target = backup::Repository::open((dir_ / "offsite").string());
  ASSERT_TRUE(target);
  backups_->set_sync_target(*target);
  auto t = backups_->sync(false, false, "token:alice");
  ASSERT_TRUE(t) << t.error().to_string();
  ASSERT_EQ(wait_task(t->id).state, "succeeded");
  ASSERT_EQ(target->list()->size(), 3u);

  auto plan = backups_->prune({"web"}, {}, RetentionPolicy{1, 0, 0}, true, "token:alice", true);
  ASSERT_TRUE(plan) << plan.error().to_string();
  EXPECT_TRUE(plan->sync_target);
  EXPECT_EQ(plan->prune.size(), 2u);
  EXPECT_EQ(target->list()->size(), 3u) << "a dry run deletes nothing";
  {
    auto busy_lock = target->lock_shared();  // as a sync reading it... or writing
    ASSERT_TRUE(busy_lock);
    auto busy = backups_->prune({"web"}, {}, RetentionPolicy{1, 0, 0}, false, "token:alice", true);
    ASSERT_FALSE(busy);
    EXPECT_EQ(busy.error().code, ErrorCode::conflict);
  }
  auto done = backups_->prune({"web"}, {}, RetentionPolicy{1, 0, 0}, false, "token:alice", true);
  ASSERT_TRUE(done) << done.error().to_string();
  EXPECT_EQ(done->prune.size(), 2u);
  EXPECT_GT(done->gc.chunks_removed, 0u);
  auto left = target->list();
  ASSERT_TRUE(left);
  ASSERT_EQ(left->size(), 1u);
  EXPECT_EQ(left->front().id, "web-2");
  EXPECT_TRUE(target->verify("web-2")->problems.empty());
  EXPECT_EQ(backups_->list("web")->size(), 3u) << "the repository keeps its own backups";
  EXPECT_EQ(audit("backup.delete"), 2u);
  auto ev = store_->list_events(0, 0);
  ASSERT_TRUE(ev);
  size_t said = 0;
  for (auto& e : *ev)
    if (e.action == "backup.prune" && e.message.find("on the sync target") != std::string::npos)
      ++said;
  EXPECT_EQ(said, 1u) << "the prune event names the sync target";
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

// Prune: a dry run lists without deleting; the real one deletes what the policy prunes
// (an audit event each, one gc) and keeps the rest; by label selector it takes the
// matching VMs of the store; a running backup (the shared lock) makes it a conflict.
TEST_F(BackupServiceTest, PruneKeepsWhatThePolicyKeepsAndDeletesTheRest) {
  make_vm("web", false, {{"tier", "web"}});
  make_vm("db", false, {{"tier", "db"}});
  constexpr int64_t kDay = 86400000;
  const int64_t t0 = 1795996800000;  // 2026-11-30 00:00 UTC
  for (int i = 0; i < 5; ++i)
    write_backup("web-" + std::to_string(i), "web", 10 + i, t0 + i * kDay + 3600000);
  write_backup("web-4b", "web", 20, t0 + 4 * kDay + 7200000);  // a second on the last day
  write_backup("db-0", "db", 30, t0);
  write_backup("db-1", "db", 31, t0 + kDay);

  auto dry = backups_->prune({"web"}, {}, RetentionPolicy{1, 2, 0}, true, "token:alice");
  ASSERT_TRUE(dry) << dry.error().to_string();
  EXPECT_TRUE(dry->dry_run);
  std::vector<std::string> kept, pruned;
  for (auto& k : dry->keep) kept.push_back(k.decision.id + ":" + k.decision.rule);
  for (auto& p : dry->prune) pruned.push_back(p.decision.id);
  EXPECT_EQ(kept,
            (std::vector<std::string>{"web-4b:keep-last", "web-3:keep-daily", "web-2:keep-daily"}));
  EXPECT_EQ(pruned, (std::vector<std::string>{"web-4", "web-1", "web-0"}));
  EXPECT_EQ(backups_->list("web")->size(), 6u) << "a dry run deletes nothing";
  EXPECT_EQ(audit("backup.delete"), 0u);

  // A backup running (it holds the shared lock): no deletion now.
  {
    auto shared = repo_->lock_shared();
    ASSERT_TRUE(shared);
    auto busy = backups_->prune({"web"}, {}, RetentionPolicy{1, 0, 0}, false, "token:alice");
    ASSERT_FALSE(busy);
    EXPECT_EQ(busy.error().code, ErrorCode::conflict);
  }

  auto real = backups_->prune({"web"}, {}, RetentionPolicy{1, 2, 0}, false, "token:alice");
  ASSERT_TRUE(real) << real.error().to_string();
  EXPECT_EQ(real->prune.size(), 3u);
  EXPECT_GT(real->gc.chunks_removed, 0u);
  auto left = backups_->list("web");
  ASSERT_TRUE(left);
  ASSERT_EQ(left->size(), 3u);
  EXPECT_EQ((*left)[0].id, "web-2");
  EXPECT_EQ(audit("backup.delete"), 3u);
  EXPECT_EQ(audit("backup.prune"), 1u);
  // Every kept backup still verifies: the chunks they name survived the gc.
  for (auto& m : *left) EXPECT_TRUE(repo_->verify(m.id)->problems.empty()) << m.id;

  // By selector: only the VMs labelled tier=db.
  auto sel = backups_->prune({}, {{"tier", "db"}}, RetentionPolicy{1, 0, 0}, false, "token:bob");
  ASSERT_TRUE(sel) << sel.error().to_string();
  EXPECT_EQ(sel->vms, (std::vector<std::string>{"db"}));
  ASSERT_EQ(sel->prune.size(), 1u);
  EXPECT_EQ(sel->prune[0].decision.id, "db-0");
  EXPECT_EQ(backups_->list("web")->size(), 3u);

  // Refusals: a policy that keeps nothing, a bad VM name, an empty selector.
  EXPECT_EQ(backups_->prune({"web"}, {}, RetentionPolicy{}, true, "a").error().field, "keep_last");
  EXPECT_EQ(backups_->prune({"Bad_Name"}, {}, RetentionPolicy{1, 0, 0}, true, "a").error().field,
            "vm");
  EXPECT_EQ(backups_->prune({}, {}, RetentionPolicy{1, 0, 0}, true, "a").error().field, "selector");
}

// ---- restore into a new VM ----

// The VM service's create and delete behind restore_new; with `define`, the new VM is at
// once defined on the host as the controller would (the fixture runs no controller).
class RestoreNewTest : public BackupServiceTest {
 protected:
  void SetUp() override {
    BackupServiceTest::SetUp();
    if (HasFatalFailure()) return;
    backups_->set_vm_lifecycle(
        [this](VmDocument doc,
               const std::string& actor) -> Result<std::pair<store::VmRecord, store::TaskRecord>> {
          auto c = service_->create(std::move(doc), false, actor);
          if (!c) return tl::unexpected(c.error());
          if (define_) {
            auto d = decode_vm_document(c->vm.spec);
            if (!d || !hv_.define(d->spec))
              return tl::unexpected(Error{ErrorCode::internal, "define", ""});
            auto vm = *store_->get_vm(c->vm.id);
            VmStatusDoc st = decode_vm_status(vm.status);
            st.state = "defined";
            vm.status = encode(st);
            if (!store_->update_vm(vm)) return tl::unexpected(Error{ErrorCode::internal, "update", ""});
          }
          return std::make_pair(c->vm, c->task);
        },
        [this](const std::string& name, const std::string& actor) {
          (void)service_->remove(name, std::nullopt, actor);
        });
  }
  // A stopped VM "web" with a disk "root" and a NIC; its spec as stored.
  model::VmSpec make_source() {
    VmDocument d;
    d.spec.name = "web";
    d.spec.memory_mib = 384;
    d.spec.vcpus = 2;
    d.spec.kernel_boot = model::KernelBoot{"vmlinuz", "", ""};
    d.spec.disks.push_back(model::DiskSpec{"root", "", 1ull << 30, false, false, "", ""});
    d.spec.nics.push_back(model::NicSpec{});
    d.spec.labels = {{"tier", "web"}};
    EXPECT_TRUE(service_->create(d, false, "token:alice"));
    auto vm = store_->get_vm_by_name("web");
    EXPECT_TRUE(vm);
    return vm ? decode_vm_document(vm->spec)->spec : model::VmSpec{};
  }
  bool define_ = false;
};

TEST_F(RestoreNewTest, MakesTheBackedUpVmUnderANewNameUuidAndMacsThenRemovesItOnFailure) {
  auto src = make_source();
  ASSERT_FALSE(src.uuid.empty());
  write_backup("b1", "web", 1);
  ASSERT_TRUE(repo_->record_vm_spec("b1", model::to_json(src)));
  define_ = true;
  auto t = backups_->restore_new("b1", "web-copy", "token:alice");
  ASSERT_TRUE(t) << t.error().to_string();
  EXPECT_EQ(t->task.kind, "backup.restore");
  EXPECT_EQ(t->vm, "web-copy");
  auto vm = store_->get_vm_by_name("web-copy");
  ASSERT_TRUE(vm);
  EXPECT_EQ(vm->desired_state, "stopped");
  auto doc = decode_vm_document(vm->spec);
  ASSERT_TRUE(doc);
  EXPECT_EQ(doc->spec.memory_mib, 384u);
  EXPECT_EQ(doc->spec.vcpus, 2u);
  ASSERT_EQ(doc->spec.disks.size(), 1u);
  EXPECT_EQ(doc->spec.disks[0].name, "root");
  EXPECT_EQ(doc->spec.labels.at("tier"), "web");
  EXPECT_FALSE(doc->spec.uuid.empty());
  EXPECT_NE(doc->spec.uuid, src.uuid);
  ASSERT_EQ(doc->spec.nics.size(), 1u);
  EXPECT_FALSE(doc->spec.nics[0].mac.empty());
  EXPECT_NE(doc->spec.nics[0].mac, src.nics[0].mac);
  // The host refuses the restore (a MemoryHypervisor cannot): the task fails with its
  // reason and the new VM is deleted again.
  auto done = wait_task(t->task.id);
  EXPECT_EQ(done.state, "failed");
  EXPECT_NE(done.message.find("cannot restore"), std::string::npos) << done.message;
  auto after = store_->get_vm_by_name("web-copy");
  EXPECT_TRUE(!after || after->deletion_requested);
  EXPECT_EQ(audit("backup.restore"), 1u);
}

// Never defined on a host (no controller here): the wait ends on the injected clock.
TEST_F(RestoreNewTest, ANewVmNeverDefinedFailsTheTaskAndGoes) {
  make_source();
  write_backup("b1", "web", 1);  // no spec recorded: the store's record of web is used
  auto t = backups_->restore_new("b1", "web-copy", "token:alice");
  ASSERT_TRUE(t) << t.error().to_string();
  auto done = wait_task(t->task.id);
  EXPECT_EQ(done.state, "failed");
  EXPECT_NE(done.message.find("not defined on a host"), std::string::npos) << done.message;
  auto after = store_->get_vm_by_name("web-copy");
  EXPECT_TRUE(!after || after->deletion_requested);
}

// The task names its new VM from the start; when the manager running the restore died
// (the task failed by the stale-task sweep), abandon_restore removes that VM, as a failed
// restore does. A restore into an existing VM, or a VM renamed since, is left alone.
TEST_F(RestoreNewTest, TheNewVmOfARestoreWhoseManagerStoppedIsRemoved) {
  make_source();
  write_backup("b1", "web", 1);
  auto t = backups_->restore_new("b1", "web-copy", "token:alice");
  ASSERT_TRUE(t) << t.error().to_string();
  auto result = nlohmann::json::parse(t->task.result);
  EXPECT_EQ(result.value("vm", ""), "web-copy");
  EXPECT_EQ(result.value("vm_id", ""), store_->get_vm_by_name("web-copy")->id);
  EXPECT_TRUE(result.value("new_vm", false));
  (void)wait_task(t->task.id);  // (fails: never defined; not the case under test)

  // The host is full now: "web" stands for the half-restored new VM.
  auto made = store_->get_vm_by_name("web");
  ASSERT_TRUE(made);
  store::TaskRecord dead;
  dead.id = "t-dead";
  dead.kind = "backup.restore";
  dead.state = "failed";
  dead.result = nlohmann::json{{"id", "b1"}, {"vm", "web"}, {"new_vm", false}}.dump();
  backups_->abandon_restore(dead);
  EXPECT_FALSE(store_->get_vm_by_name("web")->deletion_requested)
      << "a restore into an existing VM keeps the VM";
  dead.result =
      nlohmann::json{{"id", "b1"}, {"vm", "other-name"}, {"vm_id", made->id}, {"new_vm", true}}
          .dump();
  backups_->abandon_restore(dead);
  EXPECT_FALSE(store_->get_vm_by_name("web")->deletion_requested)
      << "the id and the name must both match";
  dead.result =
      nlohmann::json{{"id", "b1"}, {"vm", "web"}, {"vm_id", made->id}, {"new_vm", true}}.dump();
  backups_->abandon_restore(dead);
  auto vm = store_->get_vm_by_name("web");
  EXPECT_TRUE(!vm || vm->deletion_requested);
}

// A disk on a datastore is restored onto that datastore (its name and UUID from the backup's
// spec: the new VM is placed where it is mounted), never silently into a host's local store;
// a datastore no host mounts any more is refused naming the field, and nothing is created.
TEST_F(RestoreNewTest, ADatastoreDiskStaysOnItsDatastore) {
  constexpr const char* kUuid = "11111111-1111-4111-8111-111111111111";
  auto h1 = store_->get_host_by_name("h1");
  ASSERT_TRUE(h1);
  h1->inventory = std::string(R"({"datastores": [{"name": "shared", "id": ")") + kUuid +
                  R"(", "path": "/mnt/shared", "total_bytes": 100, "free_bytes": 40}]})";
  ASSERT_TRUE(store_->update_host(*h1));
  ASSERT_TRUE(placement_->load());
  VmDocument d;
  d.spec.name = "web";
  d.spec.memory_mib = 256;
  d.spec.kernel_boot = model::KernelBoot{"vmlinuz", "", ""};
  d.spec.disks.push_back(model::DiskSpec{"root", "", 1ull << 30, false, false, "shared", ""});
  ASSERT_TRUE(service_->create(d, false, "token:alice"));
  auto src = decode_vm_document(store_->get_vm_by_name("web")->spec)->spec;
  ASSERT_EQ(src.disks[0].datastore_id, kUuid);
  write_backup("b1", "web", 1);
  ASSERT_TRUE(repo_->record_vm_spec("b1", model::to_json(src)));

  auto t = backups_->restore_new("b1", "web-copy", "token:alice");
  ASSERT_TRUE(t) << t.error().to_string();
  auto vm = store_->get_vm_by_name("web-copy");
  ASSERT_TRUE(vm);
  auto doc = decode_vm_document(vm->spec);
  ASSERT_TRUE(doc);
  ASSERT_EQ(doc->spec.disks.size(), 1u);
  EXPECT_EQ(doc->spec.disks[0].datastore, "shared");
  EXPECT_EQ(doc->spec.disks[0].datastore_id, kUuid);
  EXPECT_NE(doc->spec.uuid, src.uuid);  // its own folder on the datastore
  (void)wait_task(t->task.id);          // (fails: never defined here; not the case under test)

  // The datastore is gone from every host: refused, naming the disk's field.
  h1 = store_->get_host_by_name("h1");
  h1->inventory = R"({"datastores": []})";
  ASSERT_TRUE(store_->update_host(*h1));
  ASSERT_TRUE(placement_->load());
  auto before = store_->list_vms({});
  ASSERT_TRUE(before);
  auto gone = backups_->restore_new("b1", "web-copy2", "token:alice");
  ASSERT_FALSE(gone);
  EXPECT_EQ(gone.error().code, ErrorCode::invalid_argument);
  EXPECT_EQ(gone.error().field, "disks[0].datastore");
  EXPECT_EQ(store_->list_vms({})->size(), before->size());
}

// A datastore named in the request receives every backed-up disk, as Proxmox's restore
// onto another storage: a local disk goes onto the datastore (its UUID resolved as for any
// new VM), "" brings a datastore disk back into the host's local store, and a datastore no
// host mounts is refused naming the request's field, with nothing created.
TEST_F(RestoreNewTest, ADatastoreNamedInTheRequestReceivesTheDisks) {
  constexpr const char* kUuid = "22222222-2222-4222-8222-222222222222";
  auto h1 = store_->get_host_by_name("h1");
  ASSERT_TRUE(h1);
  h1->cpu_threads = 16;  // room for the source and the restored VMs
  h1->inventory = std::string(R"({"datastores": [{"name": "shared", "id": ")") + kUuid +
                  R"(", "path": "/mnt/shared", "total_bytes": 100, "free_bytes": 40}]})";
  ASSERT_TRUE(store_->update_host(*h1));
  ASSERT_TRUE(placement_->load());
  auto src = make_source();  // disk "root" in the host's local store
  ASSERT_TRUE(src.disks[0].datastore.empty());
  write_backup("b1", "web", 1);
  ASSERT_TRUE(repo_->record_vm_spec("b1", model::to_json(src)));
  auto disk_of = [&](const std::string& name) {
    auto vm = store_->get_vm_by_name(name);
    EXPECT_TRUE(vm) << name;
    auto doc = vm ? decode_vm_document(vm->spec) : Result<VmDocument>(VmDocument{});
    EXPECT_TRUE(doc && doc->spec.disks.size() == 1u) << name;
    return doc && !doc->spec.disks.empty() ? doc->spec.disks[0] : model::DiskSpec{};
  };

  auto onto = backups_->restore_new("b1", "web-ds", "token:alice", std::string("shared"));
  ASSERT_TRUE(onto) << onto.error().to_string();
  EXPECT_EQ(disk_of("web-ds").datastore, "shared");
  EXPECT_EQ(disk_of("web-ds").datastore_id, kUuid);
  (void)wait_task(onto->task.id);  // (fails: never defined here; not the case under test)

  // Back from a datastore into the local store.
  auto on_ds = src;
  on_ds.disks[0].datastore = "shared";
  on_ds.disks[0].datastore_id = kUuid;
  write_backup("b2", "web", 2);
  ASSERT_TRUE(repo_->record_vm_spec("b2", model::to_json(on_ds)));
  auto local = backups_->restore_new("b2", "web-local", "token:alice", std::string());
  ASSERT_TRUE(local) << local.error().to_string();
  EXPECT_EQ(disk_of("web-local").datastore, "");
  EXPECT_EQ(disk_of("web-local").datastore_id, "");
  (void)wait_task(local->task.id);

  auto before = store_->list_vms({});
  ASSERT_TRUE(before);
  auto nowhere = backups_->restore_new("b1", "web-x", "token:alice", std::string("nowhere"));
  ASSERT_FALSE(nowhere);
  EXPECT_EQ(nowhere.error().code, ErrorCode::invalid_argument) << nowhere.error().to_string();
  EXPECT_EQ(nowhere.error().field, "datastore");
  EXPECT_EQ(store_->list_vms({})->size(), before->size());
}

TEST_F(RestoreNewTest, RefusalsCreateNothing) {
  make_source();
  write_backup("b1", "web", 1);
  write_backup("gone-1", "gone", 2);  // no spec, and no VM gone in the store
  write_backup("odd-1", "odd", 3);    // a recorded spec without the backup's disk
  model::VmSpec odd;
  odd.name = "odd";
  odd.kernel_boot = model::KernelBoot{"vmlinuz", "", ""};
  ASSERT_TRUE(repo_->record_vm_spec("odd-1", model::to_json(odd)));
  auto before = store_->list_vms({});
  ASSERT_TRUE(before);
  EXPECT_EQ(backups_->restore_new("gone-1", "x", "a").error().code, ErrorCode::failed_precondition);
  EXPECT_EQ(backups_->restore_new("odd-1", "x", "a").error().code, ErrorCode::failed_precondition);
  auto taken = backups_->restore_new("b1", "web", "a");
  ASSERT_FALSE(taken);
  EXPECT_EQ(taken.error().code, ErrorCode::already_exists);
  EXPECT_EQ(taken.error().field, "new_vm");
  EXPECT_EQ(backups_->restore_new("b1", "Bad_Name", "a").error().field, "new_vm");
  EXPECT_EQ(backups_->restore_new("zz", "x", "a").error().code, ErrorCode::not_found);
  EXPECT_EQ(store_->list_vms({})->size(), before->size());
  EXPECT_EQ(audit("backup.restore"), 0u);
}

// ---- schedules ----

int64_t utc_ms(int y, unsigned m, unsigned d, int hh, int mm) {
  using namespace std::chrono;
  sys_days day{year{y} / month{m} / d};
  return duration_cast<milliseconds>((day + hours(hh) + minutes(mm)).time_since_epoch()).count();
}

BackupScheduleSpec spec_of(const nlohmann::json& j) {
  auto s = parse_schedule_spec(j);
  EXPECT_TRUE(s) << s.error().to_string();
  return s ? *s : BackupScheduleSpec{};
}

TEST(BackupScheduleSpec, DueTimesAcrossMidnightAndWeekdaysInUtc) {
  auto s =
      spec_of({{"vm", "web"}, {"time", "23:30"}, {"days", {"mon", "tue", "wed", "thu", "fri"}}});
  // 2026-12-04 is a Friday.
  EXPECT_EQ(last_due_ms(s, utc_ms(2026, 12, 4, 23, 45)), utc_ms(2026, 12, 4, 23, 30));
  EXPECT_EQ(last_due_ms(s, utc_ms(2026, 12, 4, 23, 29)), utc_ms(2026, 12, 3, 23, 30));
  // After midnight the slot of the day before is still the newest; the weekend is skipped.
  EXPECT_EQ(last_due_ms(s, utc_ms(2026, 12, 5, 0, 10)), utc_ms(2026, 12, 4, 23, 30));
  EXPECT_EQ(last_due_ms(s, utc_ms(2026, 12, 7, 12, 0)), utc_ms(2026, 12, 4, 23, 30));
  EXPECT_EQ(next_due_ms(s, utc_ms(2026, 12, 4, 23, 30)), utc_ms(2026, 12, 7, 23, 30));
  EXPECT_EQ(next_due_ms(s, utc_ms(2026, 12, 4, 23, 29)), utc_ms(2026, 12, 4, 23, 30));
  // Midnight itself: a slot at now is due.
  auto m = spec_of({{"vm", "web"}, {"time", "00:00"}, {"full_on", {"sun"}}});
  EXPECT_EQ(last_due_ms(m, utc_ms(2027, 1, 1, 0, 0)), utc_ms(2027, 1, 1, 0, 0));
  EXPECT_EQ(next_due_ms(m, utc_ms(2026, 12, 31, 23, 59)), utc_ms(2027, 1, 1, 0, 0));
  EXPECT_TRUE(full_slot(m, utc_ms(2026, 12, 6, 0, 0)));  // a Sunday
  EXPECT_FALSE(full_slot(m, utc_ms(2026, 12, 7, 0, 0)));
  // The canonical JSON reads back the same.
  auto again = spec_of(schedule_spec_json(s));
  EXPECT_EQ(again.minute_of_day, 23 * 60 + 30);
  EXPECT_EQ(again.days, s.days);
  EXPECT_EQ(schedule_spec_json(s)["days"], (nlohmann::json{"mon", "tue", "wed", "thu", "fri"}));
}

TEST(BackupScheduleSpec, RefusalsNameTheField) {
  auto field = [](const nlohmann::json& j) {
    auto s = parse_schedule_spec(j);
    EXPECT_FALSE(s) << j.dump();
    return s ? std::string("<accepted>") : s.error().field;
  };
  EXPECT_EQ(field({{"vm", "web"}, {"time", "24:00"}}), "time");
  EXPECT_EQ(field({{"vm", "web"}, {"time", "7:30"}}), "time");
  EXPECT_EQ(field({{"vm", "web"}, {"time", "07:60"}}), "time");
  EXPECT_EQ(field({{"vm", "web"}}), "time");
  EXPECT_EQ(field({{"vm", "web"}, {"time", "01:00"}, {"days", {"mon", "funday"}}}), "days[1]");
  EXPECT_EQ(field({{"vm", "web"}, {"time", "01:00"}, {"days", nlohmann::json::array()}}), "days");
  EXPECT_EQ(field({{"vm", "web"}, {"time", "01:00"}, {"days", {"mon"}}, {"full_on", {"sun"}}}),
            "full_on");
  EXPECT_EQ(field({{"selector", {{"tier", 5}}}, {"time", "01:00"}}), "selector.tier");
  EXPECT_EQ(field({{"selector", "tier=web"}, {"time", "01:00"}}), "selector");
  EXPECT_EQ(field({{"selector", nlohmann::json::object()}, {"time", "01:00"}}), "selector");
  EXPECT_EQ(field({{"vm", "web"}, {"selector", {{"a", "b"}}}, {"time", "01:00"}}), "vm");
  EXPECT_EQ(field({{"vm", "Bad_Name"}, {"time", "01:00"}}), "vm");
  EXPECT_EQ(field({{"vm", "web"}, {"time", "01:00"}, {"retention", {{"keep_daily", -1}}}}),
            "retention.keep_daily");
  EXPECT_EQ(field({{"vm", "web"}, {"time", "01:00"}, {"retention", nlohmann::json::object()}}),
            "retention.keep_last");
  EXPECT_EQ(field({{"vm", "web"}, {"time", "01:00"}, {"retention", {{"keep_hourly", 1}}}}),
            "retention.keep_hourly");
  EXPECT_EQ(field({{"vm", "web"}, {"time", "01:00"}, {"sync", "yes"}}), "sync");
  EXPECT_EQ(field({{"vm", "web"}, {"time", "01:00"}, {"sync_retention", {{"keep_last", 3}}}}),
            "sync_retention")
      << "the target's retention runs after the run's sync: none without it";
  EXPECT_EQ(field({{"vm", "web"},
                   {"time", "01:00"},
                   {"sync", true},
                   {"sync_retention", {{"keep_weekly", -2}}}}),
            "sync_retention.keep_weekly");
  EXPECT_EQ(field({{"vm", "web"}, {"time", "01:00"}, {"every", "day"}}), "every");
}

// The scheduler on the fixture's ManualClock, with a starter that writes each backup into
// the repository at once (the MemoryHypervisor cannot back up) and leaves its task running
// until the test ends it.
class BackupSchedulerTest : public BackupServiceTest {
 protected:
  void SetUp() override {
    BackupServiceTest::SetUp();
    if (HasFatalFailure()) return;
    clock_->advance(std::chrono::milliseconds(utc_ms(2026, 11, 30, 10, 0)));  // a Monday
    scheduler_ = make_scheduler();
  }
  void TearDown() override {
    scheduler_.reset();
    BackupServiceTest::TearDown();
  }
  std::unique_ptr<BackupScheduler> make_scheduler() {
    return std::make_unique<BackupScheduler>(
        *store_, *events_, clock_, *backups_,
        [this](const std::string& vm, bool full, const std::string& actor) -> Result<BackupTask> {
          auto v = store_->get_vm_by_name(vm);
          if (!v) return tl::unexpected(v.error());
          const std::string id = fmt::format("{}-new-{}", vm, ++made_);
          write_backup(id, vm, static_cast<uint32_t>(made_),
                       std::chrono::duration_cast<std::chrono::milliseconds>(
                           clock_->wall().time_since_epoch())
                           .count());
          store::TaskRecord t;
          t.kind = "backup.create";
          t.target_kind = "backup";
          t.target_id = id;
          t.state = "running";
          auto rec = store_->create_task(t);
          if (!rec) return tl::unexpected(rec.error());
          started_.push_back(vm + (full ? ":full" : "") + " by " + actor);
          return BackupTask{id, vm, *rec};
        });
  }
  void end_tasks(const std::string& state) {
    auto all = store_->list_tasks(store::TaskListOptions{});
    ASSERT_TRUE(all);
    for (auto t : *all)
      if (t.kind == "backup.create" && t.state == "running") {
        t.state = state;
        ASSERT_TRUE(store_->update_task(t));
      }
  }
  void at(int y, unsigned m, unsigned d, int hh, int mm) {
    auto want = std::chrono::milliseconds(utc_ms(y, m, d, hh, mm));
    auto now =
        std::chrono::duration_cast<std::chrono::milliseconds>(clock_->wall().time_since_epoch());
    ASSERT_GE(want, now);
    clock_->advance(want - now);
  }
  // The id of the (last) backup.sync task a run started; "" when none.
  std::string sync_task_id() {
    std::string id;
    if (auto tasks = store_->list_tasks(store::TaskListOptions{}))
      for (auto& t : *tasks)
        if (t.kind == "backup.sync") id = t.id;
    return id;
  }
  std::unique_ptr<BackupScheduler> scheduler_;
  std::vector<std::string> started_;
  int made_ = 0;
};

TEST_F(BackupSchedulerTest, ByLabelRunsEachSlotOnceAlsoAfterARestart) {
  make_vm("web-1", false, {{"tier", "web"}});
  make_vm("web-2", false, {{"tier", "web"}});
  make_vm("db", false, {{"tier", "db"}});
  auto made = scheduler_->create(
      "nightly",
      spec_of({{"selector", {{"tier", "web"}}}, {"time", "02:30"}, {"full_on", {"sun"}}}),
      "token:alice");
  ASSERT_TRUE(made) << made.error().to_string();
  EXPECT_EQ(made->record.last_slot_ms, utc_ms(2026, 11, 30, 2, 30)) << "today's slot is past";
  EXPECT_EQ(audit("backup.schedule.create"), 1u);
  EXPECT_EQ(scheduler_->create("nightly", made->spec, "a").error().code, ErrorCode::already_exists);

  EXPECT_EQ(*scheduler_->tick(), 0) << "made after today's 02:30: first run tomorrow";
  at(2026, 12, 1, 2, 29);
  EXPECT_EQ(*scheduler_->tick(), 0);
  at(2026, 12, 1, 2, 30);
  auto n = scheduler_->tick();
  ASSERT_TRUE(n) << n.error().to_string();
  EXPECT_EQ(*n, 2);
  EXPECT_EQ(started_,
            (std::vector<std::string>{"web-1 by schedule:nightly", "web-2 by schedule:nightly"}));
  EXPECT_EQ(scheduler_->get("nightly")->record.last_slot_ms, utc_ms(2026, 12, 1, 2, 30));
  EXPECT_EQ(*scheduler_->tick(), 0) << "the slot is done";

  // A restart (a new scheduler on the same store) a minute later: the slot is claimed.
  clock_->advance(std::chrono::minutes(1));
  scheduler_ = make_scheduler();
  EXPECT_EQ(*scheduler_->tick(), 0);
  EXPECT_EQ(audit("backup.schedule.run"), 1u);

  // Down over several slots: the newest missed one runs once (Sunday's: full).
  at(2026, 12, 6, 9, 0);
  EXPECT_EQ(*scheduler_->tick(), 2);
  EXPECT_EQ(started_.back(), "web-2:full by schedule:nightly");
  EXPECT_EQ(*scheduler_->tick(), 0);
  EXPECT_EQ(started_.size(), 4u);

  ASSERT_TRUE(scheduler_->remove("nightly", "token:alice"));
  EXPECT_EQ(scheduler_->get("nightly").error().code, ErrorCode::not_found);
  EXPECT_EQ(audit("backup.schedule.delete"), 1u);
  at(2026, 12, 7, 3, 0);
  EXPECT_EQ(*scheduler_->tick(), 0);
}

TEST_F(BackupSchedulerTest, RetentionRunsAfterTheRunsBackupsSucceeded) {
  make_vm("web", false);
  make_vm("db", false);
  for (int i = 0; i < 3; ++i) write_backup("old-web-" + std::to_string(i), "web", 100 + i);
  for (int i = 0; i < 2; ++i) write_backup("old-db-" + std::to_string(i), "db", 200 + i);
  auto keep1 = nlohmann::json{{"keep_last", 1}};
  ASSERT_TRUE(scheduler_->create(
      "web", spec_of({{"vm", "web"}, {"time", "03:00"}, {"retention", keep1}}), "a"));
  ASSERT_TRUE(scheduler_->create(
      "db", spec_of({{"vm", "db"}, {"time", "03:00"}, {"retention", keep1}}), "a"));
  at(2026, 12, 1, 3, 0);
  EXPECT_EQ(*scheduler_->tick(), 2);
  EXPECT_EQ(backups_->list("web")->size(), 4u);
  EXPECT_EQ(*scheduler_->tick(), 0);
  EXPECT_EQ(backups_->list("web")->size(), 4u) << "the run's backup has not ended: no prune yet";

  // web's backup succeeds, db's fails: only web is pruned, down to its new backup.
  auto tasks = store_->list_tasks(store::TaskListOptions{});
  ASSERT_TRUE(tasks);
  for (auto t : *tasks)
    if (t.kind == "backup.create") {
      t.state = t.target_id.rfind("web-new-", 0) == 0 ? "succeeded" : "failed";
      ASSERT_TRUE(store_->update_task(t));
    }
  EXPECT_EQ(*scheduler_->tick(), 0);
  auto web = backups_->list("web");
  ASSERT_TRUE(web);
  ASSERT_EQ(web->size(), 1u);
  EXPECT_EQ(web->front().id.rfind("web-new-", 0), 0u) << web->front().id;
  EXPECT_EQ(backups_->list("db")->size(), 3u) << "a failed run prunes nothing";
  EXPECT_EQ(audit("backup.delete"), 3u);
  EXPECT_EQ(audit("backup.prune"), 1u);
  // Done once: the next pass does not prune again.
  EXPECT_EQ(*scheduler_->tick(), 0);
  EXPECT_EQ(audit("backup.prune"), 1u);
}

// A schedule with "sync": once its run's backup has succeeded, a backup.sync task copies
// the repository to the sync target; a schedule without it starts none.
TEST_F(BackupSchedulerTest, SyncRunsAfterTheRunsBackupsSucceeded) {
  make_vm("web", false);
  fs::create_directories(dir_ / "offsite");
  auto target = backup::Repository::open((dir_ / "offsite").string());
  ASSERT_TRUE(target);
  backups_->set_sync_target(*target);
  auto made = scheduler_->create("web", spec_of({{"vm", "web"}, {"time", "03:00"}, {"sync", true}}),
                                 "a");
  ASSERT_TRUE(made) << made.error().to_string();
  EXPECT_TRUE(made->spec.sync);
  EXPECT_EQ(schedule_spec_json(made->spec)["sync"], true);
  at(2026, 12, 1, 3, 0);
  EXPECT_EQ(*scheduler_->tick(), 1);
  EXPECT_EQ(*scheduler_->tick(), 0);
  EXPECT_EQ(audit("backup.sync"), 0u) << "the run's backup has not ended";
  end_tasks("succeeded");
  EXPECT_EQ(*scheduler_->tick(), 0);
  EXPECT_EQ(audit("backup.sync"), 1u);
  const std::string id = sync_task_id();
  ASSERT_FALSE(id.empty());
  auto done = wait_task(id);
  ASSERT_EQ(done.state, "succeeded") << done.message;
  ASSERT_EQ(target->list()->size(), 1u);
  EXPECT_EQ(target->list()->front().vm, "web");
  EXPECT_EQ(*scheduler_->tick(), 0);
  EXPECT_EQ(audit("backup.sync"), 1u) << "once per run";
}

// A schedule with "sync" and "sync_retention": after the run's sync has succeeded, the sync
// target is pruned with its own policy (once); the repository's backups stay.
TEST_F(BackupSchedulerTest, SyncRetentionPrunesTheTargetOnceTheRunsSyncSucceeded) {
  make_vm("web", false);
  for (int i = 0; i < 2; ++i) write_backup("old-web-" + std::to_string(i), "web", 300 + i);
  fs::create_directories(dir_ / "offsite");
  auto target = backup::Repository::open((dir_ / "offsite").string());
  ASSERT_TRUE(target);
  backups_->set_sync_target(*target);
  auto made = scheduler_->create("web",
                                 spec_of({{"vm", "web"},
                                          {"time", "03:00"},
                                          {"sync", true},
                                          {"sync_retention", {{"keep_last", 1}}}}),
                                 "a");
  ASSERT_TRUE(made) << made.error().to_string();
  ASSERT_TRUE(made->spec.sync_retention);
  EXPECT_EQ(schedule_spec_json(made->spec)["sync_retention"]["keep_last"], 1);
  at(2026, 12, 1, 3, 0);
  EXPECT_EQ(*scheduler_->tick(), 1);
  end_tasks("succeeded");
  EXPECT_EQ(*scheduler_->tick(), 0);  // starts the sync
  const std::string id = sync_task_id();
  ASSERT_FALSE(id.empty());
  ASSERT_EQ(wait_task(id).state, "succeeded");
  ASSERT_EQ(target->list()->size(), 3u) << "the sync copies everything first";
  EXPECT_EQ(*scheduler_->tick(), 0);  // the sync ended: the target's retention
  auto left = target->list();
  ASSERT_TRUE(left);
  ASSERT_EQ(left->size(), 1u);
  EXPECT_EQ(left->front().id.rfind("web-new-", 0), 0u) << left->front().id;
  EXPECT_EQ(backups_->list("web")->size(), 3u) << "the repository keeps its backups";
  EXPECT_EQ(audit("backup.prune"), 1u);
  EXPECT_EQ(*scheduler_->tick(), 0);
  EXPECT_EQ(audit("backup.prune"), 1u) << "once per run";
}

// Through the real create path: the VM's host refuses (a MemoryHypervisor cannot back up),
// the run's task fails with the agent's reason and nothing is pruned; a VM that does not
// exist is refused and the run's event says so.
TEST_F(BackupSchedulerTest, TheRealCreatePathStartsATaskPerVm) {
  make_vm("run", true, {{"tier", "app"}});
  BackupScheduler real(*store_, *events_, clock_, *backups_);
  ASSERT_TRUE(real.create(
      "app",
      spec_of(
          {{"selector", {{"tier", "app"}}}, {"time", "04:00"}, {"retention", {{"keep_daily", 7}}}}),
      "a"));
  ASSERT_TRUE(real.create("ghost", spec_of({{"vm", "ghost"}, {"time", "04:00"}}), "a"));
  write_backup("run-old", "run", 7);
  at(2026, 12, 1, 4, 0);
  EXPECT_EQ(*real.tick(), 1);
  auto tasks = store_->list_tasks(store::TaskListOptions{});
  ASSERT_TRUE(tasks);
  std::string id;
  for (auto& t : *tasks)
    if (t.kind == "backup.create") id = t.id;
  ASSERT_FALSE(id.empty());
  auto done = wait_task(id);
  EXPECT_EQ(done.state, "failed");
  EXPECT_EQ(*real.tick(), 0);
  EXPECT_EQ(backups_->list("run")->size(), 1u);
  EXPECT_EQ(audit("backup.prune"), 0u);
  size_t errors = 0;
  auto events = store_->list_events(0, 0);
  ASSERT_TRUE(events);
  for (auto& e : *events)
    if (e.action == "backup.schedule.run" && e.target == "backup-schedule/ghost") {
      EXPECT_EQ(e.result, "error");
      EXPECT_NE(e.message.find("ghost"), std::string::npos) << e.message;
      ++errors;
    }
  EXPECT_EQ(errors, 1u);
}

}  // namespace
}  // namespace strata::manager
