// Request building: what each command sends, independent of HTTP.
#include "strata/cli/requests.h"

#include <gtest/gtest.h>

namespace strata::cli {
namespace {

using nlohmann::json;

TEST(Requests, VmCreateFromImageWithEverything) {
  VmCreateOptions o;
  o.name = "web-1";
  o.vcpus = 2;
  o.memory = "1G";
  o.image = "debian-12";
  o.disks = {"name=data,size=10G", "name=scratch,size=512M,readonly"};
  o.nics = {"user", "bridge=br0,mac=52:54:00:00:00:01"};
  o.labels = {"app=web", "tier=1"};
  o.selectors = {"zone=a"};
  o.host = "h1";
  o.anti_affinity_group = "web";
  o.affinity_group = "db-pair";
  o.avoids = {"tier=old", "zone=b"};
  o.no_start = true;
  auto r = build_vm_create(o).value();
  EXPECT_EQ(r.method, "POST");
  EXPECT_EQ(r.target, "/api/v1/vms");
  EXPECT_EQ(*r.body, json::parse(R"({
    "name":"web-1","vcpus":2,"memory_mib":1024,
    "disks":[{"name":"root","image":"debian-12","boot":true},
             {"name":"data","size_bytes":10737418240},
             {"name":"scratch","size_bytes":536870912,"readonly":true}],
    "nics":[{"mode":"user"},{"mode":"bridge","bridge":"br0","mac":"52:54:00:00:00:01"}],
    "labels":{"app":"web","tier":"1"},"node_selector":{"zone":"a"},
    "host":"h1","anti_affinity_group":"web","affinity_group":"db-pair",
    "avoid_selector":{"tier":"old","zone":"b"},"start":false})"));
  o.avoids = {"tier"};
  EXPECT_FALSE(build_vm_create(o)) << "--avoid needs k=v";
}

TEST(Requests, VmCreateWithDisksOnADatastore) {
  VmCreateOptions o;
  o.name = "db";
  o.vcpus = 1;
  o.memory = "512";
  o.image = "debian-12";
  o.datastore = "shared";
  o.disks = {"name=data,size=1G,datastore=shared"};
  EXPECT_EQ(build_vm_create(o).value().body->at("disks"), json::parse(R"([
    {"name":"root","image":"debian-12","boot":true,"datastore":"shared"},
    {"name":"data","size_bytes":1073741824,"datastore":"shared"}])"));
  o.image.clear();
  o.kernel = "vmlinuz";
  auto r = build_vm_create(o);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().field, "--datastore");
  EXPECT_FALSE(parse_disk_spec("name=d,size=1G,datastore="));
}

TEST(Requests, VmCreateKernelBootIsMinimal) {
  VmCreateOptions o;
  o.name = "k";
  o.vcpus = 1;
  o.memory = "256";
  o.kernel = "vmlinuz";
  o.initrd = "initrd";
  o.cmdline = "console=ttyS0 quiet";
  EXPECT_EQ(*build_vm_create(o).value().body,
            json::parse(R"({"name":"k","vcpus":1,"memory_mib":256,"kernel":"vmlinuz",
                            "initrd":"initrd","cmdline":"console=ttyS0 quiet"})"));
}

TEST(Requests, VmCreateRejectsBadInputClientSide) {
  VmCreateOptions base;
  base.name = "x";
  base.vcpus = 1;
  base.memory = "512M";
  auto with = [&](auto f) {
    VmCreateOptions o = base;
    f(o);
    return build_vm_create(o);
  };
  EXPECT_FALSE(with([](auto& o) { o.memory = "-512M"; }));
  EXPECT_FALSE(with([](auto& o) { o.memory = "lots"; }));
  EXPECT_FALSE(with([](auto& o) { o.vcpus = 0; }));
  EXPECT_FALSE(with([](auto& o) { o.image = "a", o.kernel = "b"; }));
  EXPECT_FALSE(with([](auto& o) { o.cmdline = "x"; }));
  EXPECT_FALSE(with([](auto& o) { o.disks = {"size=1G"}; }));
  EXPECT_FALSE(with([](auto& o) { o.disks = {"name=d"}; }));
  EXPECT_FALSE(with([](auto& o) { o.disks = {"name=d,size=-1G"}; }));
  EXPECT_FALSE(with([](auto& o) { o.disks = {"name=d,size=1G,colour=red"}; }));
  EXPECT_FALSE(with([](auto& o) { o.disks = {"name=d,size=1G", "name=d,size=2G"}; }));
  EXPECT_FALSE(with([](auto& o) { o.nics = {"bridge="}; }));
  EXPECT_FALSE(with([](auto& o) { o.nics = {"tap"}; }));
  for (const char* bad : {"bridge=br0,vlan=0", "bridge=br0,vlan=4095", "bridge=br0,vlan=",
                          "bridge=br0,vlan=1O", "bridge=br0,vlan=+5", "bridge=br0,vlan=65546"}) {
    auto e = with([bad](auto& o) { o.nics = {bad}; });
    ASSERT_FALSE(e) << bad;
    EXPECT_EQ(e.error().field, "--nic") << bad;
  }
  EXPECT_FALSE(with([](auto& o) { o.labels = {"novalue"}; }));
  auto err = with([](auto& o) { o.memory = "1.5G"; }).error();
  EXPECT_EQ(err.field, "--memory");
}

TEST(Requests, ActionsAndPathsAreEscaped) {
  EXPECT_EQ(build_vm_action("a b", "start").target, "/api/v1/vms/a%20b/start");
  auto stop = build_vm_stop("v", true, 30);
  EXPECT_EQ(*stop.body, json::parse(R"({"force":true,"timeout_s":30})"));
  EXPECT_EQ(*build_vm_stop("v", false, std::nullopt).body, json::object());
  EXPECT_EQ(build_vm_delete("v").method, "DELETE");
  EXPECT_EQ(build_vm_list({"app=web"}, "h1").target, "/api/v1/vms?label=app%3Dweb&host=h1");
  EXPECT_EQ(build_console("v", 100).target, "/api/v1/vms/v/console?tail=100");
  EXPECT_EQ(build_events_stream(7).target, "/api/v1/events/stream?after=7");
  EXPECT_EQ(build_events_list(std::nullopt, 50).target, "/api/v1/events?limit=50");
}

TEST(Requests, HostLabelsSetAndRemove) {
  auto r = build_host_label("h1", {"zone=a", "old-"}).value();
  EXPECT_EQ(r.method, "PATCH");
  EXPECT_EQ(r.target, "/api/v1/hosts/h1");
  EXPECT_EQ(*r.body, json::parse(R"({"labels":{"zone":"a","old":null}})"));
  EXPECT_FALSE(build_host_label("h1", {}));
  EXPECT_FALSE(build_host_label("h1", {"-"}));
  EXPECT_EQ(*build_host_maintenance("h1", "on").value().body,
            json::parse(R"({"maintenance":true})"));
  EXPECT_FALSE(build_host_maintenance("h1", "maybe"));
}

TEST(Requests, Tokens) {
  auto t = build_token_create("ci", "operator", "24h").value();
  EXPECT_EQ(*t.body, json::parse(R"({"name":"ci","role":"operator","ttl_s":86400})"));
  EXPECT_FALSE(build_token_create("ci", "root", ""));
  EXPECT_FALSE(build_token_create("ci", "viewer", "forever"));
  EXPECT_EQ(*build_join_token_create("").value().body, json::object());
  EXPECT_EQ(*build_join_token_create("2h").value().body, json::parse(R"({"ttl_s":7200})"));
  EXPECT_EQ(*build_join_token_create("1h", 500).value().body,
            json::parse(R"({"ttl_s":3600,"count":500})"));
  EXPECT_EQ(build_join_token_create("", -1).error().field, "count");
  EXPECT_EQ(build_join_token_create("", 10001).error().field, "count");
  // strata join-token list | delete ID (revocation; the id is escaped into the path).
  auto list = build_join_token_list();
  EXPECT_EQ(list.method, "GET");
  EXPECT_EQ(list.target, "/api/v1/join-tokens");
  auto del = build_join_token_delete("jt/1");
  EXPECT_EQ(del.method, "DELETE");
  EXPECT_EQ(del.target, "/api/v1/join-tokens/jt%2F1");
  EXPECT_FALSE(del.body);
}

// An argument that is not UTF-8 made json::dump() throw and the CLI abort (found by
// fuzz/targets/config.cc): the body is sent with U+FFFD and the server names the field.
TEST(Requests, NicVlan) {
  auto nic = parse_nic_spec("bridge=br0,vlan=10,mac=52:54:00:00:00:01");
  ASSERT_TRUE(nic) << nic.error().to_string();
  EXPECT_EQ(*nic,
            json::parse(R"({"mode":"bridge","bridge":"br0","vlan":10,"mac":"52:54:00:00:00:01"})"));
  EXPECT_FALSE(parse_nic_spec("bridge=br0")->contains("vlan"));
}

TEST(Requests, BodyTextOfInvalidUtf8DoesNotThrow) {
  auto nic = parse_nic_spec("bridge=\xb1\x39");
  ASSERT_TRUE(nic);
  auto req = build_host_label("h1", {"zone=\xff"});
  ASSERT_TRUE(req);
  std::string text = body_text(*req);
  EXPECT_FALSE(json::parse(text, nullptr, false).is_discarded());
  EXPECT_NE(text.find("\xef\xbf\xbd"), std::string::npos);  // U+FFFD
  EXPECT_EQ(body_text(build_vm_get("x")), "");
}

}  // namespace
}  // namespace strata::cli

