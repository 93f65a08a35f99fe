// VM create-body validation (fields named) and the stored document round trip.
#include "strata/manager/agents/agent_client.h"
#include "strata/manager/api/vm_rest.h"
#include "strata/manager/controllers/vm_document.h"

#include <gtest/gtest.h>

namespace strata::manager {
namespace {

using nlohmann::json;

Result<VmDocument> parse(const std::string& text) {
  bool start = true;
  return vm_document_from_request(json::parse(text), &start);
}

std::string field_of(const std::string& text) {
  auto r = parse(text);
  return r ? "<ok>" : r.error().field;
}

TEST(VmDocument, ValidRequestParses) {
  bool start = false;
  auto d = vm_document_from_request(json::parse(R"({"name":"web-1","vcpus":2,"memory_mib":512,
      "kernel":"k","initrd":"i","cmdline":"console=ttyS0",
      "disks":[{"name":"root","image":"base","size_bytes":1073741824}],
      "nics":[{"mode":"user"}],"labels":{"app":"web"},"node_selector":{"zone":"a"},
      "anti_affinity_group":"web"})"), &start);
  ASSERT_TRUE(d) << d.error().to_string();
  EXPECT_TRUE(start);
  EXPECT_EQ(d->spec.vcpus, 2u);
  EXPECT_EQ(d->spec.kernel_boot->cmdline, "console=ttyS0");
  EXPECT_EQ(d->placement.node_selector.at("zone"), "a");
}

TEST(VmDocument, BadInputNamesTheField) {
  EXPECT_EQ(field_of(R"({"name":"Web_1","vcpus":1,"memory_mib":64})"), "name");
  EXPECT_EQ(field_of(R"({"name":"-web","vcpus":1,"memory_mib":64})"), "name");
  EXPECT_EQ(field_of(R"({"name":"web","vcpus":0,"memory_mib":64})"), "vcpus");
  EXPECT_EQ(field_of(R"({"name":"web","vcpus":100000,"memory_mib":64})"), "vcpus");
  EXPECT_EQ(field_of(R"({"name":"web","vcpus":1,"memory_mib":-5})"), "memory_mib");
  EXPECT_EQ(field_of(R"({"name":"web","vcpus":1,"memory_mib":1})"), "memory_mib");
  EXPECT_EQ(field_of(R"({"name":"web","vcpus":1,"memory_mib":99999999999})"), "memory_mib");
  EXPECT_EQ(field_of(R"({"name":"web","vcpus":"two","memory_mib":64})"), "vcpus");
  EXPECT_EQ(field_of(R"({"name":"web","vcpus":1,"memory_mib":64,"gpu":true})"), "gpu");
  EXPECT_EQ(field_of(R"({"vcpus":1,"memory_mib":64})"), "name");
  EXPECT_EQ(field_of(R"({"name":"web","vcpus":1,"memory_mib":64,
      "disks":[{"name":"root","size_bytes":-1}]})"), "disks[0].size_bytes");
  EXPECT_EQ(field_of(R"({"name":"web","vcpus":1,"memory_mib":64,
      "disks":[{"name":"root","size_bytes":1},{"name":"d","bogus":1}]})"), "disks[1].bogus");
  EXPECT_EQ(field_of(R"({"name":"web","vcpus":1,"memory_mib":64,"nics":[{"mode":"wifi"}]})"),
            "nics[0].mode");
  EXPECT_EQ(field_of(R"({"name":"web","vcpus":1,"memory_mib":64,"initrd":"i"})"), "initrd");
}

// null in an optional field means absent. nlohmann's value() threw type_error on it: an
// uncaught exception on an HTTP thread that took stratad down (found by fuzzing
// fuzz/targets/rest_bodies.cc).
TEST(VmDocument, NullOptionalFieldsAreAbsent) {
  bool start = false;
  auto d = vm_document_from_request(json::parse(R"({"name":"web","vcpus":1,"memory_mib":64,
      "machine":null,"kernel":null,"initrd":null,"cmdline":null,"host":null,
      "anti_affinity_group":null,"start":null,"labels":null,"node_selector":null,
      "disks":[{"name":"root","image":"base","size_bytes":null,"boot":null,"readonly":null},
               {"name":"sys","image":"base","boot":true}],
      "nics":[{"mode":"user","bridge":null,"mac":null}]})"), &start);
  ASSERT_TRUE(d) << d.error().to_string();
  EXPECT_TRUE(start);
  EXPECT_FALSE(d->spec.kernel_boot);
  EXPECT_EQ(d->spec.disks.at(0).base_image, "base");
  EXPECT_FALSE(d->spec.disks.at(0).boot);
  EXPECT_EQ(d->spec.nics.at(0).mac, "");
}

// A stored document of the wrong shape (a damaged row) is an error, never an exception.
TEST(VmDocument, DamagedStoredDocumentIsAnError) {
  auto good = parse(R"({"name":"db","vcpus":1,"memory_mib":128,"kernel":"k"})");
  ASSERT_TRUE(good);
  auto j = json::parse(encode(*good));
  j["control"]["paused"] = 1;
  EXPECT_FALSE(decode_vm_document(j.dump()));
  j = json::parse(encode(*good));
  j["placement"]["host"] = nullptr;
  EXPECT_FALSE(decode_vm_document(j.dump()));
  auto st = decode_vm_status(R"({"state":5,"observed_ms":"x"})");
  EXPECT_EQ(st.state, "pending");
}

// Found by fuzz/targets/vm_spec.cc: value() converted a float out of the integer's range
// (undefined behaviour; UBSan aborts) and a number past int64 wrapped. Such a stored row is
// damaged, like a member of the wrong type: an error, or the default status.
TEST(VmDocument, OutOfRangeNumbersInAStoredDocumentAreDamage) {
  auto good = parse(R"({"name":"db","vcpus":1,"memory_mib":128,"kernel":"k"})");
  ASSERT_TRUE(good);
  for (const char* bad : {"1e300", "3.18446744073709552e20", "18446744073709551615", "1.5"}) {
    auto j = json::parse(encode(*good));
    j["control"]["generation"] = json::parse(bad);
    EXPECT_FALSE(decode_vm_document(j.dump())) << bad;
  }
  auto j = json::parse(encode(*good));
  j["control"]["stop_timeout_s"] = -1;
  EXPECT_FALSE(decode_vm_document(j.dump())) << "negative into unsigned";
  j = json::parse(encode(*good));
  j["control"]["stop_timeout_s"] = 4294967296ull;
  EXPECT_FALSE(decode_vm_document(j.dump())) << "past uint32";
  j = json::parse(encode(*good));
  j["control"]["stop_timeout_s"] = 60;
  j["control"]["generation"] = 7;
  auto ok = decode_vm_document(j.dump());
  ASSERT_TRUE(ok) << ok.error().to_string();
  EXPECT_EQ(ok->control.stop_timeout_s, 60u);
  EXPECT_EQ(ok->control.generation, 7);
  auto st = decode_vm_status(R"({"state":"running","observed_ms":1795608211998,)"
                             R"("applied_generation":318446744073709551615})");
  EXPECT_EQ(st.state, "pending");
  EXPECT_EQ(st.applied_generation, 0);
  auto fine = decode_vm_status(R"({"state":"running","observed_ms":5,"applied_generation":3})");
  EXPECT_EQ(fine.state, "running");
  EXPECT_EQ(fine.applied_generation, 3);
}

TEST(VmDocument, LabelAndSelectorMapsAreBounded) {
  json body = json::parse(R"({"name":"web","vcpus":1,"memory_mib":64,"kernel":"k"})");
  for (int i = 0; i < 65; ++i) body["node_selector"]["k" + std::to_string(i)] = "v";
  bool start = true;
  auto r = vm_document_from_request(body, &start);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().field, "node_selector");
  body.erase("node_selector");
  for (int i = 0; i < 65; ++i) body["labels"]["k" + std::to_string(i)] = "v";
  r = vm_document_from_request(body, &start);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().field, "labels");
  body["labels"] = {{std::string(64, 'k'), "v"}};
  EXPECT_FALSE(vm_document_from_request(body, &start));
  body["labels"] = {{"k", std::string(256, 'v')}};
  r = vm_document_from_request(body, &start);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().field, "labels.k");
}

