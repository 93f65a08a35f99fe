// Backups of a real tiny TCG guest (label qemu; docs/internals/backup.md): the guest writes
// random raw blocks with dd (it mounts no filesystem); a full backup, ~6 % rewritten, a
// clean restart (the persistent bitmap survives), an incremental that reads only what
// changed, both restored into new VMs' disks and compared by checksum; QEMU killed -9 (the
// bitmap is inconsistent: the next backup is full); a snapshot reverted (full, then
// incremental again); the agent killed -9 mid-backup (a
// forked child running the driver): nothing corrupt, the next backup is full, the
// repository verifies and gc removes the leftovers.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <map>
#include <thread>
#include <tuple>

#include "integration/guest_images.h"
#include "qemu_hypervisor.h"
#include "strata/agent/image_store.h"
#include "strata/agent/qemu_hypervisor.h"
#include "strata/agent/qemu_user.h"
#include "strata/backup/repository.h"
#include "strata/common/process.h"
#include "strata/common/sha256.h"

namespace strata::agent::qemu {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using model::VmState;
constexpr uint64_t MiB = 1 << 20;

class BackupTest : public ::testing::Test {
 protected:
  void SetUp() override {
    manifest_ = integration::load_guest_images(STRATA_REPO_DIR).values;
    if (manifest_.count("TINY_KERNEL") == 0)
      GTEST_SKIP() << "tiny guest image missing: run scripts/guest-images tiny";
    if (find_executable("qemu-system-x86_64").empty()) GTEST_SKIP() << "no qemu-system-x86_64";
    if (find_executable("qemu-nbd").empty()) GTEST_SKIP() << "no qemu-nbd";
    root_ = "/tmp/stbk-" + std::to_string(::getpid());
    fs::remove_all(root_);
    fs::create_directories(root_ + "/repo");
    auto store = make_image_store(root_ + "/img");
    ASSERT_TRUE(store) << store.error().to_string();
    store_ = std::move(*store);
    for (auto [name, key] : {std::pair{"tiny-kernel", "TINY_KERNEL"},
                             {"tiny-initrd", "TINY_INITRD"},
                             {"tiny-base", "TINY_BASE"}}) {
      auto r = store_->import_image(name, manifest_[key]);
      ASSERT_TRUE(r) << r.error().to_string();
    }
    fs::create_directories(root_ + "/ds");
    auto ds = Datastores::open({{"shared", root_ + "/ds"}});
    ASSERT_TRUE(ds) << ds.error().to_string();
    datastores_ = std::move(*ds);
    hv_ = make();
    ASSERT_TRUE(hv_);
  }

  std::unique_ptr<QemuHypervisor> make() {
    QemuOptions o;
    o.state_dir = root_ + "/state";
    o.accelerator = "tcg";
    o.images = store_.get();
    o.datastores = datastores_.get();
    o.shim_exe = STRATA_TEST_SHIM;
    auto user = decide_qemu_user(std::nullopt, ::geteuid(), lookup_system_user);
    if (!user) return nullptr;
    o.run_as = user->user;
    auto hv = make_qemu_hypervisor(std::move(o));
    if (!hv) return nullptr;
    return std::unique_ptr<QemuHypervisor>(dynamic_cast<QemuHypervisor*>(hv->release()));
  }

  void TearDown() override {
    if (hv_) {
      for (auto& st : hv_->list()) {
        if (st.state == VmState::running || st.state == VmState::paused)
          (void)hv_->force_off(st.spec.name);
        (void)hv_->undefine(st.spec.name);
      }
      hv_.reset();
    }
    if (!root_.empty()) fs::remove_all(root_);
  }

  model::VmSpec tiny(const std::string& name) {
    model::VmSpec s;
    s.name = name;
    s.memory_mib = 256;
    s.kernel_boot = model::KernelBoot{"tiny-kernel", "tiny-initrd", manifest_["TINY_CMDLINE"]};
    s.disks.push_back({"root", "tiny-base", 0, false, false, "", ""});
    return s;
  }
  // A stopped VM to restore into: one blank disk named like the backed-up one.
  model::VmSpec blank(const std::string& name) {
    model::VmSpec s = tiny(name);
    s.disks[0] = {"root", "", 64 * MiB, false, false, "", ""};
    return s;
  }

  std::string tail(const std::string& name) {
    auto t = hv_->console_tail(name, 1 << 20);
    return t ? *t : "";
  }

