// The wire library's model <-> proto conversions (wire/vm.h, wire/vm_status.h): full round
// trips, defaults for unset scalars, enum rejection. Each conversion is tested here, once.
#include <gtest/gtest.h>

#include "strata/model/validation.h"
#include "strata/model/vm_spec_json.h"
#include "strata/wire/vm_status.h"

namespace strata::wire {

using agent::VmEvent;
using agent::VmExit;
using agent::VmStats;
using agent::VmStatus;

namespace {

model::VmSpec full_spec() {
  model::VmSpec s;
  s.name = "web-1";
  s.uuid = "6f1c2d3e-4a5b-4c6d-8e9f-0a1b2c3d4e5f";
  s.vcpus = 4;
  s.memory_mib = 2048;
  s.machine = "pc-q35-7.2";
  s.kernel_boot = model::KernelBoot{"vmlinuz", "initrd.gz", "console=ttyS0 quiet"};
  s.disks.push_back({"root", "debian-12", 10ull << 30, true, false, "", ""});
  s.disks.push_back({"data0", "", 1ull << 30, false, true, "", ""});
  s.nics.push_back({model::NicMode::user, "", "52:54:00:12:34:56"});
  s.nics.push_back({model::NicMode::bridge, "br0", "", 4094});
  s.vnc = false;
  s.labels = {{"owner", "alice"}, {"tier", "web"}};
  return s;
}

void expect_same(const model::VmSpec& a, const model::VmSpec& b) {
  EXPECT_EQ(a.name, b.name);
  EXPECT_EQ(a.uuid, b.uuid);
  EXPECT_EQ(a.vcpus, b.vcpus);
  EXPECT_EQ(a.memory_mib, b.memory_mib);
  EXPECT_EQ(a.machine, b.machine);
  ASSERT_EQ(a.kernel_boot.has_value(), b.kernel_boot.has_value());
  if (a.kernel_boot) {
    EXPECT_EQ(a.kernel_boot->kernel, b.kernel_boot->kernel);
    EXPECT_EQ(a.kernel_boot->initrd, b.kernel_boot->initrd);
    EXPECT_EQ(a.kernel_boot->cmdline, b.kernel_boot->cmdline);
  }
  ASSERT_EQ(a.disks.size(), b.disks.size());
  for (size_t i = 0; i < a.disks.size(); ++i) {
    EXPECT_EQ(a.disks[i].name, b.disks[i].name);
    EXPECT_EQ(a.disks[i].base_image, b.disks[i].base_image);
    EXPECT_EQ(a.disks[i].size_bytes, b.disks[i].size_bytes);
    EXPECT_EQ(a.disks[i].boot, b.disks[i].boot);
    EXPECT_EQ(a.disks[i].readonly, b.disks[i].readonly);
  }
  ASSERT_EQ(a.nics.size(), b.nics.size());
  for (size_t i = 0; i < a.nics.size(); ++i) {
    EXPECT_EQ(a.nics[i].mode, b.nics[i].mode);
    EXPECT_EQ(a.nics[i].bridge, b.nics[i].bridge);
    EXPECT_EQ(a.nics[i].mac, b.nics[i].mac);
    EXPECT_EQ(a.nics[i].vlan, b.nics[i].vlan);
  }
  EXPECT_EQ(a.vnc, b.vnc);
  EXPECT_EQ(a.labels, b.labels);
}

TEST(ProtoConvert, VmSpecRoundTrips) {
  auto spec = full_spec();
  auto back = from_proto(to_proto(spec));
  ASSERT_TRUE(back) << back.error().to_string();
  expect_same(spec, *back);
}

TEST(ProtoConvert, VmSpecRoundTripsThroughWireBytes) {
  auto spec = full_spec();
  v1::VmSpec parsed;
  ASSERT_TRUE(parsed.ParseFromString(to_proto(spec).SerializeAsString()));
  auto back = from_proto(parsed);
  ASSERT_TRUE(back);
  expect_same(spec, *back);
}

TEST(ProtoConvert, UnsetScalarsTakeModelDefaults) {
  v1::VmSpec p;
  p.set_name("a");
  auto s = from_proto(p);
  ASSERT_TRUE(s);
  model::VmSpec defaults;
  EXPECT_EQ(s->vcpus, defaults.vcpus);
  EXPECT_EQ(s->memory_mib, defaults.memory_mib);
  EXPECT_EQ(s->machine, "q35");
  EXPECT_TRUE(s->vnc);  // absent optional bool means true
  EXPECT_FALSE(s->kernel_boot.has_value());
  p.set_vnc(false);
  EXPECT_FALSE(from_proto(p)->vnc);
}

TEST(ProtoConvert, UnspecifiedNicModeIsUser) {
  v1::VmSpec p;
  p.set_name("a");
  p.add_nics();
  auto s = from_proto(p);
  ASSERT_TRUE(s);
  EXPECT_EQ(s->nics[0].mode, model::NicMode::user);
}

TEST(ProtoConvert, UnknownNicModeNamesTheField) {
  v1::VmSpec p;
  p.set_name("a");
  p.add_nics();
  p.add_nics()->set_mode(static_cast<v1::NicMode>(77));
  auto s = from_proto(p, "spec");
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code, ErrorCode::invalid_argument);
  EXPECT_EQ(s.error().field, "spec.nics[1].mode");
}

TEST(ProtoConvert, NicVlanCrossesTheWireAndOutOfRangeNamesTheField) {
  auto spec = full_spec();
  EXPECT_EQ(to_proto(spec).nics(1).vlan(), 4094u);
  EXPECT_EQ(to_proto(spec).nics(0).vlan(), 0u);
  v1::VmSpec p;
  p.set_name("a");
  auto* n = p.add_nics();
  n->set_mode(v1::NIC_MODE_BRIDGE);
  n->set_bridge("br0");
  n->set_vlan(65536 + 10);  // would wrap to 10 if narrowed unchecked
  auto s = from_proto(p, "spec");
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code, ErrorCode::invalid_argument);
  EXPECT_EQ(s.error().field, "spec.nics[0].vlan");
  n->set_vlan(10);
  auto ok = from_proto(p, "spec");
  ASSERT_TRUE(ok) << ok.error().to_string();
  EXPECT_EQ(ok->nics[0].vlan, 10);
}