// "vnc": false (no graphical console) is accepted, kept in the stored document, shown in
// the VM's JSON and sent to the agent, whose QEMU command line then has no -vnc (argv_test
// KernelBootBridgeKvmNoVnc). Absent means a display; a non-boolean names the field.
TEST(VmDocument, VncFalseIsKeptAndSentToTheAgent) {
  auto d = parse(R"({"name":"headless","vcpus":1,"memory_mib":64,"kernel":"k","vnc":false})");
  ASSERT_TRUE(d) << d.error().to_string();
  EXPECT_FALSE(d->spec.vnc);
  auto back = decode_vm_document(encode(*d));
  ASSERT_TRUE(back) << back.error().to_string();
  EXPECT_FALSE(back->spec.vnc);
  pb::VmSpec sent = to_proto(back->spec);
  ASSERT_TRUE(sent.has_vnc());
  EXPECT_FALSE(sent.vnc());
  store::VmRecord rec;
  rec.id = "v1";
  rec.name = "headless";
  rec.spec = encode(*back);
  EXPECT_EQ(vm_to_json(rec, "h1")["spec"]["vnc"], false);

  auto dflt = parse(R"({"name":"web","vcpus":1,"memory_mib":64,"kernel":"k"})");
  ASSERT_TRUE(dflt);
  EXPECT_TRUE(dflt->spec.vnc);
  EXPECT_TRUE(to_proto(dflt->spec).vnc());
  EXPECT_EQ(field_of(R"({"name":"web","vcpus":1,"memory_mib":64,"kernel":"k","vnc":"no"})"), "vnc");
  EXPECT_EQ(field_of(R"({"name":"web","vcpus":1,"memory_mib":64,"kernel":"k","vnc":null})"), "<ok>");
}

