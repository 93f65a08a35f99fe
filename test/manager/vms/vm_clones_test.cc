// Templates and clones in the VM service, on an in-memory SQLite store and a real
// AgentService (over a MemoryHypervisor) on a UNIX socket: a template never runs; a clone
// is one transaction (record, task, audit), then made on the source's host (CloneVm); the
// template's linked clones keep it from being deleted.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <thread>

#include "strata/manager/vms/vm_service.h"
#include "vm_service_fixture.h"

namespace strata::manager {
namespace {

namespace fs = std::filesystem;

class VmClonesTest : public testing::VmServiceOnAgentTest {
 protected:

  // Creates the VM record (placed on h1) and defines it on the agent.
  void make_vm(const std::string& name, bool start) {
    VmDocument d;
    d.spec.name = name;
    d.spec.memory_mib = 256;
    d.spec.kernel_boot = model::KernelBoot{"vmlinuz", "", ""};
    d.spec.nics.push_back(model::NicSpec{});
    // cloud-init: a host name of its own and a user (a clone keeps the user, not the name).
    model::CloudInit ci;
    ci.hostname = name + ".example.org";
    ci.users.push_back(model::CloudInitUser{"alice", {}, "", true, {}});
    d.spec.cloud_init = ci;
    auto c = service_->create(d, start, "token:alice");
    ASSERT_TRUE(c) << c.error().to_string();
    ASSERT_TRUE(hv_.define(decode_vm_document(c->vm.spec)->spec));
    // What the controller would record once the host reports the VM (no controller here).
    auto vm = store_->get_vm_by_name(name);
    ASSERT_TRUE(vm);
    VmStatusDoc st;
    st.state = start ? "running" : "defined";
    vm->status = encode(st);
    ASSERT_TRUE(store_->update_vm(*vm));
  }
  VmDocument doc_of(const std::string& name) {
    auto vm = store_->get_vm_by_name(name);
    EXPECT_TRUE(vm) << name;
    auto d = decode_vm_document(vm->spec);
    EXPECT_TRUE(d);
    return *d;
  }
};


// A stopped VM becomes a template once (a repeat is a no-op); a VM meant to run does not;
// a template refuses the run verbs, snapshot changes and migration with 409-class errors.
TEST_F(VmClonesTest, TemplateIsReadOnlyAndNeverRuns) {
  make_vm("running", true);
  auto refused = service_->make_template("running", "token:alice");
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, ErrorCode::failed_precondition);
  EXPECT_EQ(service_->make_template("nope", "token:alice").error().code, ErrorCode::not_found);

  make_vm("base", false);
  auto t = service_->make_template("base", "token:alice");
  ASSERT_TRUE(t) << t.error().to_string();
  EXPECT_TRUE(doc_of("base").is_template);
  ASSERT_TRUE(service_->make_template("base", "token:alice"));
  EXPECT_EQ(audit("vm.template"), 1u);