  template <class Pred>
  bool wait_for(Pred pred, std::chrono::seconds limit) {
    auto deadline = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < deadline) {
      if (pred()) return true;
      std::this_thread::sleep_for(100ms);
    }
    return false;
  }

  void run(const std::string& name, const std::string& cmd, const std::string& expect) {
    ASSERT_TRUE(wait_for(
        [&] {
          if (tail(name).find(expect) != std::string::npos) return true;
          (void)hv_->console_write(name, cmd + "\n");
          return wait_for([&] { return tail(name).find(expect) != std::string::npos; }, 8s);
        },
        120s))
        << "waiting for " << expect << " after: " << cmd << "\n"
        << tail(name);
  }

  // Starts the VM and waits for this boot's ready line (the console log keeps the earlier
  // boots' lines: a restart waits for one more than it had).
  void boot(const std::string& name) {
    auto readies = [&] {
      const std::string t = tail(name);
      size_t n = 0;
      for (size_t at = t.find("STRATA-READY"); at != std::string::npos;
           at = t.find("STRATA-READY", at + 1))
        ++n;
      return n;
    };
    const size_t before = readies();
    auto s = hv_->start(name);
    ASSERT_TRUE(s) << s.error().to_string();
    ASSERT_TRUE(wait_for([&] { return readies() > before; }, 180s)) << tail(name);
  }

  // The guest writes `mib` MiB of random data at MiB offset `at` of its disk, flushed.
  void write_random(const std::string& name, int at, int mib) {
    ++seq_;
    run(name,
        "dd if=/dev/urandom of=/dev/vda bs=1M seek=" + std::to_string(at) +
            " count=" + std::to_string(mib) + " conv=fsync 2>/dev/null && echo W$((" +
            std::to_string(seq_) + "+0))-DONE",
        "W" + std::to_string(seq_) + "-DONE");
  }

  // sha256 of everything a VM's disk file reads (through its chain), read beside QEMU.
  std::string disk_sha(const std::string& vm) {
    auto info = store_->disk_info(vm, "root");
    EXPECT_TRUE(info) << info.error().to_string();
    if (!info) return "";
    std::string raw = root_ + "/sha.raw";
    auto r = run_checked({"qemu-img", "convert", "-U", "-O", "raw", info->path, raw});
    EXPECT_TRUE(r) << r.error().to_string();
    auto h = sha256_file(raw);
    fs::remove(raw);
    return h ? *h : "";
  }

  std::string restored_sha(const std::string& vm, const std::string& id) {
    auto d = hv_->define(blank(vm));
    EXPECT_TRUE(d) << d.error().to_string();
    auto r = hv_->restore_disks(vm, repo(), id, "");
    EXPECT_TRUE(r) << r.error().to_string();
    return disk_sha(vm);
  }

  Result<BackupOutcome> backup(const std::string& vm, const std::string& id, bool full = false) {
    return hv_->backup(vm, BackupRequest{repo(), id, full, ""});
  }

  std::string repo() const { return root_ + "/repo"; }

  // A VM whose root disk is on datastore "shared" (a full copy of the base there, or blank).
  model::VmSpec on_datastore(const std::string& name, const std::string& uuid, bool blank_disk) {
    model::VmSpec s = blank_disk ? blank(name) : tiny(name);
    s.uuid = uuid;
    s.disks[0].datastore = "shared";
    return s;
  }
  std::string ds_disk(const std::string& uuid) const {
    return root_ + "/ds/vms/" + uuid + "/root.qcow2";
  }
  // sha256 of what a file reads, read beside QEMU.
  std::string file_sha(const std::string& path) {
    std::string raw = root_ + "/sha.raw";
    auto r = run_checked({"qemu-img", "convert", "-U", "-O", "raw", path, raw});
    EXPECT_TRUE(r) << r.error().to_string();
    auto h = sha256_file(raw);
    fs::remove(raw);
    return h ? *h : "";
  }

  std::map<std::string, std::string> manifest_;
  std::string root_;
  ImageStorePtr store_;
  DatastoresPtr datastores_;
  std::unique_ptr<QemuHypervisor> hv_;
  int seq_ = 0;
};