// cloud_init on the create body: parsed strictly by the model (errors name the field),
// kept in the stored document, sent to the agent as cloud_init_json (hash included: the
// agent needs it), and shown by the REST form without the hash or the user-data.
TEST(VmDocument, CloudInitIsKeptSentAndShownWithoutSecrets) {
  const std::string hash = "$6$saltsalt$7yQ1TGe3kTq0yZbqgW3jB5o2l8Vd4RzrCkPGpH0tNz0";
  json body = json::parse(R"({"name":"web","vcpus":1,"memory_mib":64,"kernel":"k",
      "nics":[{"mode":"user"},{"mode":"bridge","bridge":"br0"}],
      "cloud_init":{"hostname":"web.example.org",
        "users":[{"name":"alice","ssh_authorized_keys":[
           "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGvZ0pQ3b2x3bY4mJbQfJ6x1m0mC4sQ alice@laptop"],
          "sudo":true},{"name":"bob"}],
        "network":[{"nic":0,"dhcp4":true},{"nic":1,"address":"192.0.2.10/24","gateway":"192.0.2.1"}],
        "user_data":"#!/bin/sh\necho secret-token\n"}})");
  body["cloud_init"]["users"][0]["password_hash"] = hash;
  bool start = true;
  auto d = vm_document_from_request(body, &start);
  ASSERT_TRUE(d) << d.error().to_string();
  ASSERT_TRUE(d->spec.cloud_init);
  EXPECT_EQ(d->spec.cloud_init->users[0].password_hash, hash);
  auto back = decode_vm_document(encode(*d));
  ASSERT_TRUE(back) << back.error().to_string();
  ASSERT_TRUE(back->spec.cloud_init);
  pb::VmSpec sent = to_proto(back->spec);
  auto sent_ci = json::parse(sent.cloud_init_json());
  EXPECT_EQ(sent_ci["users"][0]["password_hash"], hash);
  EXPECT_EQ(sent_ci["network"][1]["address"], "192.0.2.10/24");

  store::VmRecord rec;
  rec.id = "v1";
  rec.name = "web";
  rec.spec = encode(*back);
  json shown = vm_to_json(rec, "h1");
  std::string text = shown.dump();
  EXPECT_EQ(text.find("$6$"), std::string::npos) << text;
  EXPECT_EQ(text.find("secret-token"), std::string::npos) << text;
  const json& ci = shown["spec"]["cloud_init"];
  EXPECT_EQ(ci["hostname"], "web.example.org");
  EXPECT_EQ(ci["users"][0]["password_set"], true);
  EXPECT_EQ(ci["users"][0]["sudo"], true);
  EXPECT_EQ(ci["users"][1]["password_set"], false);
  EXPECT_EQ(ci["users"][1]["sudo"], false);
  EXPECT_FALSE(ci["users"][0].contains("password_hash"));
  EXPECT_EQ(ci["user_data_bytes"], 28);
  EXPECT_EQ(ci["network"][0]["dhcp4"], true);

  // Without cloud_init: null in the REST form, no field to the agent.
  auto plain = parse(R"({"name":"web","vcpus":1,"memory_mib":64,"kernel":"k"})");
  ASSERT_TRUE(plain);
  EXPECT_FALSE(plain->spec.cloud_init);
  EXPECT_TRUE(to_proto(plain->spec).cloud_init_json().empty());
  rec.spec = encode(*plain);
  EXPECT_TRUE(vm_to_json(rec, "h1")["spec"]["cloud_init"].is_null());
}

