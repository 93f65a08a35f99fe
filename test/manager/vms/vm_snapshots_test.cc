// VM snapshots in the VM service, on an in-memory SQLite store and a real AgentService
// (over a MemoryHypervisor) on a UNIX socket: each operation commits its task and audit
// event together, runs on the VM's host with the task id as request id and ends the task;
// refusals (bad name, revert of a VM meant to run, unknown VM) write nothing.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <thread>

#include "strata/manager/vms/vm_service.h"
#include "vm_service_fixture.h"

namespace strata::manager {
namespace {

namespace fs = std::filesystem;

class VmSnapshotsTest : public testing::VmServiceOnAgentTest {
 protected:

  // Creates the VM record (placed on h1) and defines it on the agent.
  void make_vm(const std::string& name, bool start) {
    VmDocument d;
    d.spec.name = name;
    d.spec.memory_mib = 256;
    d.spec.kernel_boot = model::KernelBoot{"vmlinuz", "", ""};
    ASSERT_TRUE(service_->create(d, start, "token:alice"));
    ASSERT_TRUE(hv_.define(d.spec));
  }
};

TEST_F(VmSnapshotsTest, CreateListRevertDeleteEachOneTaskAndAuditEvent) {
  make_vm("web", false);
  auto c = service_->snapshot("web", SnapshotOp::create, "before", "token:alice");
  ASSERT_TRUE(c) << c.error().to_string();
  EXPECT_EQ(c->task.kind, "vm.snapshot.create");
  EXPECT_EQ(c->task.target_id, c->vm.id);
  EXPECT_EQ(audit("vm.snapshot.create"), 1u);
  auto t = wait_task(c->task.id);
  ASSERT_EQ(t.state, "succeeded") << t.message;
  auto result = nlohmann::json::parse(t.result);
  EXPECT_EQ(result["snapshot"]["name"], "before");
  EXPECT_EQ(result["snapshot"]["consistency"], "crash");
  EXPECT_EQ(hv_.count("snapshot_create"), 1);

  auto c2 = service_->snapshot("web", SnapshotOp::create, "after", "token:alice");
  ASSERT_TRUE(c2);
  ASSERT_EQ(wait_task(c2->task.id).state, "succeeded");
  auto list = service_->list_snapshots("web");
  ASSERT_TRUE(list) << list.error().to_string();
  ASSERT_EQ(list->size(), 2u);
  EXPECT_EQ((*list)[1].parent, "before");
  EXPECT_TRUE((*list)[1].current);

  auto r = service_->snapshot("web", SnapshotOp::revert, "before", "token:bob");
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_EQ(r->task.kind, "vm.snapshot.revert");
  ASSERT_EQ(wait_task(r->task.id).state, "succeeded");
  auto d = service_->snapshot("web", SnapshotOp::remove, "after", "token:bob");
  ASSERT_TRUE(d);
  EXPECT_EQ(d->task.kind, "vm.snapshot.delete");
  ASSERT_EQ(wait_task(d->task.id).state, "succeeded");
  EXPECT_EQ(service_->list_snapshots("web")->size(), 1u);
  EXPECT_EQ(audit("vm.snapshot.revert"), 1u);
  EXPECT_EQ(audit("vm.snapshot.delete"), 1u);

  // The agent's failure ends the task failed, with its reason.
  auto gone = service_->snapshot("web", SnapshotOp::remove, "after", "token:bob");
  ASSERT_TRUE(gone);
  auto ft = wait_task(gone->task.id);
  EXPECT_EQ(ft.state, "failed");
  EXPECT_NE(ft.message.find("not_found"), std::string::npos) << ft.message;
}

TEST_F(VmSnapshotsTest, RefusalsWriteNothing) {
  make_vm("run", true);
  auto tasks_before = store_->list_tasks({})->size();
  auto r = service_->snapshot("run", SnapshotOp::revert, "x", "token:alice");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::failed_precondition);
  auto bad = service_->snapshot("run", SnapshotOp::create, "Bad_Name", "token:alice");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, ErrorCode::invalid_argument);
  EXPECT_EQ(bad.error().field, "name");
  auto none = service_->snapshot("nope", SnapshotOp::create, "x", "token:alice");
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().code, ErrorCode::not_found);
  EXPECT_EQ(store_->list_tasks({})->size(), tasks_before);
  EXPECT_EQ(audit("vm.snapshot.revert") + audit("vm.snapshot.create"), 0u);
  EXPECT_EQ(service_->list_snapshots("nope").error().code, ErrorCode::not_found);
}

}  // namespace
}  // namespace strata::manager