TEST(ProtoConvert, EveryVmStateRoundTrips) {
  for (auto st : {model::VmState::defined, model::VmState::starting, model::VmState::running,
                  model::VmState::paused, model::VmState::shutting_down, model::VmState::stopped,
                  model::VmState::crashed}) {
    EXPECT_NE(to_proto(st), v1::VM_STATE_UNSPECIFIED);
    auto back = from_proto(to_proto(st));
    ASSERT_TRUE(back);
    EXPECT_EQ(*back, st);
  }
  EXPECT_FALSE(from_proto(v1::VM_STATE_UNSPECIFIED));
}

TEST(ProtoConvert, VmStatusRoundTripsIncludingLastExit) {
  VmStatus s;
  s.spec = full_spec();
  s.state = model::VmState::crashed;
  s.pid = 0;
  s.accelerator = "tcg";
  s.last_exit = VmExit{true, 9, "killed", 1700000000123};
  s.state_changed_unix_ms = 1700000000124;
  s.qmp_socket = "/s/qmp.sock";
  s.vnc_socket = "/s/vnc.sock";
  s.qga_socket = "/s/qga.sock";
  s.console_log = "/s/console.log";
  auto back = from_proto(to_proto(s));
  ASSERT_TRUE(back);
  expect_same(s.spec, back->spec);
  EXPECT_EQ(back->state, s.state);
  EXPECT_EQ(back->accelerator, "tcg");
  ASSERT_TRUE(back->last_exit);
  EXPECT_TRUE(back->last_exit->signaled);
  EXPECT_EQ(back->last_exit->code, 9);
  EXPECT_EQ(back->last_exit->reason, "killed");
  EXPECT_EQ(back->last_exit->at_unix_ms, 1700000000123);
  EXPECT_EQ(back->state_changed_unix_ms, 1700000000124);
  EXPECT_EQ(back->qmp_socket, s.qmp_socket);
  EXPECT_EQ(back->vnc_socket, s.vnc_socket);
  EXPECT_EQ(back->qga_socket, s.qga_socket);
  EXPECT_EQ(back->console_log, s.console_log);

  s.last_exit.reset();
  EXPECT_FALSE(from_proto(to_proto(s))->last_exit.has_value());
}

