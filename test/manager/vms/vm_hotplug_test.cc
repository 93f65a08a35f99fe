// Hot-plug in the VM service (docs/internals/qemu-driver.md, "Hot-plug"), on an in-memory
// SQLite store and a real AgentService (over a MemoryHypervisor) on a UNIX socket: each
// attach or detach is one task and audit event; the host places the device first (its
// slot), then the spec records it as placed; a VM on no host yet records the change at
// once; refusals write nothing; a host that refuses leaves the spec as it was.
#include <gtest/gtest.h>

#include "strata/manager/vms/vm_service.h"
#include "vm_service_fixture.h"

namespace strata::manager {
namespace {

constexpr uint64_t kGiB = 1ull << 30;

class VmHotplugTest : public testing::VmServiceOnAgentTest {
 protected:
  void make_vm(const std::string& name, bool on_host = true) {
    VmDocument d;
    d.spec.name = name;
    d.spec.memory_mib = 256;
    d.spec.disks.push_back({"root", "", kGiB, true, false, "", ""});
    d.spec.nics.push_back({model::NicMode::user, "", "52:54:00:00:00:01"});
    auto c = service_->create(d, false, "token:alice");
    ASSERT_TRUE(c) << c.error().to_string();
    if (on_host) {
      ASSERT_TRUE(hv_.define(stored(name)));
    } else {
      // Not placed: no host yet.
      auto rec = store_->get_vm_by_name(name);
      ASSERT_TRUE(rec);
      rec->host_id.reset();
      ASSERT_TRUE(store_->update_vm(*rec));
    }
  }
  model::VmSpec stored(const std::string& vm) {
    auto rec = store_->get_vm_by_name(vm);
    EXPECT_TRUE(rec);
    auto doc = decode_vm_document(rec->spec);
    EXPECT_TRUE(doc);
    return doc ? doc->spec : model::VmSpec{};
  }
  model::VmSpec on_host(const std::string& vm) {
    auto s = hv_.status(vm);
    return s ? s->spec : model::VmSpec{};
  }
};

TEST_F(VmHotplugTest, AttachesOnTheHostFirstThenRecordsTheSlot) {
  make_vm("app");
  auto c =
      service_->attach_disk("app", {"data1", "", 2 * kGiB, false, false, "", ""}, "token:alice");
  ASSERT_TRUE(c) << c.error().to_string();
  EXPECT_EQ(c->task.kind, "vm.disk.attach");
  auto t = wait_task(c->task.id);
  ASSERT_EQ(t.state, "succeeded") << t.message;
  EXPECT_NE(t.message.find("slot 1"), std::string::npos) << t.message;
  auto spec = stored("app");
  ASSERT_EQ(spec.disks.size(), 2u);
  EXPECT_EQ(spec.disks[1].name, "data1");
  EXPECT_EQ(spec.disks[1].hotplug_slot, 1u);
  EXPECT_EQ(on_host("app").disks.size(), 2u);

  // A NIC without a MAC gets one here (the same one on a retry), then slot 2 on the host.
  auto n = service_->attach_nic("app", {model::NicMode::user, "", ""}, "token:alice");
  ASSERT_TRUE(n) << n.error().to_string();
  ASSERT_EQ(wait_task(n->task.id).state, "succeeded");
  spec = stored("app");
  ASSERT_EQ(spec.nics.size(), 2u);
  EXPECT_EQ(spec.nics[1].mac.size(), 17u);
  EXPECT_EQ(spec.nics[1].hotplug_slot, 2u);
  EXPECT_EQ(on_host("app").nics[1].mac, spec.nics[1].mac);

  auto dn = service_->detach_nic("app", spec.nics[1].mac, "token:bob");
  ASSERT_TRUE(dn) << dn.error().to_string();
  ASSERT_EQ(wait_task(dn->task.id).state, "succeeded");
  auto dd = service_->detach_disk("app", "data1", "token:bob");
  ASSERT_TRUE(dd) << dd.error().to_string();
  ASSERT_EQ(wait_task(dd->task.id).state, "succeeded");
  spec = stored("app");
  EXPECT_EQ(spec.disks.size(), 1u);
  EXPECT_EQ(spec.nics.size(), 1u);
  EXPECT_EQ(on_host("app").disks.size(), 1u);
  for (const char* a : {"vm.disk.attach", "vm.disk.detach", "vm.nic.attach", "vm.nic.detach"})
    EXPECT_EQ(audit(a), 1u) << a;

  // The host refuses: the task fails with its reason, the spec is unchanged.
  hv_.fail_next = Error{ErrorCode::failed_precondition, "all 4 hot-plug slots are in use", ""};
  auto f = service_->attach_disk("app", {"data2", "", kGiB, false, false, "", ""}, "token:bob");
  ASSERT_TRUE(f);
  auto ft = wait_task(f->task.id);
  EXPECT_EQ(ft.state, "failed");
  EXPECT_NE(ft.message.find("slots are in use"), std::string::npos) << ft.message;
  EXPECT_EQ(stored("app").disks.size(), 1u);
}

// On no host yet: the change is the spec's at once (the define places it at boot).
TEST_F(VmHotplugTest, AVmOnNoHostRecordsTheChangeAtOnce) {
  make_vm("later", /*on_host=*/false);
  auto c = service_->attach_disk("later", {"data1", "", kGiB, false, false, "", ""}, "token:alice");
  ASSERT_TRUE(c) << c.error().to_string();
  EXPECT_EQ(c->task.state, "succeeded");
  auto spec = stored("later");
  ASSERT_EQ(spec.disks.size(), 2u);
  EXPECT_EQ(spec.disks[1].hotplug_slot, 0u);
  auto n = service_->detach_nic("later", "52:54:00:00:00:01", "token:alice");
  ASSERT_TRUE(n) << n.error().to_string();
  EXPECT_TRUE(stored("later").nics.empty());
  EXPECT_EQ(hv_.count("attach_disk"), 0);
}

TEST_F(VmHotplugTest, RefusalsWriteNothing) {
  make_vm("db");
  auto before = store_->list_tasks({});
  ASSERT_TRUE(before);
  struct Case {
    std::function<Result<VmChange>()> call;
    std::string field;
    ErrorCode code;
  };
  auto disk = [&](model::DiskSpec d) {
    return [this, d] { return service_->attach_disk("db", d, "token:alice"); };
  };
  model::DiskSpec boot{"data1", "", kGiB, true, false, "", ""};
  model::DiskSpec slot{"data1", "", kGiB, false, false, "", "", 2};
  for (const Case& c : std::vector<Case>{
           {disk({"root", "", kGiB, false, false, "", ""}), "disk.name", ErrorCode::already_exists},
           {disk({"Bad_Name", "", kGiB, false, false, "", ""}), "disk.name",
            ErrorCode::invalid_argument},
           {disk({"data1", "", 0, false, false, "", ""}), "disk.size_bytes",
            ErrorCode::invalid_argument},
           {disk(boot), "disk.boot", ErrorCode::invalid_argument},
           {disk(slot), "disk.hotplug_slot", ErrorCode::invalid_argument},
           {[this] { return service_->detach_disk("db", "root", "token:alice"); }, "disk",
            ErrorCode::failed_precondition},
           {[this] { return service_->detach_disk("db", "swap", "token:alice"); }, "disk",
            ErrorCode::not_found},
           {[this] { return service_->detach_nic("db", "52:54:00:00:00:09", "token:alice"); },
            "mac", ErrorCode::not_found},
           {[this] { return service_->detach_nic("db", "not-a-mac", "token:alice"); }, "mac",
            ErrorCode::invalid_argument},
           {[this] {
              return service_->attach_nic("db", {model::NicMode::user, "", "52:54:00:00:00:01"},
                                          "token:alice");
            },
            "nic.mac", ErrorCode::already_exists},
           {[this] {
              return service_->attach_nic("db", {model::NicMode::bridge, "", ""}, "token:alice");
            },
            "nic.bridge", ErrorCode::invalid_argument},
       }) {
    auto r = c.call();
    ASSERT_FALSE(r) << c.field;
    EXPECT_EQ(r.error().code, c.code) << r.error().to_string();
    EXPECT_EQ(r.error().field, c.field) << r.error().to_string();
  }
  auto after = store_->list_tasks({});
  ASSERT_TRUE(after);
  EXPECT_EQ(after->size(), before->size());
  EXPECT_EQ(stored("db").disks.size(), 1u);
  EXPECT_EQ(hv_.count("attach_disk") + hv_.count("detach_disk") + hv_.count("attach_nic") +
                hv_.count("detach_nic"),
            0);
}

// A bridge NIC joins a running VM only on a host that has the bridge, and one with a VLAN
// only where the bridge can filter VLANs (the host's inventory says so): refused first with
// 409 naming the field, nothing asked of the host; accepted once the inventory reports it.
TEST_F(VmHotplugTest, BridgeNicsNeedTheHostsBridgeAndItsVlanFiltering) {
  make_vm("web");
  auto set_inventory = [&](const std::string& inventory) {
    auto h = store_->get_host_by_name("h1");
    ASSERT_TRUE(h);
    h->inventory = inventory;
    ASSERT_TRUE(store_->update_host(*h));
  };
  model::NicSpec plain{model::NicMode::bridge, "br0", ""};
  model::NicSpec tagged{model::NicMode::bridge, "br0", ""};
  tagged.vlan = 10;
  auto refused = [&](const model::NicSpec& n, const std::string& field, const std::string& why) {
    auto r = service_->attach_nic("web", n, "token:alice");
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, ErrorCode::failed_precondition) << r.error().to_string();
    EXPECT_EQ(r.error().field, field);
    EXPECT_NE(r.error().message.find(why), std::string::npos) << r.error().message;
  };
  refused(plain, "nic.bridge", "the VM's host h1 has no bridge br0");
  set_inventory(R"({"interfaces": [{"name": "br0", "bridge": true,
                                    "vlan_filtering_supported": false}]})");
  refused(tagged, "nic.vlan", "bridge br0 cannot put a NIC on a VLAN");
  EXPECT_EQ(hv_.count("attach_nic"), 0);
  EXPECT_EQ(stored("web").nics.size(), 1u);

  auto c = service_->attach_nic("web", plain, "token:alice");
  ASSERT_TRUE(c) << c.error().to_string();
  EXPECT_EQ(wait_task(c->task.id).state, "succeeded");
  set_inventory(R"({"interfaces": [{"name": "br0", "bridge": true,
                                    "vlan_filtering_supported": true}]})");
  c = service_->attach_nic("web", tagged, "token:alice");
  ASSERT_TRUE(c) << c.error().to_string();
  EXPECT_EQ(wait_task(c->task.id).state, "succeeded");
  ASSERT_EQ(stored("web").nics.size(), 3u);
  EXPECT_EQ(stored("web").nics[2].vlan, 10);
}

}  // namespace
}  // namespace strata::manager