TEST(VmDocument, BadCloudInitNamesTheField) {
  const std::string base = R"({"name":"web","vcpus":1,"memory_mib":64,"kernel":"k",)"
                           R"("nics":[{"mode":"user"}],"cloud_init":)";
  struct Case {
    std::string ci, field;
  } cases[] = {
      {R"("yes")", "cloud_init"},
      {R"({"colour":1})", "cloud_init.colour"},
      {R"({"hostname":"a_b"})", "cloud_init.hostname"},
      {R"({"users":[{"name":"alice","password_hash":"hunter2"}]})",
       "cloud_init.users[0].password_hash"},
      {R"({"users":[{"name":"Alice"}]})", "cloud_init.users[0].name"},
      {R"({"users":[{"name":"a","ssh_authorized_keys":["not a key"]}]})",
       "cloud_init.users[0].ssh_authorized_keys[0]"},
      {R"({"users":[{"name":"a","sudo":"yes"}]})", "cloud_init.users[0].sudo"},
      {R"({"network":[{"nic":1,"dhcp4":true}]})", "cloud_init.network[0].nic"},
      {R"({"network":[{"nic":0,"address":"192.0.2.10"}]})", "cloud_init.network[0].address"},
      {R"({"network":[{"nic":0,"address":"192.0.2.10/24","gateway":"2001:db8::1"}]})",
       "cloud_init.network[0].gateway"},
      {R"({"user_data":"packages: [htop]"})", "cloud_init.user_data"},
  };
  for (const auto& c : cases) EXPECT_EQ(field_of(base + c.ci + "}"), c.field) << c.ci;
  EXPECT_EQ(field_of(base + "null}"), "<ok>");
}