namespace strata::cli {
namespace {

// Installing from an ISO: --cdrom, --boot, --firmware become the create body's cdrom, boot
// and firmware; a bad --boot list is refused before any request; vm cdrom insert/eject.
TEST(Requests, VmCreateFromAnIsoAndTheCdromCommand) {
  VmCreateOptions o;
  o.name = "inst";
  o.vcpus = 2;
  o.memory = "2G";
  o.disks = {"name=root,size=20G,boot"};
  o.cdrom = "netinst";
  o.boot = "cdrom,disk";
  o.firmware = "uefi";
  auto body = *build_vm_create(o).value().body;
  EXPECT_EQ(body["cdrom"], "netinst");
  EXPECT_EQ(body["boot"], json::parse(R"(["cdrom","disk"])"));
  EXPECT_EQ(body["firmware"], "uefi");
  o.boot = "cdrom";
  EXPECT_EQ(build_vm_create(o).value().body->at("boot"), json::parse(R"(["cdrom"])"));
  for (const char* bad : {"floppy", "cdrom,", ",disk", "cdrom disk", "CDROM"}) {
    o.boot = bad;
    auto e = build_vm_create(o);
    ASSERT_FALSE(e) << bad;
    EXPECT_EQ(e.error().field, "--boot");
  }
  VmCreateOptions plain;
  plain.name = "p";
  plain.vcpus = 1;
  plain.memory = "256";
  plain.kernel = "k";
  auto p = *build_vm_create(plain).value().body;
  EXPECT_FALSE(p.contains("cdrom") || p.contains("boot") || p.contains("firmware")) << p;
  EXPECT_FALSE(p.contains("watchdog")) << p;
  plain.watchdog = "poweroff";  // --watchdog poweroff
  EXPECT_EQ(build_vm_create(plain).value().body->at("watchdog"),
            json::parse(R"({"model":"i6300esb","action":"poweroff"})"));

  // strata vm resize-disk NAME DISK SIZE: a size with a unit, MiB without one.
  auto grow = build_vm_resize_disk("inst", "root", "20G");
  ASSERT_TRUE(grow) << grow.error().to_string();
  EXPECT_EQ(grow->method, "POST");
  EXPECT_EQ(grow->target, "/api/v1/vms/inst/disks/root/resize");
  EXPECT_EQ(*grow->body, json::parse(R"({"size_bytes":21474836480})"));
  EXPECT_EQ(build_vm_resize_disk("inst", "root", "512")->body->at("size_bytes"), 512ull << 20);
  auto bad_size = build_vm_resize_disk("inst", "root", "lots");
  ASSERT_FALSE(bad_size);
  EXPECT_EQ(bad_size.error().field, "size");

  auto insert = build_vm_cdrom("inst", std::string("rescue"));
  EXPECT_EQ(insert.method, "POST");
  EXPECT_EQ(insert.target, "/api/v1/vms/inst/cdrom");
  EXPECT_EQ(*insert.body, json::parse(R"({"image":"rescue"})"));
  auto eject = build_vm_cdrom("inst", std::nullopt);
  EXPECT_EQ(*eject.body, json::parse(R"({"image":null})"));

  // Hot-plug: attach-disk needs --size or --base; detach by name; NICs by MAC.
  auto blank = build_vm_attach_disk("inst", {"data1", "10G", "", "", false});
  ASSERT_TRUE(blank) << blank.error().to_string();
  EXPECT_EQ(blank->target, "/api/v1/vms/inst/disks");
  EXPECT_EQ(*blank->body, json::parse(R"({"name":"data1","size_bytes":10737418240})"));
  auto over = build_vm_attach_disk("inst", {"data2", "", "debian-12", "nas", true});
  ASSERT_TRUE(over);
  EXPECT_EQ(
      *over->body,
      json::parse(R"({"name":"data2","image":"debian-12","datastore":"nas","readonly":true})"));
  auto neither = build_vm_attach_disk("inst", {"data3", "", "", "", false});
  ASSERT_FALSE(neither);
  EXPECT_EQ(neither.error().field, "--size");
  auto detach = build_vm_detach_disk("inst", "data1");
  EXPECT_EQ(detach.method, "DELETE");
  EXPECT_EQ(detach.target, "/api/v1/vms/inst/disks/data1");
  EXPECT_EQ(*build_vm_attach_nic("inst", "br0", "").body,
            json::parse(R"({"mode":"bridge","bridge":"br0"})"));
  EXPECT_EQ(*build_vm_attach_nic("inst", "br0", "", 10).body,
            json::parse(R"({"mode":"bridge","bridge":"br0","vlan":10})"));
  EXPECT_EQ(*build_vm_attach_nic("inst", "", "52:54:00:00:00:07").body,
            json::parse(R"({"mode":"user","mac":"52:54:00:00:00:07"})"));
  EXPECT_EQ(build_vm_detach_nic("inst", "52:54:00:00:00:07").target,
            "/api/v1/vms/inst/nics/52%3A54%3A00%3A00%3A00%3A07");
}

TEST(Requests, VmImportCarriesTheNetworkMapAndFindsTheImportTask) {
  auto plan = build_vm_import_plan("libvirt", "<domain/>", {{"default", "br0"}});
  EXPECT_EQ((*plan.body)["network_map"]["default"], "br0");
  EXPECT_FALSE(build_vm_import_plan("ova", "<x/>").body->contains("network_map"));
  EXPECT_EQ(build_vm_import("ova", "", "", false, {{"a&b", "br0"}}).target,
            "/api/v1/vms/import?format=ova&network_map=%7B%22a%26b%22%3A%22br0%22%7D");
  EXPECT_EQ(build_import_task_find("web-1").target,
            "/api/v1/tasks?target_id=web-1&order=newest&limit=5");
  EXPECT_EQ(build_import_task_find("").target, "/api/v1/tasks?state=running&order=newest&limit=20");
  nlohmann::json list = {
      {"tasks",
       {{{"kind", "vm.create"}, {"target_id", "web-1"}, {"state", "running"}},
        {{"kind", "vm.import"}, {"target_id", "web-1"}, {"state", "failed"}},
        {{"kind", "vm.import"}, {"target_id", "db"}, {"state", "running"}},
        {{"kind", "vm.import"}, {"target_id", "web-1"}, {"state", "running"}, {"id", "t4"}}}}};
  EXPECT_EQ(pick_import_task(list, "web-1")["id"], "t4");
  EXPECT_EQ(pick_import_task(list, "")["target_id"], "db");
  EXPECT_TRUE(pick_import_task(list, "nope").is_null());
  EXPECT_TRUE(pick_import_task(nlohmann::json::array(), "").is_null());
  EXPECT_TRUE(pick_import_task({{"tasks", 3}}, "").is_null());
}

}  // namespace
}  // namespace strata::cli