  for (VmVerb v : {VmVerb::start, VmVerb::reboot, VmVerb::pause, VmVerb::resume}) {
    auto s = service_->act("base", v, {}, "token:alice");
    ASSERT_FALSE(s) << to_string(v);
    EXPECT_EQ(s.error().code, ErrorCode::conflict);
    EXPECT_NE(s.error().message.find("template"), std::string::npos) << s.error().message;
  }
  auto snap = service_->snapshot("base", SnapshotOp::create, "s1", "token:alice");
  ASSERT_FALSE(snap);
  EXPECT_EQ(snap.error().code, ErrorCode::conflict);
  EXPECT_EQ(service_->migrate("base", {}, "token:alice").error().code, ErrorCode::conflict);
}

// Clones: linked (the default from a template) and full; each a new VM on the source's
// host with a new uuid and new MACs, its task ending when the host made the disks; the
// template cannot be deleted while a linked clone needs it, and says which.
TEST_F(VmClonesTest, LinkedAndFullClonesAndTheTemplateTheyNeed) {
  make_vm("base", false);
  ASSERT_TRUE(service_->make_template("base", "token:alice"));
  auto c = service_->clone("base", "c1", std::nullopt, "token:alice");
  ASSERT_TRUE(c) << c.error().to_string();
  EXPECT_EQ(c->task.kind, "vm.clone");
  EXPECT_EQ(c->vm.desired_state, "stopped");
  auto t = wait_task(c->task.id);
  ASSERT_EQ(t.state, "succeeded") << t.message;
  EXPECT_EQ(t.progress, 100);
  EXPECT_EQ(hv_.count("clone_linked"), 1);
  EXPECT_EQ(audit("vm.clone"), 1u);
  VmDocument src = doc_of("base"), d1 = doc_of("c1");
  EXPECT_TRUE(d1.clone_of.linked);
  EXPECT_FALSE(d1.clone_of.pending);
  EXPECT_FALSE(d1.is_template);
  EXPECT_EQ(d1.clone_of.source_name, "base");
  EXPECT_EQ(d1.placement.host, "h1");  // pinned: its disks are overlays there
  EXPECT_NE(d1.spec.uuid, src.spec.uuid);
  ASSERT_EQ(d1.spec.nics.size(), 1u);
  EXPECT_NE(d1.spec.nics[0].mac, src.spec.nics[0].mac);
  EXPECT_FALSE(d1.spec.nics[0].mac.empty());
  EXPECT_EQ(d1.spec.labels.count(kVmIdLabel), 0u);
  // cloud-init: the clone's host name is its own VM name (hostname cleared), its users stay.
  ASSERT_TRUE(src.spec.cloud_init && d1.spec.cloud_init);
  EXPECT_EQ(src.spec.cloud_init->hostname, "base.example.org");
  EXPECT_EQ(d1.spec.cloud_init->hostname, "");
  ASSERT_EQ(d1.spec.cloud_init->users.size(), 1u);
  EXPECT_EQ(d1.spec.cloud_init->users[0].name, "alice");
  auto on_host = hv_.status("c1");
  ASSERT_TRUE(on_host) << on_host.error().to_string();
  EXPECT_EQ(on_host->spec.uuid, d1.spec.uuid);
  // The host got it over the agent proto (cloud_init_json, parsed and validated there).
  ASSERT_TRUE(on_host->spec.cloud_init);
  EXPECT_EQ(on_host->spec.cloud_init->hostname, "");
  EXPECT_EQ(on_host->spec.cloud_init->users[0].name, "alice");
  EXPECT_EQ(decode_vm_status(store_->get_vm_by_name("c1")->status).state, "defined");

  auto f = service_->clone("base", "c2", false, "token:alice");
  ASSERT_TRUE(f) << f.error().to_string();
  ASSERT_EQ(wait_task(f->task.id).state, "succeeded");
  EXPECT_EQ(hv_.count("clone_full"), 1);
  EXPECT_FALSE(doc_of("c2").clone_of.linked);
  EXPECT_EQ(doc_of("c2").placement.host, "");  // a full clone is free to move later

  // A linked clone cannot migrate away from its template's files.
  EXPECT_EQ(service_->migrate("c1", {}, "token:alice").error().code,
            ErrorCode::failed_precondition);

  // The template's delete is refused while c1 needs it, naming c1 (not the full clone).
  auto del = service_->remove("base", std::nullopt, "token:alice");
  ASSERT_FALSE(del);
  EXPECT_EQ(del.error().code, ErrorCode::conflict);
  EXPECT_NE(del.error().message.find("c1"), std::string::npos) << del.error().message;
  EXPECT_EQ(del.error().message.find("c2"), std::string::npos) << del.error().message;
  ASSERT_TRUE(store_->delete_vm(store_->get_vm_by_name("c1")->id, std::nullopt));
  EXPECT_TRUE(service_->remove("base", std::nullopt, "token:alice"));
}

// Refusals write nothing: a bad or taken name, a linked clone of a plain VM, a running
// source, an unknown one.
TEST_F(VmClonesTest, CloneRefusals) {
  make_vm("vm1", false);
  make_vm("busy", true);
  auto bad = service_->clone("vm1", "Bad_Name", std::nullopt, "token:alice");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, ErrorCode::invalid_argument);
  EXPECT_EQ(bad.error().field, "name");
  auto taken = service_->clone("vm1", "busy", std::nullopt, "token:alice");
  ASSERT_FALSE(taken);
  EXPECT_EQ(taken.error().code, ErrorCode::already_exists);
  auto linked = service_->clone("vm1", "c1", true, "token:alice");
  ASSERT_FALSE(linked);
  EXPECT_EQ(linked.error().code, ErrorCode::failed_precondition);
  EXPECT_NE(linked.error().message.find("template"), std::string::npos);
  EXPECT_EQ(service_->clone("busy", "c1", false, "token:alice").error().code,
            ErrorCode::failed_precondition);
  EXPECT_EQ(service_->clone("nope", "c1", false, "token:alice").error().code,
            ErrorCode::not_found);
  EXPECT_EQ(audit("vm.clone"), 0u);
  EXPECT_FALSE(store_->get_vm_by_name("c1"));
  // A plain stopped VM is cloned full by default.
  auto f = service_->clone("vm1", "c1", std::nullopt, "token:alice");
  ASSERT_TRUE(f) << f.error().to_string();
  ASSERT_EQ(wait_task(f->task.id).state, "succeeded");
  EXPECT_EQ(hv_.count("clone_full"), 1);
}