// Guest facts in the stored status: kept, shown as status.guest, damaged ones dropped alone;
// from the agent's VmStatus through guest_facts_of (checked).
TEST(VmDocument, GuestFactsAreKeptAndShownInTheStatus) {
  VmStatusDoc st;
  st.state = "running";
  model::GuestFacts g;
  g.os_name = "Debian GNU/Linux 12 (bookworm)";
  g.hostname = "ci-guest";
  g.interfaces.push_back({"eth0", "52:54:00:12:34:56", {"10.0.2.15/24"}});
  g.updated_unix_ms = 1700000000000;
  st.guest = g;
  VmStatusDoc back = decode_vm_status(encode(st));
  ASSERT_TRUE(back.guest);
  EXPECT_EQ(*back.guest, g);
  EXPECT_EQ(back.state, "running");
  json damaged = json::parse(encode(st));
  damaged["guest"]["interfaces"][0]["addresses"][0] = "nonsense";
  VmStatusDoc d2 = decode_vm_status(damaged.dump());
  EXPECT_FALSE(d2.guest);
  EXPECT_EQ(d2.state, "running");

  store::VmRecord rec;
  rec.id = "v1";
  rec.name = "web";
  rec.status = encode(st);
  json shown = vm_to_json(rec, "h1");
  EXPECT_EQ(shown["status"]["guest"]["hostname"], "ci-guest");
  EXPECT_EQ(shown["status"]["guest"]["interfaces"][0]["addresses"][0], "10.0.2.15/24");
  rec.status = encode(VmStatusDoc{});
  EXPECT_TRUE(vm_to_json(rec, "h1")["status"]["guest"].is_null());

  pb::VmStatus avm;
  EXPECT_FALSE(guest_facts_of(avm));
  avm.mutable_guest()->set_hostname("ci-guest");
  auto* i = avm.mutable_guest()->add_interfaces();
  i->set_name("eth0");
  i->add_addresses("10.0.2.15/24");
  auto got = guest_facts_of(avm);
  ASSERT_TRUE(got);
  EXPECT_EQ(got->hostname, "ci-guest");
  i->set_mac("not-a-mac");
  EXPECT_FALSE(guest_facts_of(avm));
}

// A VM's metrics from its host's sample (the agent's response printed by protobuf: 64-bit
// counters as strings, zeros left out); another VM's or a damaged sample: null.
TEST(VmDocument, VmMetricsFromAHostSample) {
  auto sample = json::parse(R"({"host":{"cpu_busy":0.5},"vms":[
      {"name":"a","state":"VM_STATE_RUNNING","stats":{"cpu_time_ns":"1500000000","rss_bytes":"73400320"}},
      {"name":"b","state":"VM_STATE_RUNNING"}]})");
  auto a = vm_metrics_of(sample, "a");
  EXPECT_EQ(a["cpu_time_ns"], 1500000000u);
  EXPECT_EQ(a["rss_bytes"], 73400320u);
  EXPECT_EQ(a["net_tx_bytes"], 0u);
  EXPECT_EQ(vm_metrics_of(sample, "b")["cpu_time_ns"], 0u);
  EXPECT_TRUE(vm_metrics_of(sample, "c").is_null());
  EXPECT_TRUE(vm_metrics_of(json::parse(R"({"vms":5})"), "a").is_null());
  EXPECT_TRUE(vm_metrics_of(json(nullptr), "a").is_null());
}

TEST(VmDocument, StoredDocumentRoundTrips) {
  auto d = parse(R"({"name":"db","vcpus":1,"memory_mib":128,"kernel":"k",
                    "anti_affinity_group":"db","host":"h1"})");
  ASSERT_TRUE(d);
  d->control.generation = 7;
  d->control.paused = true;
  d->control.task_id = "t1";
  auto back = decode_vm_document(encode(*d));
  ASSERT_TRUE(back) << back.error().to_string();
  EXPECT_EQ(back->spec.name, "db");
  EXPECT_EQ(back->placement.host, "h1");
  EXPECT_EQ(back->placement.anti_affinity_group, "db");
  EXPECT_EQ(back->control.generation, 7);
  EXPECT_TRUE(back->control.paused);
  EXPECT_EQ(back->control.task_id, "t1");
  VmStatusDoc st;
  st.state = "running";
  st.applied_generation = 7;
  auto st2 = decode_vm_status(encode(st));
  EXPECT_EQ(st2.state, "running");
  EXPECT_EQ(st2.applied_generation, 7);
}

}  // namespace
}  // namespace strata::manager
