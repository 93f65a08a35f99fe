// The CD-ROM's medium in the VM service (docs/internals/firmware.md), on an in-memory
// SQLite store and a real AgentService (over a MemoryHypervisor) on a UNIX socket: one
// "vm.cdrom" task and audit event per change, the host changes the medium (request id:
// the task id) before the spec records it; refusals (not an iso, no CD-ROM slot, unknown
// VM) write nothing; a host that refuses leaves the spec as it was.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <thread>

#include "strata/manager/vms/vm_service.h"
#include "vm_service_fixture.h"

namespace strata::manager {
namespace {

namespace fs = std::filesystem;

class VmCdromTest : public testing::VmServiceOnAgentTest {
 protected:
  void SetUp() override {
    VmServiceOnAgentTest::SetUp();
    if (HasFatalFailure()) return;
    for (auto [name, kind] : {std::pair{"netinst", "iso"}, {"rescue", "iso"}, {"base", "disk"}}) {
      store::ImageRecord i;
      i.name = name;
      i.kind = kind;
      i.format = "raw";
      i.size_bytes = i.virtual_size = 4096;
      i.sha256 = std::string(64, 'a');
      ASSERT_TRUE(store_->create_image(i));
    }
  }

  // An installer VM: a blank boot disk, netinst in the CD-ROM, boot from the CD-ROM first.
  void make_vm(const std::string& name, const std::string& machine = "q35") {
    VmDocument d;
    d.spec.name = name;
    d.spec.memory_mib = 256;
    d.spec.machine = machine;
    d.spec.disks.push_back({"root", "", 1 << 30, true, false, "", ""});
    if (machine == "q35") {
      d.spec.cdrom = "netinst";
      d.spec.boot = {model::BootDevice::cdrom, model::BootDevice::disk};
    }
    auto c = service_->create(d, false, "token:alice");
    ASSERT_TRUE(c) << c.error().to_string();
    ASSERT_TRUE(hv_.define(d.spec));
  }
  model::VmSpec stored(const std::string& name) {
    auto vm = store_->get_vm_by_name(name);
    EXPECT_TRUE(vm);
    auto doc = decode_vm_document(vm->spec);
    EXPECT_TRUE(doc);
    return doc ? doc->spec : model::VmSpec{};
  }
  std::string on_host(const std::string& name) {
    auto s = hv_.status(name);
    return s ? s->spec.cdrom : "?";
  }
  size_t tasks() {
    auto t = store_->list_tasks({});
    return t ? t->size() : 0;
  }
};

TEST_F(VmCdromTest, ChangeAndEjectEachOneTaskHostFirstThenSpec) {
  make_vm("inst");
  EXPECT_EQ(stored("inst").cdrom, "netinst");
  auto c = service_->change_cdrom("inst", "rescue", "token:alice");
  ASSERT_TRUE(c) << c.error().to_string();
  EXPECT_EQ(c->task.kind, "vm.cdrom");
  EXPECT_EQ(c->task.target_id, c->vm.id);
  auto t = wait_task(c->task.id);
  ASSERT_EQ(t.state, "succeeded") << t.message;
  EXPECT_EQ(on_host("inst"), "rescue");
  EXPECT_EQ(stored("inst").cdrom, "rescue");
  EXPECT_EQ(stored("inst").boot,
            (std::vector<model::BootDevice>{model::BootDevice::cdrom, model::BootDevice::disk}));
  EXPECT_EQ(hv_.count("change_cdrom"), 1);

  auto e = service_->change_cdrom("inst", "", "token:bob");
  ASSERT_TRUE(e);
  ASSERT_EQ(wait_task(e->task.id).state, "succeeded");
  EXPECT_EQ(on_host("inst"), "");
  EXPECT_EQ(stored("inst").cdrom, "");
  EXPECT_EQ(audit("vm.cdrom"), 2u);

  // The host refuses: the task fails with its reason, the spec keeps the old medium.
  hv_.fail_next = Error{ErrorCode::failed_precondition, "VM inst has a snapshot job", ""};
  auto f = service_->change_cdrom("inst", "netinst", "token:bob");
  ASSERT_TRUE(f);
  auto ft = wait_task(f->task.id);
  EXPECT_EQ(ft.state, "failed");
  EXPECT_NE(ft.message.find("snapshot job"), std::string::npos) << ft.message;
  EXPECT_EQ(stored("inst").cdrom, "");
}

TEST_F(VmCdromTest, RefusalsWriteNothing) {
  make_vm("inst");
  make_vm("old", "pc");
  const size_t tasks_before = tasks();
  struct Case {
    std::string vm, image, field;
    ErrorCode code;
  };
  for (const Case& c : std::vector<Case>{
           {"inst", "base", "image", ErrorCode::invalid_argument},    // a disk image
           {"inst", "../etc", "image", ErrorCode::invalid_argument},  // not an image name
           {"old", "netinst", "image", ErrorCode::invalid_argument},  // i440fx: no CD-ROM
           {"nope", "netinst", "", ErrorCode::not_found},
       }) {
    auto r = service_->change_cdrom(c.vm, c.image, "token:alice");
    ASSERT_FALSE(r) << c.vm << " " << c.image;
    EXPECT_EQ(r.error().code, c.code) << r.error().to_string();
    if (!c.field.empty()) {
      EXPECT_EQ(r.error().field, c.field) << r.error().to_string();
    }
  }
  EXPECT_EQ(tasks(), tasks_before);
  EXPECT_EQ(audit("vm.cdrom"), 0u);
  EXPECT_EQ(hv_.count("change_cdrom"), 0);
  EXPECT_EQ(stored("inst").cdrom, "netinst");
}

}  // namespace
}  // namespace strata::manager
