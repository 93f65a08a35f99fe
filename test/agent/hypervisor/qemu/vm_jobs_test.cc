// The driver's lock and job rules without QEMU (docs/internals/qemu-driver.md): a define
// whose disk creation is slow (an image store held on a latch, standing in for qemu-img)
// must not block queries or defines of other VMs, and its name stays reserved meanwhile.
// Ordering and latches only, no timing assertions; the futures' long waits only turn a
// regression (a blocked query) into a failure instead of a hung test.
#include <gtest/gtest.h>
#include <unistd.h>

#include <condition_variable>
#include <filesystem>
#include <future>
#include <mutex>

#include "qemu_hypervisor.h"
#include "strata/agent/image_store.h"
#include "strata/agent/qemu_hypervisor.h"

namespace strata::agent::qemu {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

// An image store whose create_blank for VM "slow" waits until released.
class LatchedImageStore final : public ImageStore {
 public:
  explicit LatchedImageStore(std::string root) : root_(std::move(root)) {}
  const std::string& root() const override { return root_; }
  std::vector<ImageInfo> list_images() const override { return {}; }
  Result<ImageInfo> image(const std::string& name) const override {
    return not_found("no image " + name);
  }
  Result<ImageInfo> import_image(const std::string&, const std::string&,
                                 const std::string&) override {
    return internal_error("unused");
  }
  Status delete_image(const std::string&) override { return {}; }
  Result<ImageInfo> create_overlay(const std::string&, const std::string&, const std::string&,
                                   uint64_t) override {
    return internal_error("unused");
  }
  Result<ImageInfo> create_blank(const std::string& vm, const std::string& disk,
                                 uint64_t size) override {
    if (vm == "slow") {
      std::unique_lock lk(mu_);
      entered_ = true;
      cv_.notify_all();
      cv_.wait(lk, [&] { return released_; });
    }
    ImageInfo i;
    i.name = disk;
    i.path = root_ + "/" + vm + "-" + disk + ".qcow2";
    i.format = "qcow2";
    i.virtual_size = size;
    return i;
  }
  // start() resolves the disks first: for VM "slow" this holds a start job on the latch.
  Result<ImageInfo> disk_info(const std::string& vm, const std::string&) const override {
    if (vm == "slow") {
      std::unique_lock lk(mu_);
      entered_ = true;
      cv_.notify_all();
      cv_.wait(lk, [&] { return released_; });
    }
    return unavailable("no disks in this test");
  }
  Status resize_disk(const std::string&, const std::string&, uint64_t) override { return {}; }
  Status delete_vm_disks(const std::string&) override { return {}; }

  void wait_entered() {
    std::unique_lock lk(mu_);
    cv_.wait(lk, [&] { return entered_; });
  }
  void release() {
    std::lock_guard lk(mu_);
    released_ = true;
    cv_.notify_all();
  }
  void rearm() {
    std::lock_guard lk(mu_);
    entered_ = released_ = false;
  }