TEST_F(BackupTest, FullIncrementalAcrossARestartRestoreAndUncleanExit) {
  const std::string name = "bk1";
  ASSERT_TRUE(hv_->define(tiny(name)));
  boot(name);
  if (HasFatalFailure()) return;
  write_random(name, 16, 16);
  if (HasFatalFailure()) return;

  auto b1 = backup(name, "b1");
  ASSERT_TRUE(b1) << b1.error().to_string();
  EXPECT_EQ(b1->kind, "full");
  EXPECT_EQ(b1->full_reason, "no earlier backup of the VM");
  EXPECT_FALSE(b1->frozen);  // the tiny guest has no guest agent
  EXPECT_GE(b1->bytes_new, 16 * MiB);
  EXPECT_LT(b1->bytes_new, 64 * MiB);  // zero chunks are not stored
  const std::string sha1 = disk_sha(name);

  // 4 MiB rewritten (one chunk-aligned extent: 6 % of the disk), then a clean restart:
  // the persistent bitmap is stored in the qcow2 and comes back.
  write_random(name, 40, 4);
  if (HasFatalFailure()) return;
  ASSERT_TRUE(hv_->shutdown(name, 120s));
  boot(name);
  if (HasFatalFailure()) return;
  auto b2 = backup(name, "b2");
  ASSERT_TRUE(b2) << b2.error().to_string();
  EXPECT_EQ(b2->kind, "incremental") << b2->full_reason;
  EXPECT_EQ(b2->parent, "b1");
  EXPECT_EQ(b2->bytes_read, 4 * MiB);
  EXPECT_EQ(b2->bytes_new, 4 * MiB);
  const std::string sha2 = disk_sha(name);
  ASSERT_NE(sha1, sha2);

  EXPECT_EQ(restored_sha("r1", "b1"), sha1);
  EXPECT_EQ(restored_sha("r2", "b2"), sha2);
  auto restored_running = hv_->restore_disks(name, repo(), "b1", "");
  ASSERT_FALSE(restored_running);
  EXPECT_EQ(restored_running.error().code, ErrorCode::failed_precondition);

  // QEMU killed: a bitmap QEMU loaded from the qcow2 is marked in-use there while QEMU
  // runs; after a kill -9 the next QEMU finds the mark and reports it inconsistent. (One
  // made in the killed run never reached the image at all: "no bitmap", full as well.)
  // QMP quit (force_off) closes the images cleanly, storing the bitmap.
  ASSERT_TRUE(hv_->force_off(name));
  boot(name);
  if (HasFatalFailure()) return;
  auto st = hv_->status(name);
  ASSERT_TRUE(st);
  ASSERT_EQ(::kill(st->pid, SIGKILL), 0);
  ASSERT_TRUE(wait_for([&] { return hv_->status(name)->state == VmState::crashed; }, 30s));
  boot(name);
  if (HasFatalFailure()) return;
  auto b3 = backup(name, "b3");
  ASSERT_TRUE(b3) << b3.error().to_string();
  EXPECT_EQ(b3->kind, "full");
  EXPECT_NE(b3->full_reason.find("inconsistent"), std::string::npos) << b3->full_reason;
  EXPECT_EQ(b3->bytes_new, 0u);  // every chunk deduplicated against b1/b2
  auto b4 = backup(name, "b4");  // and the new bitmap is good again
  ASSERT_TRUE(b4) << b4.error().to_string();
  EXPECT_EQ(b4->kind, "incremental") << b4->full_reason;
  EXPECT_EQ(b4->bytes_read, 0u);

  // Snapshots are external overlays: a snapshot and a revert leave the bitmap in a
  // read-only backing file (QEMU 7.2's refusal to revert internal snapshots of images with
  // persistent bitmaps does not arise); the guest then writes a new top file without it,
  // so the next backup is full and exact.
  ASSERT_TRUE(hv_->force_off(name));
  ASSERT_TRUE(hv_->snapshot_create(name, "s1"));
  auto rv = hv_->snapshot_revert(name, "s1");
  ASSERT_TRUE(rv) << rv.error().to_string();
  boot(name);
  if (HasFatalFailure()) return;
  auto b5 = backup(name, "b5");
  ASSERT_TRUE(b5) << b5.error().to_string();
  EXPECT_EQ(b5->kind, "full");
  EXPECT_NE(b5->full_reason.find("no bitmap"), std::string::npos) << b5->full_reason;
  EXPECT_EQ(b5->bytes_new, 0u);  // the same data as b4
  auto b6 = backup(name, "b6");
  ASSERT_TRUE(b6) << b6.error().to_string();
  EXPECT_EQ(b6->kind, "incremental") << b6->full_reason;

  auto r = backup::Repository::open(repo());
  ASSERT_TRUE(r);
  for (auto id : {"b1", "b2", "b3", "b4", "b5", "b6"}) {
    auto v = r->verify(id);
    ASSERT_TRUE(v) << v.error().to_string();
    EXPECT_TRUE(v->problems.empty()) << id << ": " << v->problems.front();
  }
}

