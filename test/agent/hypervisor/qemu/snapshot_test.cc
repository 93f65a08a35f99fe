// Disk snapshots of a real tiny TCG guest (label qemu): external qcow2 overlays taken while
// it runs, reverted while it is stopped, a middle snapshot deleted (merged) while it runs.
// The tiny guest mounts no filesystem: it writes markers to raw blocks of /dev/vda with dd
// and reads them back after each boot.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <thread>

#include "qemu_hypervisor.h"
#include "snapshots.h"
#include "strata/agent/image_store.h"
#include "strata/agent/qemu_hypervisor.h"
#include "strata/agent/qemu_user.h"
#include "strata/common/process.h"
#include "integration/guest_images.h"

namespace strata::agent::qemu {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using model::VmState;

class SnapshotTest : public ::testing::Test {
 protected:
  void SetUp() override {
    manifest_ = integration::load_guest_images(STRATA_REPO_DIR).values;
    if (manifest_.count("TINY_KERNEL") == 0)
      GTEST_SKIP() << "tiny guest image missing: run scripts/guest-images tiny";
    if (find_executable("qemu-system-x86_64").empty()) GTEST_SKIP() << "no qemu-system-x86_64";
    root_ = "/tmp/stsnap-" + std::to_string(::getpid());
    fs::remove_all(root_);
    fs::create_directories(root_);
    auto store = make_image_store(root_ + "/img");
    ASSERT_TRUE(store) << store.error().to_string();
    store_ = std::move(*store);
    for (auto [name, key] : {std::pair{"tiny-kernel", "TINY_KERNEL"},
                             {"tiny-initrd", "TINY_INITRD"},
                             {"tiny-base", "TINY_BASE"}}) {
      auto r = store_->import_image(name, manifest_[key]);
      ASSERT_TRUE(r) << r.error().to_string();
    }
    QemuOptions o;
    o.state_dir = root_ + "/state";
    o.accelerator = "tcg";
    o.images = store_.get();
    o.shim_exe = STRATA_TEST_SHIM;
    auto user = decide_qemu_user(std::nullopt, ::geteuid(), lookup_system_user);
    ASSERT_TRUE(user) << user.error().to_string();
    o.run_as = user->user;
    auto hv = make_qemu_hypervisor(std::move(o));
    ASSERT_TRUE(hv) << hv.error().to_string();
    hv_.reset(dynamic_cast<QemuHypervisor*>(hv->release()));
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

  // Runs `cmd` on the guest's console until `expect` appears in the output (input sent
  // before the shell reads is lost, so it is retried).
  void run(const std::string& name, const std::string& cmd, const std::string& expect) {
    ASSERT_TRUE(wait_for(
        [&] {
          if (tail(name).find(expect) != std::string::npos) return true;
          (void)hv_->console_write(name, cmd + "\n");
          return wait_for([&] { return tail(name).find(expect) != std::string::npos; }, 4s);
        },
        120s))
        << "waiting for " << expect << " after: " << cmd << "\n"
        << tail(name);
  }

  void boot(const std::string& name) {
    auto s = hv_->start(name);
    ASSERT_TRUE(s) << s.error().to_string();
    ASSERT_TRUE(
        wait_for([&] { return tail(name).find("STRATA-READY") != std::string::npos; }, 180s))
        << tail(name);
  }

  // Writes GEN-<gen> to block 100000 of the disk. The typed command holds "$((...))",
  // only the guest's answer holds the marker.
  void write_marker(const std::string& name, int gen) {
    ++seq_;
    run(name,
        "echo GEN-$((" + std::to_string(gen) +
            "+0)) | dd of=/dev/vda bs=512 seek=100000 "
            "conv=fsync 2>/dev/null && echo W$((" +
            std::to_string(seq_) + "+0))-DONE",
        "W" + std::to_string(seq_) + "-DONE");
  }
  // Reads the marker back: "R<n>-GEN-<gen>-END" on the console.
  std::string read_marker(const std::string& name) {
    ++seq_;
    std::string tag = "R" + std::to_string(seq_) + "-";
    // The answer is "R<n>-...-END" (the typed command holds "R$((n+0))-"), so wait for the
    // tag and then for its end.
    run(name,
        "echo R$((" + std::to_string(seq_) +
            "+0))-$(dd if=/dev/vda bs=512 skip=100000 count=1 "
            "2>/dev/null | head -c 6)-END",
        tag);
    if (HasFatalFailure()) return "";
    wait_for(
        [&] {
          std::string t = tail(name);
          auto at = t.rfind(tag);
          return at != std::string::npos && t.find("-END", at) != std::string::npos;
        },
        10s);
    std::string t = tail(name);
    auto at = t.rfind(tag);
    if (at == std::string::npos) return "";
    auto end = t.find("-END", at);
    return end == std::string::npos ? "" : t.substr(at + tag.size(), end - at - tag.size());
  }

  size_t disk_files(const std::string& name) {
    size_t n = 0;
    for (auto& e : fs::directory_iterator(root_ + "/img/vms/" + name)) n += e.is_regular_file();
    return n;
  }

  std::map<std::string, std::string> manifest_;
  std::string root_;
  ImageStorePtr store_;
  std::unique_ptr<QemuHypervisor> hv_;
  int seq_ = 0;
};

TEST_F(SnapshotTest, RevertRestoresTheDiskAndDeletingAMiddleSnapshotKeepsTheLaterOnesData) {
  const std::string name = "snap1";
  auto t0 = std::chrono::steady_clock::now();
  ASSERT_TRUE(hv_->define(tiny(name)));
  boot(name);
  if (HasFatalFailure()) return;
  write_marker(name, 11);
  if (HasFatalFailure()) return;
  // Two snapshots of the running guest, with a write between them and after them.
  auto s1 = hv_->snapshot_create(name, "s1");
  ASSERT_TRUE(s1) << s1.error().to_string();
  EXPECT_EQ(s1->consistency, "crash");  // the tiny guest has no guest agent
  EXPECT_EQ(s1->vm_state, "running");
  write_marker(name, 12);
  if (HasFatalFailure()) return;
  auto s2 = hv_->snapshot_create(name, "s2");
  ASSERT_TRUE(s2) << s2.error().to_string();
  EXPECT_EQ(s2->parent, "s1");
  write_marker(name, 13);
  if (HasFatalFailure()) return;
  EXPECT_EQ(read_marker(name), "GEN-13");
  EXPECT_EQ(hv_->snapshot_create(name, "s2").error().code, ErrorCode::already_exists);
  // Revert needs the VM stopped.
  EXPECT_EQ(hv_->snapshot_revert(name, "s1").error().code, ErrorCode::failed_precondition);
  ASSERT_TRUE(hv_->force_off(name));

  auto r = hv_->snapshot_revert(name, "s1");
  ASSERT_TRUE(r) << r.error().to_string();
  boot(name);
  if (HasFatalFailure()) return;
  EXPECT_EQ(read_marker(name), "GEN-11");
  write_marker(name, 14);  // the state after the revert, on top of s1
  if (HasFatalFailure()) return;

  // Delete the middle snapshot s1 while the guest runs: its data streams into the running
  // disk (block-stream) and into s2's file (qemu-img rebase).
  std::vector<std::pair<uint64_t, uint64_t>> progress;
  auto d = hv_->snapshot_delete(
      name, "s1", [&](uint64_t done, uint64_t total) { progress.emplace_back(done, total); });
  ASSERT_TRUE(d) << d.error().to_string();
  ASSERT_FALSE(progress.empty());
  EXPECT_EQ(progress.back().first, progress.back().second);
  auto list = hv_->snapshot_list(name);
  ASSERT_TRUE(list);
  ASSERT_EQ(list->size(), 1u);
  EXPECT_EQ((*list)[0].name, "s2");
  EXPECT_EQ((*list)[0].parent, "");
  EXPECT_FALSE((*list)[0].current);
  // The running disk still reads what it wrote after the revert.
  EXPECT_EQ(read_marker(name), "GEN-14");

  // Restarted, the VM still boots on its merged chain; then s2's data is intact.
  ASSERT_TRUE(hv_->force_off(name));
  boot(name);
  if (HasFatalFailure()) return;
  EXPECT_EQ(read_marker(name), "GEN-14");
  ASSERT_TRUE(hv_->force_off(name));
  ASSERT_TRUE(hv_->snapshot_revert(name, "s2"));
  boot(name);
  if (HasFatalFailure()) return;
  EXPECT_EQ(read_marker(name), "GEN-12");
  // Deleting the last snapshot of a stopped VM (qemu-img rebase) keeps the current data.
  write_marker(name, 15);
  if (HasFatalFailure()) return;
  ASSERT_TRUE(hv_->force_off(name));
  auto d2 = hv_->snapshot_delete(name, "s2");
  ASSERT_TRUE(d2) << d2.error().to_string();
  EXPECT_EQ(disk_files(name), 1u);  // only the active overlay is left
  boot(name);
  if (HasFatalFailure()) return;
  EXPECT_EQ(read_marker(name), "GEN-15");
  ASSERT_TRUE(hv_->force_off(name));
  // Undefine removes every overlay file.
  ASSERT_TRUE(hv_->undefine(name));
  EXPECT_FALSE(fs::exists(root_ + "/img/vms/" + name));
  EXPECT_FALSE(fs::exists(root_ + "/state/vms/" + name));
  std::printf("snapshot test: %lld ms\n",
              (long long)std::chrono::duration_cast<std::chrono::milliseconds>(
                  std::chrono::steady_clock::now() - t0)
                  .count());
}

// A VM with snapshots is deleted cleanly, overlay files and all.
TEST_F(SnapshotTest, StoppedSnapshotsAndUndefineRemovesEveryFile) {
  const std::string name = "snap2";
  ASSERT_TRUE(hv_->define(tiny(name)));
  ASSERT_TRUE(hv_->snapshot_create(name, "a"));
  ASSERT_TRUE(hv_->snapshot_create(name, "b"));
  ASSERT_TRUE(hv_->snapshot_revert(name, "a"));
  ASSERT_TRUE(hv_->snapshot_create(name, "c"));  // a fork: a has children b and c
  auto list = hv_->snapshot_list(name);
  ASSERT_TRUE(list);
  ASSERT_EQ(list->size(), 3u);
  EXPECT_EQ((*list)[2].parent, "a");
  EXPECT_TRUE((*list)[2].current);
  EXPECT_EQ(hv_->snapshot_revert(name, "nope").error().code, ErrorCode::not_found);
  EXPECT_EQ(hv_->snapshot_create(name, "Bad_Name").error().code, ErrorCode::invalid_argument);
  // a has two dependents: both get its data.
  ASSERT_TRUE(hv_->snapshot_delete(name, "a"));
  EXPECT_EQ(disk_files(name), 3u);  // b, c, active
  EXPECT_GT(disk_files(name), 0u);
  ASSERT_TRUE(hv_->undefine(name));
  EXPECT_FALSE(fs::exists(root_ + "/img/vms/" + name));
}

}  // namespace
}  // namespace strata::agent::qemu