 private:
  std::string root_;
  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  mutable bool entered_ = false;
  bool released_ = false;
};

model::VmSpec spec_named(const std::string& name) {
  model::VmSpec s;
  s.name = name;
  s.disks.push_back({"root", "", 1 << 20, true, false, "", ""});
  return s;
}

TEST(QemuDriverJobs, SlowDefineDoesNotBlockOtherVms) {
  std::string root = fs::temp_directory_path() / ("stqj-" + std::to_string(::getpid()));
  fs::remove_all(root);
  LatchedImageStore images(root + "/img");
  QemuOptions o;
  o.state_dir = root + "/state";
  o.images = &images;
  o.shim_exe = "/bin/false";  // nothing starts here
  o.qemu_binary = STRATA_FAKE_QEMU;  // answers the machine-type probe
  auto hv = make_qemu_hypervisor(o);
  ASSERT_TRUE(hv) << hv.error().to_string();
  ASSERT_TRUE((*hv)->define(spec_named("other")));

  auto slow = std::async(std::launch::async, [&] { return (*hv)->define(spec_named("slow")); });
  images.wait_entered();  // the define job of "slow" is inside its disk creation now

  // Each of these used to wait for the slow define (it held the driver's lock).
  auto queries = std::async(std::launch::async, [&] {
    auto other = (*hv)->status("other");
    auto all = (*hv)->list();
    auto fast = (*hv)->define(spec_named("fast"));
    auto again = (*hv)->define(spec_named("slow"));
    auto gone = (*hv)->undefine("slow");
    return std::make_tuple(other, all, fast, again, gone);
  });
  bool answered = queries.wait_for(60s) == std::future_status::ready;
  images.release();
  ASSERT_TRUE(answered) << "queries blocked behind a define of another VM";
  auto [other, all, fast, again, gone] = queries.get();
  ASSERT_TRUE(other) << other.error().to_string();
  EXPECT_EQ(other->state, model::VmState::defined);
  ASSERT_EQ(all.size(), 1u);  // "slow" is not visible until its define job ends
  EXPECT_EQ(all[0].spec.name, "other");
  ASSERT_TRUE(fast) << fast.error().to_string();
  ASSERT_FALSE(again);  // the name is reserved by the running define job
  EXPECT_EQ(again.error().code, ErrorCode::already_exists);
  EXPECT_NE(again.error().message.find("being defined"), std::string::npos);
  ASSERT_FALSE(gone);
  EXPECT_EQ(gone.error().code, ErrorCode::unavailable);  // being defined (7bf075a)

  auto done = slow.get();
  ASSERT_TRUE(done) << done.error().to_string();
  EXPECT_EQ((*hv)->list().size(), 3u);
  EXPECT_TRUE((*hv)->define(spec_named("slow")).error().code == ErrorCode::already_exists);
  hv->reset();
  fs::remove_all(root);
}

// One long job per VM: while start() of "slow" is held inside its job, a second start,
// a stop, pause, force_off and undefine are refused naming the job; queries still answer.
TEST(QemuDriverJobs, SecondJobIsRefusedNamingTheRunningOne) {
  std::string root = fs::temp_directory_path() / ("stqj2-" + std::to_string(::getpid()));
  fs::remove_all(root);
  LatchedImageStore images(root + "/img");
  QemuOptions o;
  o.state_dir = root + "/state";
  o.images = &images;
  o.shim_exe = "/bin/false";
  o.qemu_binary = STRATA_FAKE_QEMU;
  auto hvr = make_qemu_hypervisor(o);
  ASSERT_TRUE(hvr);
  auto& hv = static_cast<QemuHypervisor&>(**hvr);
  // define's create_blank of "slow" waits on the latch too: let it through, re-arm.
  ASSERT_TRUE(hv.define(spec_named("vm1")));
  auto stop = hv.shutdown("vm1", 1s);  // not running: refused, no job starts
  ASSERT_FALSE(stop);
  EXPECT_EQ(stop.error().code, ErrorCode::failed_precondition);

  auto define = std::async(std::launch::async, [&] { return hv.define(spec_named("slow")); });
  images.wait_entered();
  images.release();
  ASSERT_TRUE(define.get());
  images.rearm();
  auto start = std::async(std::launch::async, [&] { return hv.start("slow"); });
  images.wait_entered();  // the start job is running
  auto refused = std::async(std::launch::async, [&] {
    return std::make_tuple(hv.start("slow"), hv.shutdown("slow", 1s), hv.pause("slow"),
                           hv.force_off("slow"), hv.undefine("slow"), hv.status("slow"));
  });
  bool answered = refused.wait_for(60s) == std::future_status::ready;
  images.release();
  ASSERT_TRUE(answered);
  auto [start2, stop2, pause2, kill2, undef2, status] = refused.get();
  for (auto* r : {&start2, &stop2, &pause2, &kill2, &undef2}) {
    ASSERT_FALSE(*r);
    EXPECT_EQ(r->error().code, ErrorCode::failed_precondition);
  }
  EXPECT_NE(start2.error().message.find("start job in progress"), std::string::npos)
      << start2.error().message;
  EXPECT_NE(undef2.error().message.find("start job in progress"), std::string::npos)
      << undef2.error().message;
  EXPECT_NE(kill2.error().message.find("start job in progress"), std::string::npos)
      << kill2.error().message;
  ASSERT_TRUE(status);
  auto started = start.get();
  ASSERT_FALSE(started);  // this store has no disks: the job fails, and ends
  EXPECT_EQ(started.error().code, ErrorCode::unavailable);
  ASSERT_TRUE(hv.undefine("slow"));  // no job any more
  hvr->reset();
  fs::remove_all(root);
}

}  // namespace
}  // namespace strata::agent::qemu