// A stopped VM is backed up offline (a private read-only qemu-nbd over its disk, the qcow2's
// own bitmaps), and its backups chain with live ones both ways: the bitmap an offline
// backup adds is the one QEMU records into at the next start, and the one QEMU stores at a
// clean stop is the one the next offline backup reads.
TEST_F(BackupTest, StoppedVmsBackUpOfflineAndChainWithLiveBackups) {
  const std::string name = "bko";
  ASSERT_TRUE(hv_->define(tiny(name)));
  boot(name);
  if (HasFatalFailure()) return;
  write_random(name, 16, 16);
  if (HasFatalFailure()) return;
  ASSERT_TRUE(hv_->shutdown(name, 120s));

  auto o1 = backup(name, "o1");
  ASSERT_TRUE(o1) << o1.error().to_string();
  EXPECT_EQ(o1->kind, "full");
  EXPECT_EQ(o1->full_reason, "no earlier backup of the VM");
  EXPECT_FALSE(o1->frozen);
  EXPECT_GE(o1->bytes_new, 16 * MiB);
  EXPECT_LT(o1->bytes_new, 64 * MiB);
  const std::string sha1 = disk_sha(name);
  auto o2 = backup(name, "o2");  // nothing written since: an empty incremental
  ASSERT_TRUE(o2) << o2.error().to_string();
  EXPECT_EQ(o2->kind, "incremental") << o2->full_reason;
  EXPECT_EQ(o2->parent, "o1");
  EXPECT_EQ(o2->bytes_read, 0u);

  // Started again: QEMU loads the bitmap the offline backup added and records into it.
  boot(name);
  if (HasFatalFailure()) return;
  write_random(name, 40, 4);
  if (HasFatalFailure()) return;
  auto o3 = backup(name, "o3");
  ASSERT_TRUE(o3) << o3.error().to_string();
  EXPECT_EQ(o3->kind, "incremental") << o3->full_reason;
  EXPECT_EQ(o3->parent, "o2");
  EXPECT_EQ(o3->bytes_read, 4 * MiB);

  // Stopped cleanly: QEMU stored the live backup's bitmap in the qcow2.
  write_random(name, 48, 4);
  if (HasFatalFailure()) return;
  ASSERT_TRUE(hv_->shutdown(name, 120s));
  auto o4 = backup(name, "o4");
  ASSERT_TRUE(o4) << o4.error().to_string();
  EXPECT_EQ(o4->kind, "incremental") << o4->full_reason;
  EXPECT_EQ(o4->parent, "o3");
  EXPECT_EQ(o4->bytes_read, 4 * MiB);
  const std::string sha4 = disk_sha(name);
  ASSERT_NE(sha1, sha4);
  EXPECT_EQ(restored_sha("ro1", "o1"), sha1);
  EXPECT_EQ(restored_sha("ro4", "o4"), sha4);

  auto r = backup::Repository::open(repo());
  ASSERT_TRUE(r);
  for (auto id : {"o1", "o2", "o3", "o4"}) {
    auto v = r->verify(id);
    ASSERT_TRUE(v) << v.error().to_string();
    EXPECT_TRUE(v->problems.empty()) << id << ": " << v->problems.front();
  }
}