// The host fails the clone: the task says why and the half-made VM is deleted again.
TEST_F(VmClonesTest, AFailedCloneIsRemoved) {
  make_vm("base", false);
  hv_.fail_next = Error{ErrorCode::internal, "disk full", ""};
  auto c = service_->clone("base", "c1", false, "token:alice");
  ASSERT_TRUE(c) << c.error().to_string();
  auto t = wait_task(c->task.id);
  EXPECT_EQ(t.state, "failed");
  EXPECT_NE(t.message.find("disk full"), std::string::npos) << t.message;
  // The task ends just before the worker marks the VM for deletion: wait for that write
  // (slow under ASan), bounded.
  auto vm = store_->get_vm_by_name("c1");
  for (int i = 0; i < 500 && vm && !vm->deletion_requested; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    vm = store_->get_vm_by_name("c1");
  }
  ASSERT_TRUE(vm);
  EXPECT_TRUE(vm->deletion_requested);
  EXPECT_FALSE(doc_of("c1").clone_of.pending);
}

// The manager making a clone died (its vm.clone task failed by the stale-task sweep): the
// clone's VM, still pending, is marked for deletion as a failed clone is; a clone that was
// made, or another kind of task, is left alone.
TEST_F(VmClonesTest, AClonePendingWhenItsManagerStoppedIsRemoved) {
  make_vm("base", false);
  auto c = service_->clone("base", "made", false, "token:alice");
  ASSERT_TRUE(c) << c.error().to_string();
  ASSERT_EQ(wait_task(c->task.id).state, "succeeded");
  store::TaskRecord dead = *store_->get_task(c->task.id);
  dead.state = "failed";
  service_->abandon_clone(dead);
  EXPECT_FALSE(store_->get_vm_by_name("made")->deletion_requested) << "a made clone stays";

  // As a dead manager left it: the record still pending as a clone.
  auto vm = store_->get_vm_by_name("made");
  auto doc = decode_vm_document(vm->spec);
  doc->clone_of.pending = true;
  vm->spec = encode(*doc);
  ASSERT_TRUE(store_->update_vm(*vm));
  store::TaskRecord other = dead;
  other.kind = "vm.start";
  service_->abandon_clone(other);
  EXPECT_FALSE(store_->get_vm_by_name("made")->deletion_requested) << "not a clone's task";
  service_->abandon_clone(dead);
  auto gone = store_->get_vm_by_name("made");
  ASSERT_TRUE(gone);
  EXPECT_TRUE(gone->deletion_requested);
  EXPECT_FALSE(doc_of("made").clone_of.pending);
}

}  // namespace
}  // namespace strata::manager