TEST(ProtoConvert, StatsAndEventsRoundTrip) {
  VmStats st{1, 2, 3, 4, 5, 6};
  VmStats b = from_proto(to_proto(st));
  EXPECT_EQ(b.cpu_time_ns, 1u);
  EXPECT_EQ(b.rss_bytes, 2u);
  EXPECT_EQ(b.disk_read_bytes, 3u);
  EXPECT_EQ(b.disk_write_bytes, 4u);
  EXPECT_EQ(b.net_rx_bytes, 5u);
  EXPECT_EQ(b.net_tx_bytes, 6u);

  VmEvent e{"web-1", model::VmState::paused, "STOP", 42};
  auto eb = from_proto(to_proto(e));
  ASSERT_TRUE(eb);
  EXPECT_EQ(eb->vm, "web-1");
  EXPECT_EQ(eb->state, model::VmState::paused);
  EXPECT_EQ(eb->detail, "STOP");
  EXPECT_EQ(eb->at_unix_ms, 42);
}

model::CloudInit full_cloud_init() {
  model::CloudInit ci;
  ci.hostname = "web1.example.org";
  ci.users.push_back(model::CloudInitUser{
      "alice",
      {"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGvZ0pQ3b2x3bY4mJbQfJ6x1m0mC4sQ alice@laptop"},
      "$6$saltsalt$7yQ1TGe3kTq0yZbqgW3jB5o2l8Vd4RzrCkPGpH0tNz0",
      true,
      {"adm"}});
  ci.network.push_back(model::CloudInitNic{0, true, "", "", {}});
  ci.network.push_back(model::CloudInitNic{1, false, "192.0.2.10/24", "192.0.2.1", {"192.0.2.53"}});
  ci.user_data = "#!/bin/sh\necho hi\n";
  return ci;
}

TEST(ProtoConvert, CloudInitTravelsAsJsonAndRoundTrips) {
  auto spec = full_spec();
  spec.cloud_init = full_cloud_init();
  v1::VmSpec p = to_proto(spec);
  ASSERT_FALSE(p.cloud_init_json().empty());
  v1::VmSpec parsed;
  ASSERT_TRUE(parsed.ParseFromString(p.SerializeAsString()));
  auto back = from_proto(parsed);
  ASSERT_TRUE(back) << back.error().to_string();
  ASSERT_TRUE(back->cloud_init);
  EXPECT_EQ(model::to_json(*back->cloud_init), model::to_json(*spec.cloud_init));
  // None: no field, no cloud_init.
  EXPECT_TRUE(to_proto(full_spec()).cloud_init_json().empty());
  EXPECT_FALSE(from_proto(to_proto(full_spec()))->cloud_init);
}

TEST(ProtoConvert, BadCloudInitJsonIsRefusedNamingTheField) {
  struct Case {
    std::string json;
    std::string field;
  } cases[] = {
      {R"({"users":[{"name":"alice","password_hash":"hunter2"}]})",
       "spec.cloud_init.users[0].password_hash"},
      {R"({"hostname":"bad_host"})", "spec.cloud_init.hostname"},
      {R"({"network":[{"nic":2,"dhcp4":true}]})", "spec.cloud_init.network[0].nic"},  // 2 NICs
      {R"({"password":"x"})", "spec.cloud_init.password"},
      {R"({"users":[{"name":"a","name":"b"}]})", "spec.cloud_init.users[0].name"},  // dup key
      {"{\"hostname\":", "spec.cloud_init"},
      {"[]", "spec.cloud_init"},
      {std::string(model::kMaxCloudInitJsonBytes + 1, ' '), "spec.cloud_init"},
  };
  for (const auto& c : cases) {
    v1::VmSpec p = to_proto(full_spec());
    p.set_cloud_init_json(c.json);
    auto s = from_proto(p, "spec");
    ASSERT_FALSE(s) << c.json.substr(0, 80);
    EXPECT_EQ(s.error().code, ErrorCode::invalid_argument) << c.json.substr(0, 80);
    EXPECT_EQ(s.error().field, c.field) << c.json.substr(0, 80);
    // The hash is never echoed back in an error.
    EXPECT_EQ(s.error().message.find("hunter2"), std::string::npos) << s.error().message;
  }
}