// A VM whose disk is on a datastore (shared storage): backed up live (full, then an
// incremental of what the guest rewrote) and offline, from its file on the datastore; a
// restore, into a new VM and over the stopped VM itself, writes the datastore file (never a
// local disk in the host's store), which then reads as the disk did at each backup.
TEST_F(BackupTest, DatastoreDisksBackUpAndRestoreOnTheirDatastore) {
  const std::string name = "bkd";
  const std::string uuid = "5e1f0c8a-1111-4111-8111-000000000001";
  auto def = hv_->define(on_datastore(name, uuid, false));
  ASSERT_TRUE(def) << def.error().to_string();
  ASSERT_TRUE(fs::exists(ds_disk(uuid)));
  boot(name);
  if (HasFatalFailure()) return;
  write_random(name, 16, 16);
  if (HasFatalFailure()) return;

  auto d1 = backup(name, "d1");
  ASSERT_TRUE(d1) << d1.error().to_string();
  EXPECT_EQ(d1->kind, "full");
  EXPECT_GE(d1->bytes_new, 16 * MiB);
  const std::string sha1 = file_sha(ds_disk(uuid));
  write_random(name, 40, 4);
  if (HasFatalFailure()) return;
  auto d2 = backup(name, "d2");
  ASSERT_TRUE(d2) << d2.error().to_string();
  EXPECT_EQ(d2->kind, "incremental") << d2->full_reason;
  EXPECT_EQ(d2->parent, "d1");
  EXPECT_EQ(d2->bytes_read, 4 * MiB);
  ASSERT_TRUE(hv_->shutdown(name, 120s));
  const std::string sha2 = file_sha(ds_disk(uuid));
  ASSERT_NE(sha1, sha2);
  auto d3 = backup(name, "d3");  // offline: the bitmap QEMU stored in the datastore file
  ASSERT_TRUE(d3) << d3.error().to_string();
  EXPECT_EQ(d3->kind, "incremental") << d3->full_reason;
  EXPECT_EQ(d3->bytes_read, 0u);

  // Into a new VM whose (blank) disk is on the datastore.
  const std::string uuid2 = "5e1f0c8a-1111-4111-8111-000000000002";
  auto def2 = hv_->define(on_datastore("bkd-copy", uuid2, true));
  ASSERT_TRUE(def2) << def2.error().to_string();
  auto r1 = hv_->restore_disks("bkd-copy", repo(), "d1", "");
  ASSERT_TRUE(r1) << r1.error().to_string();
  EXPECT_EQ(file_sha(ds_disk(uuid2)), sha1);
  EXPECT_FALSE(store_->disk_info("bkd-copy", "root")) << "nothing restored to local storage";

  // Over the stopped VM's own disk: back to d1, and forward again to d3.
  auto r2 = hv_->restore_disks(name, repo(), "d1", "");
  ASSERT_TRUE(r2) << r2.error().to_string();
  EXPECT_EQ(file_sha(ds_disk(uuid)), sha1);
  auto r3 = hv_->restore_disks(name, repo(), "d3", "");
  ASSERT_TRUE(r3) << r3.error().to_string();
  EXPECT_EQ(file_sha(ds_disk(uuid)), sha2);
  EXPECT_FALSE(store_->disk_info(name, "root"));
  for (auto& e : fs::directory_iterator(root_ + "/ds/vms/" + uuid))
    EXPECT_EQ(e.path().filename(), "root.qcow2") << "a restore's temp file was left";
  boot(name);  // the restored datastore disk boots
  if (HasFatalFailure()) return;

  auto r = backup::Repository::open(repo());
  ASSERT_TRUE(r);
  for (auto id : {"d1", "d2", "d3"}) {
    auto v = r->verify(id);
    ASSERT_TRUE(v) << v.error().to_string();
    EXPECT_TRUE(v->problems.empty()) << id << ": " << v->problems.front();
  }
}

// The agent is killed -9 in the middle of a backup: a forked child runs the driver (as a
// restarted agent would: recover, re-attach) and is killed once chunks are flowing.
// An encrypted repository through the driver: the key arrives in the request (as the
// agent's gRPC call hands it over), a full and an incremental restore with it to the
// guest's data, and without it both the backup and the restore are refused.
TEST_F(BackupTest, AnEncryptedRepositoryBacksUpAndRestoresOnlyWithItsKey) {
  auto key = backup::RepoKey::generate();
  ASSERT_TRUE(key);
  const std::string enc = root_ + "/enc";
  fs::create_directories(enc);
  {
    auto init = backup::Repository::open(enc, &*key);
    ASSERT_TRUE(init) << init.error().to_string();
  }
  const std::string raw(key->raw());
  const std::string name = "ebk";
  ASSERT_TRUE(hv_->define(tiny(name)));
  boot(name);
  if (HasFatalFailure()) return;
  write_random(name, 8, 8);
  if (HasFatalFailure()) return;
  auto e1 = hv_->backup(name, BackupRequest{enc, "e1", false, raw});
  ASSERT_TRUE(e1) << e1.error().to_string();
  EXPECT_EQ(e1->kind, "full");
  const std::string sha1 = disk_sha(name);
  write_random(name, 24, 4);
  if (HasFatalFailure()) return;
  auto e2 = hv_->backup(name, BackupRequest{enc, "e2", false, raw});
  ASSERT_TRUE(e2) << e2.error().to_string();
  EXPECT_EQ(e2->kind, "incremental") << e2->full_reason;
  EXPECT_EQ(e2->bytes_new, 4 * MiB);
  const std::string sha2 = disk_sha(name);

  auto plain = hv_->backup(name, BackupRequest{enc, "e3", false, ""});
  ASSERT_FALSE(plain);
  EXPECT_NE(plain.error().message.find("is encrypted"), std::string::npos) << plain.error().message;

  auto repo = backup::Repository::open(enc, &*key);
  ASSERT_TRUE(repo);
  auto v = repo->verify("e2");
  ASSERT_TRUE(v);
  EXPECT_TRUE(v->problems.empty());
  for (auto [vm, id, sha] : {std::tuple{"er1", "e1", sha1}, {"er2", "e2", sha2}}) {
    ASSERT_TRUE(hv_->define(blank(vm)));
    auto refused = hv_->restore_disks(vm, enc, id, "");
    EXPECT_FALSE(refused);
    auto r = hv_->restore_disks(vm, enc, id, raw);
    ASSERT_TRUE(r) << r.error().to_string();
    EXPECT_EQ(disk_sha(vm), sha) << id;
  }
}

