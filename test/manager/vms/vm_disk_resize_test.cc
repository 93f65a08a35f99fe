// Disk resize in the VM service (docs/internals/qemu-driver.md, "Disk resize"), on an
// in-memory SQLite store and a real AgentService (over a MemoryHypervisor) on a UNIX
// socket: one "vm.disk.resize" task and audit event per resize, the host grows the disk
// (request id: the task id) before the spec records the size; refusals write nothing; a
// host that refuses leaves the spec as it was.
#include <gtest/gtest.h>

#include "strata/manager/vms/vm_service.h"
#include "vm_service_fixture.h"

namespace strata::manager {
namespace {

constexpr uint64_t kGiB = 1ull << 30;

class VmDiskResizeTest : public testing::VmServiceOnAgentTest {
 protected:
  // A VM with a 1 GiB boot disk and a read-only data disk, defined on the host.
  void make_vm(const std::string& name, bool on_host = true) {
    VmDocument d;
    d.spec.name = name;
    d.spec.memory_mib = 256;
    d.spec.disks.push_back({"root", "", kGiB, true, false, "", ""});
    d.spec.disks.push_back({"seed", "", kGiB, false, true, "", ""});
    auto c = service_->create(d, false, "token:alice");
    ASSERT_TRUE(c) << c.error().to_string();
    if (on_host) {
      ASSERT_TRUE(hv_.define(d.spec));
    }
  }
  uint64_t stored(const std::string& vm, size_t disk = 0) {
    auto rec = store_->get_vm_by_name(vm);
    EXPECT_TRUE(rec);
    auto doc = decode_vm_document(rec->spec);
    EXPECT_TRUE(doc);
    return doc ? doc->spec.disks.at(disk).size_bytes : 0;
  }
  uint64_t on_host(const std::string& vm) {
    auto s = hv_.status(vm);
    return s ? s->spec.disks.at(0).size_bytes : 0;
  }
  size_t tasks() {
    auto t = store_->list_tasks({});
    return t ? t->size() : 0;
  }
};

TEST_F(VmDiskResizeTest, GrowsOnTheHostFirstThenRecordsTheSize) {
  make_vm("db");
  auto c = service_->resize_disk("db", "root", 2 * kGiB, "token:alice");
  ASSERT_TRUE(c) << c.error().to_string();
  EXPECT_EQ(c->task.kind, "vm.disk.resize");
  auto t = wait_task(c->task.id);
  ASSERT_EQ(t.state, "succeeded") << t.message;
  EXPECT_EQ(on_host("db"), 2 * kGiB);
  EXPECT_EQ(stored("db"), 2 * kGiB);
  EXPECT_EQ(hv_.count("resize_disk"), 1);
  EXPECT_EQ(audit("vm.disk.resize"), 1u);

  // The host refuses: the task fails with its reason, the spec keeps the old size.
  hv_.fail_next = Error{ErrorCode::failed_precondition, "VM db has a backup job", ""};
  auto f = service_->resize_disk("db", "root", 3 * kGiB, "token:bob");
  ASSERT_TRUE(f);
  auto ft = wait_task(f->task.id);
  EXPECT_EQ(ft.state, "failed");
  EXPECT_NE(ft.message.find("backup job"), std::string::npos) << ft.message;
  EXPECT_EQ(stored("db"), 2 * kGiB);
}

// Placed but not defined on its host yet: the task fails saying so, the spec keeps its size
// (the coming define makes the disk as the spec says).
TEST_F(VmDiskResizeTest, AVmNotDefinedOnItsHostYetFailsTheTaskAndKeepsTheSpec) {
  make_vm("later", /*on_host=*/false);
  auto c = service_->resize_disk("later", "root", 4 * kGiB, "token:alice");
  ASSERT_TRUE(c) << c.error().to_string();
  auto t = wait_task(c->task.id);
  EXPECT_EQ(t.state, "failed");
  EXPECT_NE(t.message.find("not defined on its host yet"), std::string::npos) << t.message;
  EXPECT_EQ(stored("later"), kGiB);
}

TEST_F(VmDiskResizeTest, RefusalsWriteNothing) {
  make_vm("db");
  const size_t tasks_before = tasks();
  struct Case {
    std::string vm, disk;
    uint64_t size;
    std::string field;
    ErrorCode code;
  };
  for (const Case& c : std::vector<Case>{
           {"db", "root", kGiB / 2, "size_bytes", ErrorCode::invalid_argument},  // a shrink
           {"db", "root", 0, "size_bytes", ErrorCode::invalid_argument},
           {"db", "root", model::kMaxDiskBytes + 1, "size_bytes", ErrorCode::invalid_argument},
           {"db", "seed", 2 * kGiB, "disk", ErrorCode::failed_precondition},  // read-only
           {"db", "swap", 2 * kGiB, "disk", ErrorCode::not_found},
           {"db", "../x", 2 * kGiB, "disk", ErrorCode::invalid_argument},
           {"nope", "root", 2 * kGiB, "", ErrorCode::not_found},
       }) {
    auto r = service_->resize_disk(c.vm, c.disk, c.size, "token:alice");
    ASSERT_FALSE(r) << c.vm << " " << c.disk << " " << c.size;
    EXPECT_EQ(r.error().code, c.code) << r.error().to_string();
    if (!c.field.empty()) {
      EXPECT_EQ(r.error().field, c.field) << r.error().to_string();
    }
  }
  EXPECT_EQ(tasks(), tasks_before);
  EXPECT_EQ(audit("vm.disk.resize"), 0u);
  EXPECT_EQ(hv_.count("resize_disk"), 0);
  EXPECT_EQ(stored("db"), kGiB);
}

}  // namespace
}  // namespace strata::manager
