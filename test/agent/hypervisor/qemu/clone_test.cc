// Templates and clones on real tiny TCG guests (label qemu): a VM writes a marker to a raw
// block of its disk and stops; a linked clone (qcow2 overlays on its files) and a full clone
// (a flattened copy) both boot and read the marker; their writes stay their own; the
// source cannot be undefined while its linked clone exists.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <thread>

#include "qemu_hypervisor.h"
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

class CloneTest : public ::testing::Test {
 protected:
  void SetUp() override {
    manifest_ = integration::load_guest_images(STRATA_REPO_DIR).values;
    if (manifest_.count("TINY_KERNEL") == 0)
      GTEST_SKIP() << "tiny guest image missing: run scripts/guest-images tiny";
    if (find_executable("qemu-system-x86_64").empty()) GTEST_SKIP() << "no qemu-system-x86_64";
    root_ = "/tmp/stclone-" + std::to_string(::getpid());
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

TEST_F(CloneTest, LinkedAndFullClonesBootWithTheSourcesDataAndKeepTheirWritesApart) {
  auto t0 = std::chrono::steady_clock::now();
  ASSERT_TRUE(hv_->define(tiny("tpl")));
  boot("tpl");
  if (HasFatalFailure()) return;
  write_marker("tpl", 21);
  if (HasFatalFailure()) return;
  // A running source is not cloned.
  auto running = hv_->clone("tpl", tiny("early"), true);
  ASSERT_FALSE(running);
  EXPECT_EQ(running.error().code, ErrorCode::failed_precondition);
  ASSERT_TRUE(hv_->force_off("tpl"));
  auto src = hv_->status("tpl");
  ASSERT_TRUE(src);

  model::VmSpec linked_spec = tiny("linked");
  linked_spec.nics.push_back(model::NicSpec{});
  auto t_linked = std::chrono::steady_clock::now();
  auto linked = hv_->clone("tpl", linked_spec, true);
  ASSERT_TRUE(linked) << linked.error().to_string();
  auto linked_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                       std::chrono::steady_clock::now() - t_linked).count();
  std::vector<std::pair<uint64_t, uint64_t>> seen;
  auto t_full = std::chrono::steady_clock::now();
  auto full = hv_->clone("tpl", tiny("full"), false,
                         [&](uint64_t done, uint64_t total) { seen.push_back({done, total}); });
  ASSERT_TRUE(full) << full.error().to_string();
  auto full_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                     std::chrono::steady_clock::now() - t_full).count();
  ASSERT_FALSE(seen.empty());
  EXPECT_EQ(seen.back().first, seen.back().second);
  // New identity: the driver completes what the spec leaves empty.
  EXPECT_NE(linked->spec.uuid, src->spec.uuid);
  EXPECT_NE(full->spec.uuid, src->spec.uuid);
  ASSERT_EQ(linked->spec.nics.size(), 1u);
  EXPECT_FALSE(linked->spec.nics[0].mac.empty());
  // The disks: an overlay on the source's file, and a copy with no backing.
  auto ld = store_->disk_info("linked", "root");
  auto fd = store_->disk_info("full", "root");
  auto sd = store_->disk_info("tpl", "root");
  ASSERT_TRUE(ld && fd && sd);
  EXPECT_EQ(ld->backing_file, sd->path);
  EXPECT_TRUE(fd->backing_file.empty());
  EXPECT_TRUE(linked->spec.disks[0].base_image.empty());
  EXPECT_EQ(linked->spec.disks[0].size_bytes, sd->virtual_size);

  // The source's undefine is refused while its linked clone exists.
  auto undef = hv_->undefine("tpl");
  ASSERT_FALSE(undef);
  EXPECT_EQ(undef.error().code, ErrorCode::failed_precondition);
  EXPECT_NE(undef.error().message.find("linked"), std::string::npos) << undef.error().message;

  boot("linked");
  if (HasFatalFailure()) return;
  boot("full");
  if (HasFatalFailure()) return;
  EXPECT_EQ(read_marker("linked"), "GEN-21");
  EXPECT_EQ(read_marker("full"), "GEN-21");
  write_marker("linked", 22);
  write_marker("full", 23);
  if (HasFatalFailure()) return;
  EXPECT_EQ(read_marker("linked"), "GEN-22");
  EXPECT_EQ(read_marker("full"), "GEN-23");
  ASSERT_TRUE(hv_->force_off("linked"));
  ASSERT_TRUE(hv_->force_off("full"));
  boot("tpl");  // the source still reads its own data
  if (HasFatalFailure()) return;
  EXPECT_EQ(read_marker("tpl"), "GEN-21");
  ASSERT_TRUE(hv_->force_off("tpl"));

  ASSERT_TRUE(hv_->undefine("linked"));
  EXPECT_TRUE(hv_->undefine("tpl"));
  std::cout << "clone timing: linked_ms=" << linked_ms << " full_ms=" << full_ms
            << " total_s=" << std::chrono::duration_cast<std::chrono::seconds>(
                                  std::chrono::steady_clock::now() - t0).count()
            << "\n";
}

}  // namespace
}  // namespace strata::agent::qemu