TEST_F(BackupTest, AgentKilledMidBackupLeavesNothingCorruptAndTheNextBackupIsFull) {
  const std::string name = "bk2";
  ASSERT_TRUE(hv_->define(tiny(name)));
  boot(name);
  if (HasFatalFailure()) return;
  write_random(name, 0, 24);
  if (HasFatalFailure()) return;
  auto b1 = backup(name, "b1");
  ASSERT_TRUE(b1) << b1.error().to_string();
  write_random(name, 8, 24);
  if (HasFatalFailure()) return;

  hv_.reset();  // the agent stops; QEMU runs on under its shim
  const std::string flag = root_ + "/child-progress";
  fflush(nullptr);
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    auto hv = make();
    if (!hv || !hv->recover()) ::_exit(2);
    for (int i = 0; i < 100; ++i) {  // QMP re-attaches in the background
      auto st = hv->status(name);
      if (st && st->state == VmState::running) break;
      std::this_thread::sleep_for(100ms);
    }
    std::atomic<bool> said{false};
    auto r = hv->backup(name, BackupRequest{repo(), "b2", false, ""}, [&](uint64_t, uint64_t) {
      if (!said.exchange(true)) std::ofstream(flag) << "1";
      std::this_thread::sleep_for(200ms);  // slow enough to be killed mid-way
    });
    ::_exit(r ? 0 : 1);
  }
  bool progressed = wait_for([&] { return fs::exists(flag); }, 60s);
  ::kill(pid, SIGKILL);
  int status = 0;
  ::waitpid(pid, &status, 0);
  ASSERT_TRUE(progressed) << "the child never started copying";
  ASSERT_TRUE(WIFSIGNALED(status));

  hv_ = make();
  ASSERT_TRUE(hv_);
  ASSERT_TRUE(hv_->recover());
  ASSERT_TRUE(wait_for([&] { return hv_->status(name)->state == VmState::running; }, 30s));
  auto r = backup::Repository::open(repo());
  ASSERT_TRUE(r);
  auto l = r->list(name);
  ASSERT_TRUE(l);
  EXPECT_EQ(l->size(), 1u);  // b2 never existed
  // The next backup cleans QEMU up (export, job, fleecing node) and is full: the parent's
  // bitmap was left disabled by the killed run.
  auto b3 = backup(name, "b3");
  ASSERT_TRUE(b3) << b3.error().to_string();
  EXPECT_EQ(b3->kind, "full");
  EXPECT_NE(b3->full_reason.find("not recording"), std::string::npos) << b3->full_reason;
  EXPECT_EQ(disk_sha(name), restored_sha("r3", "b3"));
  {
    auto lock = r->lock_exclusive();
    ASSERT_TRUE(lock) << lock.error().to_string();
    auto gc = r->gc();
    ASSERT_TRUE(gc) << gc.error().to_string();
    EXPECT_EQ(gc->incomplete_removed, 1u);
  }
  for (auto id : {"b1", "b3"}) {
    auto v = r->verify(id);
    ASSERT_TRUE(v) << v.error().to_string();
    EXPECT_TRUE(v->problems.empty()) << id;
  }
  auto b4 = backup(name, "b4");
  ASSERT_TRUE(b4) << b4.error().to_string();
  EXPECT_EQ(b4->kind, "incremental") << b4->full_reason;
}

}  // namespace
}  // namespace strata::agent::qemu