TEST(ProtoConvert, GuestFactsRoundTripAndAreChecked) {
  VmStatus s;
  s.spec = full_spec();
  s.state = model::VmState::running;
  model::GuestFacts g;
  g.os_name = "Debian GNU/Linux 12 (bookworm)";
  g.os_id = "debian";
  g.os_version = "12";
  g.kernel_release = "6.1.0-27-cloud-amd64";
  g.hostname = "ci-guest";
  g.interfaces.push_back({"eth0", "52:54:00:12:34:56", {"10.0.2.15/24", "fec0::1/64"}});
  g.updated_unix_ms = 1700000000999;
  s.guest = g;
  v1::VmStatus p = to_proto(s);
  ASSERT_TRUE(p.has_guest());
  auto back = from_proto(p);
  ASSERT_TRUE(back) << back.error().to_string();
  ASSERT_TRUE(back->guest);
  EXPECT_EQ(*back->guest, g);
  s.guest.reset();
  EXPECT_FALSE(to_proto(s).has_guest());
  EXPECT_FALSE(from_proto(to_proto(s))->guest);
  // A bad address from the wire is refused, naming it.
  p.mutable_guest()->mutable_interfaces(0)->set_addresses(0, "10.0.2.15");
  auto bad = from_proto(p);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().field, "guest.interfaces[0].addresses[0]");
}

}  // namespace
}  // namespace strata::wire

namespace strata::wire {
namespace {

// Installing from an ISO: cdrom, boot order and firmware survive the wire (bytes too); an
// unset firmware is bios; a boot entry or firmware the model lacks names its field.
TEST(ProtoConvert, CdromBootOrderAndFirmwareRoundTrip) {
  model::VmSpec s;
  s.name = "inst";
  s.disks.push_back({"root", "", 1ull << 30, true, false, "", ""});
  s.cdrom = "netinst";
  s.boot = {model::BootDevice::cdrom, model::BootDevice::disk};
  s.firmware = model::Firmware::uefi;
  std::string wire;
  ASSERT_TRUE(to_proto(s).SerializeToString(&wire));
  v1::VmSpec parsed;
  ASSERT_TRUE(parsed.ParseFromString(wire));
  auto back = from_proto(parsed, "spec");
  ASSERT_TRUE(back) << back.error().to_string();
  EXPECT_EQ(back->cdrom, "netinst");
  EXPECT_EQ(back->boot, s.boot);
  EXPECT_EQ(back->firmware, model::Firmware::uefi);
  // A CD-ROM-only VM (no boot disk) still has a boot source after the trip (a copy of this
  // conversion once dropped the CD-ROM and the boot order: the host refused such a VM).
  model::VmSpec iso_only = s;
  iso_only.disks[0].boot = false;
  iso_only.boot = {model::BootDevice::cdrom};
  auto iso_back = from_proto(to_proto(iso_only), "spec");
  ASSERT_TRUE(iso_back) << iso_back.error().to_string();
  EXPECT_TRUE(model::validate(*iso_back)) << "the agent would refuse it";
  v1::VmSpec plain = to_proto(s);
  plain.clear_firmware();
  plain.clear_boot();
  plain.clear_cdrom();
  auto defaults = from_proto(plain, "spec");
  ASSERT_TRUE(defaults);
  EXPECT_EQ(defaults->firmware, model::Firmware::bios);
  EXPECT_TRUE(defaults->boot.empty());
  EXPECT_EQ(defaults->cdrom, "");
  v1::VmSpec bad = to_proto(s);
  bad.add_boot("network");
  auto e = from_proto(bad, "spec");
  ASSERT_FALSE(e);
  EXPECT_EQ(e.error().field, "spec.boot[2]");
  bad = to_proto(s);
  bad.set_firmware("coreboot");
  e = from_proto(bad, "spec");
  ASSERT_FALSE(e);
  EXPECT_EQ(e.error().field, "spec.firmware");
}

// The watchdog crosses the wire as its action; empty is none; an unknown action names the
// field (an agent never builds a command line from it).
TEST(ProtoConvert, WatchdogRoundTrip) {
  model::VmSpec s;
  s.name = "wd";
  s.disks.push_back({"root", "", 1ull << 30, true, false, "", ""});
  s.watchdog = model::Watchdog{model::WatchdogAction::pause};
  v1::VmSpec p = to_proto(s);
  EXPECT_EQ(p.watchdog_action(), "pause");
  auto back = from_proto(p, "spec");
  ASSERT_TRUE(back) << back.error().to_string();
  EXPECT_EQ(back->watchdog, s.watchdog);
  p.clear_watchdog_action();
  EXPECT_FALSE(from_proto(p, "spec")->watchdog);
  p.set_watchdog_action("reset,id=x");
  auto e = from_proto(p, "spec");
  ASSERT_FALSE(e);
  EXPECT_EQ(e.error().field, "spec.watchdog_action");
}

}  // namespace
}  // namespace strata::wire
