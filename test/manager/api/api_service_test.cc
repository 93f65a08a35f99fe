// The REST pipeline end to end in-process, on a real SQLite store: auth and roles, strict
// validation with named fields, 422 from the real scheduler, audit entries, tokens.
#include "strata/manager/api/api_service.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <future>
#include <set>

#include "manager_parts.h"
#include "strata/manager/agents/connection_manager.h"
#include "strata/manager/controllers/vm_controller.h"
#include "strata/manager/tasks/task_tracker.h"
#include "strata/pki/certificate_authority.h"
#include "strata/pki/pki.h"

namespace strata::manager {
namespace {

using nlohmann::json;

class ApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(parts_.build());
    admin_ = parts_.admin;
    ApiDeps d = parts_.deps();
    auto ca = pki::CertificateAuthority::create("test CA");
    ASSERT_TRUE(ca);
    ca_ = std::make_unique<pki::CertificateAuthority>(std::move(*ca));
    d.ca = ca_.get();
    api_ = std::make_unique<ApiService>(std::move(d));
  }

  HttpResponse call(const std::string& method, const std::string& path, const std::string& body,
                    const std::string& token) {
    HttpRequest r;
    r.method = method;
    r.path = path;
    r.body = body;
    if (!body.empty()) r.headers["content-type"] = "application/json";
    if (!token.empty()) r.headers["authorization"] = "Bearer " + token;
    r.remote_address = local_peer_ ? "127.0.0.1" : "192.0.2.7";
    r.peer_is_local = local_peer_;
    HttpResponse resp = api_->dispatch(r);
    if (!resp.deferred) return resp;
    // An offloaded route: its handler runs on the API's worker pool; wait for its answer.
    std::promise<HttpResponse> answer;
    auto got = answer.get_future();
    resp.deferred([&answer](HttpResponse done) { answer.set_value(std::move(done)); });
    return got.get();
  }
  HttpResponse enroll(const json& body) {
    return call("POST", "/api/v1/hosts/enroll", body.dump(), "");
  }
  std::string join_token() {
    auto jt = call("POST", "/api/v1/join-tokens", "", admin_);
    EXPECT_EQ(jt.status, 201u) << jt.body;
    return json::parse(jt.body).value("token", "");
  }
  bool local_peer_ = true;  // requests come from this machine unless a test says otherwise
  std::string make_token(const std::string& name, const std::string& role) {
    auto r = call("POST", "/api/v1/tokens", json{{"name", name}, {"role", role}}.dump(), admin_);
    EXPECT_EQ(r.status, 201u) << r.body;
    return json::parse(r.body)["token"];
  }
  // A host the scheduler sees as up (no agent behind it: placement only).
  void add_host(const std::string& name, int cpus, int mem_mib,
                const std::string& inventory = "{}") {
    store::HostRecord h;
    h.name = name;
    h.address = "unix:/nonexistent/" + name;
    h.state = "up";
    h.accelerator = "tcg";
    h.cpu_threads = cpus;
    h.memory_mib = mem_mib;
    h.inventory = inventory;
    ASSERT_TRUE(parts_.store->create_host(h));
  }
  static std::string field(const HttpResponse& r) {
    auto j = json::parse(r.body);
    return j["error"].value("field", "");
  }

  test_support::ManagerParts parts_;
  std::string admin_;
  std::unique_ptr<pki::CertificateAuthority> ca_;
  std::unique_ptr<ApiService> api_;
};

TEST_F(ApiTest, OpenRoutesNeedNoToken) {
  EXPECT_EQ(call("GET", "/healthz", "", "").status, 200u);
  auto m = call("GET", "/metrics", "", "");
  EXPECT_EQ(m.status, 200u);
  EXPECT_NE(m.body.find("strata_http_requests_total"), std::string::npos);
  EXPECT_NE(m.body.find("strata_hosts{state=\"up\"}"), std::string::npos);
  auto o = call("GET", "/api/v1/openapi.json", "", "");
  EXPECT_EQ(o.status, 200u);
  EXPECT_EQ(json::parse(o.body)["openapi"].get<std::string>().substr(0, 2), "3.");
}

// The method label takes a bounded set of values: any token is a valid HTTP method, and one
// series per random method grew the metrics without bound.
TEST_F(ApiTest, MetricsMethodLabelIsBounded) {
  for (int i = 0; i < 20; ++i) call("RANDOM" + std::to_string(i), "/healthz", "", "");
  call("GET", "/healthz", "", "");
  auto m = call("GET", "/metrics", "", "");
  ASSERT_EQ(m.status, 200u);
  EXPECT_EQ(m.body.find("RANDOM"), std::string::npos) << m.body;
  EXPECT_NE(m.body.find("method=\"other\""), std::string::npos) << m.body;
  EXPECT_NE(m.body.find("method=\"GET\""), std::string::npos) << m.body;
  EXPECT_NE(m.body.find("# TYPE strata_http_request_duration_seconds histogram"),
            std::string::npos);
  EXPECT_NE(m.body.find("strata_http_request_duration_seconds_bucket{"), std::string::npos);
  EXPECT_NE(m.body.find("# TYPE strata_vms gauge"), std::string::npos);
  EXPECT_EQ(HttpMetrics::method_label("DELETE"), "DELETE");
  EXPECT_EQ(HttpMetrics::method_label("get"), "other");
  EXPECT_EQ(HttpMetrics::method_label(std::string(1000, 'X')), "other");
}

TEST_F(ApiTest, MissingOrInvalidTokenIs401) {
  auto r = call("GET", "/api/v1/vms", "", "");
  EXPECT_EQ(r.status, 401u);
  EXPECT_EQ(json::parse(r.body)["error"]["code"], "unauthenticated");
  EXPECT_EQ(call("GET", "/api/v1/vms", "", "sta_notatoken").status, 401u);
}

TEST_F(ApiTest, RolesAreEnforced) {
  std::string viewer = make_token("view", "viewer");
  std::string op = make_token("ops", "operator");
  EXPECT_EQ(call("GET", "/api/v1/vms", "", viewer).status, 200u);
  auto denied = call("POST", "/api/v1/vms", R"({"name":"a","vcpus":1,"memory_mib":64})", viewer);
  EXPECT_EQ(denied.status, 403u);
  EXPECT_EQ(call("POST", "/api/v1/tokens", R"({"name":"x","role":"admin"})", op).status, 403u);
  EXPECT_EQ(call("GET", "/api/v1/tokens", "", op).status, 403u);
  EXPECT_EQ(call("GET", "/api/v1/tokens", "", admin_).status, 200u);
}

TEST_F(ApiTest, BadVmBodiesAre400NamingTheField) {
  struct Case {
    const char* body;
    const char* field;
  } cases[] = {
      {R"({"name":"a","vcpus":1,)", ""},
      {R"({"name":"a","vcpus":"1","memory_mib":64})", "vcpus"},
      {R"({"name":"a","vcpus":1,"memory_mib":64,"colour":1})", "colour"},
      {R"({"name":"Not_DNS","vcpus":1,"memory_mib":64})", "name"},
      {R"({"name":"a","vcpus":1,"memory_mib":-64})", "memory_mib"},
      {R"({"name":"a","vcpus":1,"memory_mib":1e300})", "memory_mib"},
      {R"({"name":"a","vcpus":4096,"memory_mib":64})", "vcpus"},
      {R"({"name":"a","vcpus":1,"memory_mib":64,"disks":[{"name":"r","size_bytes":1e30}]})",
       "disks[0].size_bytes"},
      {R"({"name":"a","vcpus":1,"memory_mib":64,"affinity_group":"Not DNS"})", "affinity_group"},
      {R"({"name":"a","vcpus":1,"memory_mib":64,"affinity_group":"g","anti_affinity_group":"g"})",
       "affinity_group"},
      {R"({"name":"a","vcpus":1,"memory_mib":64,"avoid_selector":{"zone":1}})",
       "avoid_selector.zone"},
      {R"({"name":"a","vcpus":1,"memory_mib":64,"avoid_selector":["zone"]})", "avoid_selector"},
      {R"({"name":"a","vcpus":1,"memory_mib":64,"kernel":"k","nics":[{"mode":"bridge","bridge":"br0","vlan":4095}]})",
       "nics[0].vlan"},
      {R"({"name":"a","vcpus":1,"memory_mib":64,"kernel":"k","nics":[{"mode":"bridge","bridge":"br0","vlan":65546}]})",
       "nics[0].vlan"},
      {R"({"name":"a","vcpus":1,"memory_mib":64,"kernel":"k","nics":[{"mode":"bridge","bridge":"br0","vlan":"10"}]})",
       "nics[0].vlan"},
      {R"({"name":"a","vcpus":1,"memory_mib":64,"kernel":"k","nics":[{"mode":"user"},{"mode":"user","vlan":10}]})",
       "nics[1].vlan"},
  };
  for (const auto& c : cases) {
    auto r = call("POST", "/api/v1/vms", c.body, admin_);
    EXPECT_EQ(r.status, 400u) << c.body << " -> " << r.body;
    EXPECT_EQ(field(r), c.field) << c.body;
  }
}

// cloud_init over HTTP: a bad field is 400 naming it (and the refused request's audit
// entry does not hold the hash); an accepted one is stored with the hash for the agent, and
// no answer (create, get, list, events) ever shows the hash or the user-data.
TEST_F(ApiTest, CloudInitIsValidatedAndItsSecretsAreNeverShown) {
  add_host("h1", 4, 4096);
  const std::string hash = "$6$apitestsalt$7yQ1TGe3kTq0yZbqgW3jB5o2l8Vd4RzrCkPGpH0tNz0";
  auto body = [&](const json& ci) {
    json b = {{"name", "web"}, {"vcpus", 1},        {"memory_mib", 64},
              {"kernel", "k"}, {"nics", json::array({{{"mode", "user"}}})}, {"cloud_init", ci}};
    return b.dump();
  };
  auto bad = call("POST", "/api/v1/vms",
                  body({{"users", {{{"name", "alice"}, {"password_hash", "apitest-clear"}}}}}),
                  admin_);
  EXPECT_EQ(bad.status, 400u) << bad.body;
  EXPECT_EQ(field(bad), "cloud_init.users[0].password_hash");
  EXPECT_EQ(bad.body.find("apitest-clear"), std::string::npos) << bad.body;
  auto bad_net = call("POST", "/api/v1/vms",
                      body({{"network", {{{"nic", 1}, {"dhcp4", true}}}}}), admin_);
  EXPECT_EQ(bad_net.status, 400u) << bad_net.body;
  EXPECT_EQ(field(bad_net), "cloud_init.network[0].nic");

  json ci = {{"hostname", "web"},
             {"users", {{{"name", "alice"}, {"password_hash", hash}, {"sudo", true}}}},
             {"network", {{{"nic", 0}, {"dhcp4", true}}}},
             {"user_data", "#cloud-config\nruncmd: [echo apitest-secret]\n"}};
  auto made = call("POST", "/api/v1/vms", body(ci), admin_);
  ASSERT_EQ(made.status, 202u) << made.body;
  auto vm = parts_.store->get_vm_by_name("web");
  ASSERT_TRUE(vm);
  EXPECT_NE(vm->spec.find(hash), std::string::npos) << "the agent needs the stored hash";
  auto got = call("GET", "/api/v1/vms/web", "", admin_);
  ASSERT_EQ(got.status, 200u);
  auto shown = json::parse(got.body)["spec"]["cloud_init"];
  EXPECT_EQ(shown["users"][0]["name"], "alice");
  EXPECT_EQ(shown["users"][0]["password_set"], true);
  EXPECT_TRUE(shown["user_data_bytes"].is_number()) << shown.dump();
  for (const auto& answer : {made.body, got.body, call("GET", "/api/v1/vms", "", admin_).body,
                             call("GET", "/api/v1/events?limit=1000", "", admin_).body}) {
    EXPECT_EQ(answer.find("apitestsalt"), std::string::npos) << answer;
    EXPECT_EQ(answer.find("apitest-secret"), std::string::npos) << answer;
    EXPECT_EQ(answer.find("apitest-clear"), std::string::npos) << answer;
  }
}

// A bridge NIC's VLAN is kept in the spec and shown; a NIC without one shows none.
TEST_F(ApiTest, NicVlanIsStoredAndShown) {
  const std::string body =
      R"({"name":"web","vcpus":1,"memory_mib":64,"kernel":"k","nics":[)"
      R"({"mode":"bridge","bridge":"br0","vlan":10},{"mode":"bridge","bridge":"br0"}]})";
  // A host whose br0 cannot filter VLANs cannot take it: 422 naming the network filter.
  add_host("h0", 4, 4096,
           R"({"interfaces":[{"name":"br0","bridge":true,"vlan_filtering_supported":false}]})");
  auto refused = call("POST", "/api/v1/vms", body, admin_);
  ASSERT_EQ(refused.status, 422u) << refused.body;
  EXPECT_NE(refused.body.find("h0: network: bridge br0 cannot put a NIC on a VLAN"),
            std::string::npos)
      << refused.body;
  add_host("h1", 4, 4096,
           R"({"interfaces":[{"name":"br0","bridge":true,"vlan_filtering_supported":true}]})");
  auto made = call("POST", "/api/v1/vms", body, admin_);
  ASSERT_EQ(made.status, 202u) << made.body;
  auto got = call("GET", "/api/v1/vms/web", "", admin_);
  ASSERT_EQ(got.status, 200u);
  auto nics = json::parse(got.body)["spec"]["nics"];
  ASSERT_EQ(nics.size(), 2u) << got.body;
  EXPECT_EQ(nics[0]["vlan"], 10) << got.body;
  EXPECT_FALSE(nics[1].contains("vlan")) << got.body;
}

TEST_F(ApiTest, UnschedulableIs422NamingTheFilter) {
  auto none =
      call("POST", "/api/v1/vms", R"({"name":"a","vcpus":1,"memory_mib":64,"kernel":"k"})", admin_);
  EXPECT_EQ(none.status, 422u) << none.body;
  add_host("small", 2, 1024);
  auto big = call("POST", "/api/v1/vms", R"({"name":"a","vcpus":1,"memory_mib":8192,"kernel":"k"})",
                  admin_);
  EXPECT_EQ(big.status, 422u) << big.body;
  EXPECT_NE(json::parse(big.body)["error"]["message"].get<std::string>().find("memory"),
            std::string::npos)
      << big.body;
  auto sel =
      call("POST", "/api/v1/vms",
           R"({"name":"a","vcpus":1,"memory_mib":64,"kernel":"k","node_selector":{"zone":"x"}})",
           admin_);
  EXPECT_EQ(sel.status, 422u);
  EXPECT_NE(sel.body.find("selector"), std::string::npos) << sel.body;
}

TEST_F(ApiTest, CreateIsAcceptedWithTaskAndAudited) {
  add_host("h1", 4, 4096);
  std::string op = make_token("ops", "operator");
  auto r =
      call("POST", "/api/v1/vms", R"({"name":"web","vcpus":1,"memory_mib":64,"kernel":"k"})", op);
  ASSERT_EQ(r.status, 202u) << r.body;
  auto j = json::parse(r.body);
  EXPECT_EQ(j["vm"]["name"], "web");
  EXPECT_EQ(j["vm"]["host"], "h1");
  EXPECT_EQ(j["task"]["kind"], "vm.create");
  auto dup =
      call("POST", "/api/v1/vms", R"({"name":"web","vcpus":1,"memory_mib":64,"kernel":"k"})", op);
  EXPECT_EQ(dup.status, 409u);
  auto got = call("GET", "/api/v1/vms/web", "", op);
  EXPECT_EQ(got.status, 200u);
  EXPECT_EQ(call("GET", "/api/v1/vms/nope", "", op).status, 404u);
  auto stop = call("POST", "/api/v1/vms/web/stop", R"({"force":true})", op);
  EXPECT_EQ(stop.status, 202u) << stop.body;
  EXPECT_EQ(json::parse(call("GET", "/api/v1/vms/web", "", op).body)["desired_state"], "stopped");
  EXPECT_EQ(call("POST", "/api/v1/vms/web/stop", R"({"force":"yes"})", op).status, 400u);
  EXPECT_EQ(call("POST", "/api/v1/vms/web/start", R"({"resource_version":1})", op).status, 409u);

  auto events = json::parse(call("GET", "/api/v1/events", "", op).body)["events"];
  bool saw_create = false;
  for (const auto& e : events)
    if (e["action"] == "vm.create" && e["actor"] == "token:ops" && e["target"] == "vm/web" &&
        e["result"] == "ok")
      saw_create = true;
  EXPECT_TRUE(saw_create) << events.dump();
  // Each accepted change is audited once (by the VM service, in its transaction), each
  // refused one by the pipeline with its status.
  int creates_ok = 0, stops_ok = 0, create_409 = 0, start_409 = 0;
  for (const auto& e : events) {
    creates_ok += e["action"] == "vm.create" && e["result"] == "ok";
    create_409 += e["action"] == "vm.create" && e["result"] == "error 409";
    stops_ok += e["action"] == "vm.stop" && e["result"] == "ok" && e["target"] == "vm/web";
    start_409 += e["action"] == "vm.start" && e["result"] == "error 409";
  }
  EXPECT_EQ(creates_ok, 1) << events.dump();
  EXPECT_EQ(create_409, 1) << events.dump();
  EXPECT_EQ(stops_ok, 1) << events.dump();
  EXPECT_EQ(start_409, 1) << events.dump();
}

// Snapshot routes: parsing, roles and refusals (the agent side: vm_snapshots_test).
TEST_F(ApiTest, SnapshotRoutesParseAndRefuse) {
  add_host("h1", 4, 4096);
  std::string op = make_token("ops", "operator");
  std::string viewer = make_token("view", "viewer");
  ASSERT_EQ(
      call("POST", "/api/v1/vms", R"({"name":"web","vcpus":1,"memory_mib":64,"kernel":"k"})", op)
          .status,
      202u);
  auto missing = call("POST", "/api/v1/vms/web/snapshots", "{}", op);
  EXPECT_EQ(missing.status, 400u);
  EXPECT_EQ(json::parse(missing.body)["error"]["field"], "name") << missing.body;
  EXPECT_EQ(call("POST", "/api/v1/vms/web/snapshots", R"({"name":"s1","x":1})", op).status, 400u);
  auto bad = call("POST", "/api/v1/vms/web/snapshots", R"({"name":"Bad_Name"})", op);
  EXPECT_EQ(bad.status, 400u) << bad.body;
  EXPECT_EQ(call("POST", "/api/v1/vms/nope/snapshots", R"({"name":"s1"})", op).status, 404u);
  EXPECT_EQ(call("POST", "/api/v1/vms/web/snapshots", R"({"name":"s1"})", viewer).status, 403u);
  // The VM is meant to run: revert is refused before anything is written.
  auto rv = call("POST", "/api/v1/vms/web/snapshots/s1/revert", "", op);
  EXPECT_EQ(rv.status, 409u) << rv.body;
  // Accepted: 202 with the task (the host has no agent here, so the task then fails).
  auto c = call("POST", "/api/v1/vms/web/snapshots", R"({"name":"s1"})", op);
  ASSERT_EQ(c.status, 202u) << c.body;
  auto j = json::parse(c.body);
  EXPECT_EQ(j["task"]["kind"], "vm.snapshot.create");
  EXPECT_EQ(j["snapshot"], "s1");
  auto d = call("DELETE", "/api/v1/vms/web/snapshots/s1", "", op);
  ASSERT_EQ(d.status, 202u) << d.body;
  EXPECT_EQ(json::parse(d.body)["task"]["kind"], "vm.snapshot.delete");
  // Listing asks the host: not connected is 503.
  EXPECT_EQ(call("GET", "/api/v1/vms/web/snapshots", "", viewer).status, 503u);
}

// Template and clone routes: parsing, roles and refusals (the host side: vm_clones_test).
TEST_F(ApiTest, TemplateAndCloneRoutesParseAndRefuse) {
  add_host("h1", 4, 4096);
  std::string op = make_token("ops", "operator");
  std::string viewer = make_token("view", "viewer");
  ASSERT_EQ(
      call("POST", "/api/v1/vms", R"({"name":"web","vcpus":1,"memory_mib":64,"kernel":"k"})", op)
          .status,
      202u);
  // Meant to run: not a template yet (409), and a linked clone needs a template (409).
  auto running = call("POST", "/api/v1/vms/web/template", "", op);
  EXPECT_EQ(running.status, 409u) << running.body;
  EXPECT_EQ(call("POST", "/api/v1/vms/web/template", "", viewer).status, 403u);
  EXPECT_EQ(call("POST", "/api/v1/vms/nope/template", "", op).status, 404u);
  EXPECT_EQ(call("POST", "/api/v1/vms/web/template", R"({"x":1})", op).status, 400u);

  auto missing = call("POST", "/api/v1/vms/web/clone", "{}", op);
  EXPECT_EQ(missing.status, 400u);
  EXPECT_EQ(json::parse(missing.body)["error"]["field"], "name") << missing.body;
  auto bad = call("POST", "/api/v1/vms/web/clone", R"({"name":"Bad_Name"})", op);
  EXPECT_EQ(bad.status, 400u) << bad.body;
  EXPECT_EQ(json::parse(bad.body)["error"]["field"], "name") << bad.body;
  auto linked_type = call("POST", "/api/v1/vms/web/clone", R"({"name":"c1","linked":"yes"})", op);
  EXPECT_EQ(linked_type.status, 400u);
  EXPECT_EQ(json::parse(linked_type.body)["error"]["field"], "linked") << linked_type.body;
  EXPECT_EQ(call("POST", "/api/v1/vms/web/clone", R"({"name":"c1","x":1})", op).status, 400u);
  EXPECT_EQ(call("POST", "/api/v1/vms/web/clone", R"({"name":"c1"})", viewer).status, 403u);
  EXPECT_EQ(call("POST", "/api/v1/vms/nope/clone", R"({"name":"c1"})", op).status, 404u);
  auto link = call("POST", "/api/v1/vms/web/clone", R"({"name":"c1","linked":true})", op);
  EXPECT_EQ(link.status, 409u) << link.body;
  auto run = call("POST", "/api/v1/vms/web/clone", R"({"name":"c1","linked":false})", op);
  EXPECT_EQ(run.status, 409u) << run.body;  // only a stopped VM is cloned
  EXPECT_EQ(call("GET", "/api/v1/vms/c1", "", viewer).status, 404u);
  auto shown = json::parse(call("GET", "/api/v1/vms/web", "", viewer).body);
  EXPECT_EQ(shown["template"], false) << shown.dump();
  EXPECT_TRUE(shown["clone_of"].is_null()) << shown.dump();
}

TEST_F(ApiTest, EnrollNeedsAValidJoinToken) {
  auto r = call("POST", "/api/v1/hosts/enroll",
                R"({"join_token":"stj_bad","name":"h1","address":"unix:/x"})", "");
  EXPECT_EQ(r.status, 401u) << r.body;
  auto jt = call("POST", "/api/v1/join-tokens", "", admin_);
  ASSERT_EQ(jt.status, 201u) << jt.body;
  std::string secret = json::parse(jt.body)["token"];
  // The CA pin an agent passes as --ca-fingerprint comes with the token.
  EXPECT_EQ(json::parse(jt.body).value("ca_fingerprint", ""),
            *pki::cert_fingerprint(ca_->cert_pem()));
  auto bad_name =
      call("POST", "/api/v1/hosts/enroll",
           json{{"join_token", secret}, {"name", "H 1"}, {"address", "unix:/x"}}.dump(), "");
  EXPECT_EQ(bad_name.status, 400u);
  auto ok = call(
      "POST", "/api/v1/hosts/enroll",
      json{{"join_token", secret}, {"name", "h1"}, {"address", "unix:/nonexistent"}}.dump(), "");
  EXPECT_EQ(ok.status, 201u) << ok.body;
  auto again =
      call("POST", "/api/v1/hosts/enroll",
           json{{"join_token", secret}, {"name", "h2"}, {"address", "unix:/y"}}.dump(), "");
  EXPECT_EQ(again.status, 401u) << "a join token is single use: " << again.body;
  auto patch =
      call("PATCH", "/api/v1/hosts/h1", R"({"labels":{"zone":"a"},"maintenance":true})", admin_);
  EXPECT_EQ(patch.status, 200u) << patch.body;
  EXPECT_EQ(json::parse(patch.body)["state"], "maintenance");
  EXPECT_EQ(json::parse(patch.body)["labels"]["zone"], "a");
  // Patches add up, so the bound is on the host's whole label map: 63 more fit, one more not.
  json more;
  for (int i = 0; i < 63; ++i) more["labels"]["k" + std::to_string(i)] = "v";
  auto full = call("PATCH", "/api/v1/hosts/h1", more.dump(), admin_);
  EXPECT_EQ(full.status, 200u) << full.body;
  auto over = call("PATCH", "/api/v1/hosts/h1", R"({"labels":{"one-more":"v"}})", admin_);
  EXPECT_EQ(over.status, 400u) << over.body;
  EXPECT_EQ(json::parse(over.body)["error"]["field"], "labels") << over.body;
  parts_.agents->stop();
}

TEST_F(ApiTest, EnrollOverTcpSignsTheAgentsCsr) {
  auto jt = call("POST", "/api/v1/join-tokens", "", admin_);
  ASSERT_EQ(jt.status, 201u) << jt.body;
  std::string secret = json::parse(jt.body)["token"];
  json body = {{"join_token", secret}, {"name", "h1"}, {"address", "10.77.0.11:7481"}};
  // An agent without a CSR (older than TLS) is told why; the token stays usable.
  auto no_csr = call("POST", "/api/v1/hosts/enroll", body.dump(), "");
  EXPECT_EQ(no_csr.status, 400u) << no_csr.body;
  EXPECT_EQ(field(no_csr), "csr");
  body["csr"] = "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n";
  auto bad_csr = call("POST", "/api/v1/hosts/enroll", body.dump(), "");
  EXPECT_EQ(bad_csr.status, 400u) << bad_csr.body;
  EXPECT_EQ(field(bad_csr), "csr");

  auto key = pki::generate_key();
  ASSERT_TRUE(key);
  body["csr"] = *pki::make_csr(*key, "asked-for-another-name");
  auto mkey = pki::generate_key();
  ASSERT_TRUE(mkey);
  body["migration_csr"] = *pki::make_csr(*mkey, "h1");
  auto ok = call("POST", "/api/v1/hosts/enroll", body.dump(), "");
  ASSERT_EQ(ok.status, 201u) << "the failed attempts must not spend the token: " << ok.body;
  auto reply = json::parse(ok.body);
  std::string cert = reply["tls"]["certificate"];
  EXPECT_EQ(reply["tls"]["ca_certificate"], ca_->cert_pem());
  EXPECT_TRUE(pki::verify_cert(cert, ca_->cert_pem()));
  EXPECT_TRUE(*pki::cert_matches_key(cert, *key));
  auto info = pki::inspect_cert(cert);
  ASSERT_TRUE(info);
  EXPECT_EQ(info->common_name, "h1");
  EXPECT_EQ(info->ip_addresses, std::vector<std::string>{"10.77.0.11"});
  EXPECT_TRUE(info->server_auth);
  EXPECT_FALSE(info->client_auth);
  // The migration certificate: the second key's, for both ends of QEMU's migration TLS.
  std::string mcert = reply["tls"]["migration_certificate"];
  EXPECT_TRUE(pki::verify_cert(mcert, ca_->cert_pem()));
  EXPECT_TRUE(*pki::cert_matches_key(mcert, *mkey));
  auto minfo = pki::inspect_cert(mcert);
  ASSERT_TRUE(minfo);
  EXPECT_EQ(minfo->common_name, "h1");
  EXPECT_EQ(minfo->ip_addresses, std::vector<std::string>{"10.77.0.11"});
  EXPECT_TRUE(minfo->server_auth);
  EXPECT_TRUE(minfo->client_auth);
  // The manager pins that certificate: it is the only one it accepts when dialling h1.
  EXPECT_EQ(reply["host"]["cert_fingerprint"], *pki::cert_fingerprint(cert));
  EXPECT_EQ(parts_.store->get_host_by_name("h1")->cert_fingerprint, *pki::cert_fingerprint(cert));

  // A UNIX-socket agent (all-in-one) needs no CSR and gets no certificate.
  auto jt2 = call("POST", "/api/v1/join-tokens", "", admin_);
  std::string secret2 = json::parse(jt2.body)["token"];
  auto local =
      call("POST", "/api/v1/hosts/enroll",
           json{{"join_token", secret2}, {"name", "local"}, {"address", "unix:/x"}}.dump(), "");
  EXPECT_EQ(local.status, 201u) << local.body;
  EXPECT_FALSE(json::parse(local.body).contains("tls"));
  parts_.agents->stop();
}

TEST_F(ApiTest, EnrollRefusesAUnixAddressFromAnotherMachine) {
  // A remote enroller must not point the manager at a socket on the manager's machine.
  std::string secret = join_token();
  local_peer_ = false;
  auto remote = enroll({{"join_token", secret}, {"name", "h1"}, {"address", "unix:/run/x.sock"}});
  EXPECT_EQ(remote.status, 403u) << remote.body;
  EXPECT_EQ(field(remote), "address");
  EXPECT_EQ(parts_.store->get_host_by_name("h1").error().code, ErrorCode::not_found);
  // With a bad token the answer is the token's, whatever the address.
  auto bad = enroll({{"join_token", "stj_bad"}, {"name", "h1"}, {"address", "unix:/run/x.sock"}});
  EXPECT_EQ(bad.status, 401u) << bad.body;
  // The token was not spent: the local agent can still use it.
  local_peer_ = true;
  auto local = enroll({{"join_token", secret}, {"name", "h1"}, {"address", "unix:/run/x.sock"}});
  EXPECT_EQ(local.status, 201u) << local.body;
  EXPECT_TRUE(json::parse(local.body)["host"]["cert_fingerprint"].is_null());
  parts_.agents->stop();
}

TEST_F(ApiTest, ADeletedHostReenrollsWithANewPin) {
  json body = {{"name", "h1"}, {"address", "10.77.0.12:7481"}};
  body["csr"] = *pki::make_csr(*pki::generate_key(), "h1");
  body["join_token"] = join_token();
  auto first = enroll(body);
  ASSERT_EQ(first.status, 201u) << first.body;
  std::string old_pin = json::parse(first.body)["host"]["cert_fingerprint"];
  ASSERT_EQ(call("DELETE", "/api/v1/hosts/h1", "", admin_).status, 200u);
  body["join_token"] = join_token();
  body["csr"] = *pki::make_csr(*pki::generate_key(), "h1");
  auto again = enroll(body);
  ASSERT_EQ(again.status, 201u) << again.body;
  std::string new_pin = json::parse(again.body)["host"]["cert_fingerprint"];
  EXPECT_NE(new_pin, old_pin);
  EXPECT_EQ(parts_.store->get_host_by_name("h1")->cert_fingerprint, new_pin);
  parts_.agents->stop();
}

// A body nested a million levels deep used to reach a recursive dump() in enroll before
// the join token was checked (a stack overflow, no token needed). Every route that takes a
// JSON body must refuse it with a 400 (or its auth error), and the server stays up.
TEST_F(ApiTest, DeeplyNestedBodiesAreRefusedOnEveryRoute) {
  std::string deep = R"({"join_token":"x","name":"h","address":"a","inventory":{"a":)" +
                     std::string(1 << 20, '[') + "}";
  std::string deep_array = std::string(200000, '[') + std::string(200000, ']');
  for (const auto& route : api_->router().routes()) {
    // Streamed uploads and offloaded routes (answered later, on a worker) take no JSON body.
    if (route->method == "GET" || route->options.stream_body || route->options.offload) continue;
    std::string path;
    for (const auto& seg : route->segments)
      path += "/" + (seg.front() == '{' ? std::string("nothing") : seg);
    for (const std::string* body : {&deep, &deep_array}) {
      auto r = call(route->method, path, *body, admin_);
      EXPECT_TRUE(r.status == 400u || r.status == 401u || r.status == 404u)
          << route->method << " " << route->pattern << ": " << r.status << " " << r.body;
      if (r.status == 400u) {
        EXPECT_NE(r.body.find("JSON"), std::string::npos) << route->pattern << ": " << r.body;
      }
    }
  }
  auto enroll = call("POST", "/api/v1/hosts/enroll", deep, "");
  EXPECT_EQ(enroll.status, 400u) << enroll.body;
  EXPECT_NE(enroll.body.find("deeper than"), std::string::npos) << enroll.body;
  EXPECT_EQ(call("GET", "/healthz", "", "").status, 200u);
}

TEST_F(ApiTest, DuplicateKeysAreA400NamingTheKey) {
  auto r = call("POST", "/api/v1/vms", R"({"name":"a","name":"b","vcpus":1,"memory_mib":64})",
                admin_);
  EXPECT_EQ(r.status, 400u) << r.body;
  EXPECT_EQ(field(r), "name");
  auto nested = call("PATCH", "/api/v1/hosts/none", R"({"labels":{"z":"a","z":"b"}})", admin_);
  EXPECT_EQ(nested.status, 400u) << nested.body;
  EXPECT_EQ(field(nested), "labels.z");
}

TEST_F(ApiTest, JsonRoutesAnswer415ToOtherContentTypes) {
  std::string body = R"({"name":"t1","role":"viewer"})";
  for (const char* type : {"text/plain", "application/x-www-form-urlencoded", ""}) {
    HttpRequest r;
    r.method = "POST";
    r.path = "/api/v1/tokens";
    r.body = body;
    if (*type) r.headers["content-type"] = type;
    r.headers["authorization"] = "Bearer " + admin_;
    auto resp = api_->dispatch(r);
    EXPECT_EQ(resp.status, 415u) << type << ": " << resp.body;
    EXPECT_EQ(field(resp), "Content-Type");
  }
  EXPECT_TRUE(is_json_media_type("application/json; charset=utf-8"));
  EXPECT_TRUE(is_json_media_type("Application/JSON"));
  EXPECT_TRUE(is_json_media_type("application/merge-patch+json"));
  EXPECT_FALSE(is_json_media_type("text/json+plain"));
  EXPECT_FALSE(is_json_media_type("application/jsonx"));
  // Without a token the answer is the 401, whatever the content type.
  HttpRequest anon;
  anon.method = "POST";
  anon.path = "/api/v1/tokens";
  anon.body = body;
  anon.headers["content-type"] = "text/plain";
  EXPECT_EQ(api_->dispatch(anon).status, 401u);
}

// A request the server admitted on its header (token looked up, role checked) is not
// authenticated a second time when dispatched: one token read per request. (The token is
// revoked in between here to show that dispatch does not read it again.)
TEST_F(ApiTest, AnAdmittedRequestIsNotAuthenticatedAgain) {
  std::string viewer = make_token("reader", "viewer");
  HttpRequest r;
  r.method = "GET";
  r.path = "/api/v1/vms";
  r.headers["authorization"] = "Bearer " + viewer;
  r.remote_address = "127.0.0.1";
  r.peer_is_local = true;
  EXPECT_FALSE(api_->admit(r).has_value());
  EXPECT_TRUE(r.admitted);
  ASSERT_TRUE(r.principal);
  EXPECT_EQ(r.principal->name, "reader");
  auto tokens = parts_.store->list_tokens({});
  ASSERT_TRUE(tokens);
  for (const auto& t : *tokens) {
    if (t.name == "reader") {
      ASSERT_TRUE(parts_.store->revoke_token(t.id));
    }
  }
  EXPECT_EQ(api_->dispatch(r).status, 200u);
  // Not admitted (no header phase): dispatch authenticates, and the token is revoked now.
  EXPECT_EQ(call("GET", "/api/v1/vms", "", viewer).status, 401u);
  // A request admit refused is never marked admitted.
  HttpRequest anon;
  anon.method = "GET";
  anon.path = "/api/v1/vms";
  EXPECT_TRUE(api_->admit(anon).has_value());
  EXPECT_FALSE(anon.admitted);
}

// The answer to a bad join token is the same whether the host name exists or not, and
// nothing else in the body is looked at first.
TEST_F(ApiTest, EnrollChecksTheJoinTokenFirst) {
  auto jt = call("POST", "/api/v1/join-tokens", "", admin_);
  std::string secret = json::parse(jt.body)["token"];
  ASSERT_EQ(call("POST", "/api/v1/hosts/enroll",
                 json{{"join_token", secret}, {"name", "taken"}, {"address", "unix:/t"}}.dump(),
                 "")
                .status,
            201u);
  auto taken = call("POST", "/api/v1/hosts/enroll",
                    json{{"join_token", "stj_bad"}, {"name", "taken"}, {"address", "unix:/u"}}.dump(),
                    "");
  auto free = call("POST", "/api/v1/hosts/enroll",
                   json{{"join_token", "stj_bad"}, {"name", "free"}, {"address", "unix:/v"}}.dump(),
                   "");
  EXPECT_EQ(taken.status, 401u) << taken.body;
  EXPECT_EQ(taken.body, free.body);
  // Bad fields behind a bad token are not reported: the token is.
  auto junk = call("POST", "/api/v1/hosts/enroll",
                   R"({"join_token":"stj_bad","name":"BAD NAME","bogus":1})", "");
  EXPECT_EQ(junk.status, 401u) << junk.body;
  auto missing = call("POST", "/api/v1/hosts/enroll", R"({"name":"h"})", "");
  EXPECT_EQ(missing.status, 401u) << missing.body;
  // A used token is refused before the name is checked.
  auto reused = call("POST", "/api/v1/hosts/enroll",
                     json{{"join_token", secret}, {"name", "taken"}, {"address", "unix:/w"}}.dump(),
                     "");
  EXPECT_EQ(reused.status, 401u) << reused.body;
  EXPECT_NE(reused.body.find("already used"), std::string::npos) << reused.body;
  parts_.agents->stop();
}

// A join token can be revoked before it is used: DELETE removes it, the list no longer
// shows it, and an enrollment with it gets the same 401 as an unknown token (nothing is
// created). Its lifetime is capped at 7 days (a bearer credential for becoming a host).
TEST_F(ApiTest, RevokedJoinTokenIsRefusedAndItsTtlIsCapped) {
  auto jt = call("POST", "/api/v1/join-tokens", R"({"ttl_s":600})", admin_);
  ASSERT_EQ(jt.status, 201u) << jt.body;
  std::string id = json::parse(jt.body)["id"];
  std::string secret = json::parse(jt.body)["token"];
  auto listed = json::parse(call("GET", "/api/v1/join-tokens", "", admin_).body)["join_tokens"];
  ASSERT_EQ(listed.size(), 1u) << listed;
  EXPECT_EQ(listed[0]["id"], id);
  EXPECT_EQ(call("DELETE", "/api/v1/join-tokens/" + id, "", admin_).status, 200u);
  EXPECT_TRUE(json::parse(call("GET", "/api/v1/join-tokens", "", admin_).body)["join_tokens"]
                  .empty());
  auto refused = call("POST", "/api/v1/hosts/enroll",
                      json{{"join_token", secret}, {"name", "h1"}, {"address", "unix:/x"}}.dump(),
                      "");
  EXPECT_EQ(refused.status, 401u) << refused.body;
  EXPECT_NE(refused.body.find("invalid join token"), std::string::npos) << refused.body;
  EXPECT_EQ(call("GET", "/api/v1/hosts/h1", "", admin_).status, 404u) << "nothing enrolled";
  EXPECT_EQ(call("DELETE", "/api/v1/join-tokens/" + id, "", admin_).status, 404u);
  // Only an admin revokes.
  std::string op = make_token("op", "operator");
  auto jt2 = call("POST", "/api/v1/join-tokens", "", admin_);
  std::string id2 = json::parse(jt2.body)["id"];
  EXPECT_EQ(call("DELETE", "/api/v1/join-tokens/" + id2, "", op).status, 403u);
  // TTL: at most 7 days.
  auto week = call("POST", "/api/v1/join-tokens", R"({"ttl_s":604800})", admin_);
  EXPECT_EQ(week.status, 201u) << week.body;
  auto longer = call("POST", "/api/v1/join-tokens", R"({"ttl_s":604801})", admin_);
  EXPECT_EQ(longer.status, 400u) << longer.body;
  EXPECT_EQ(field(longer), "ttl_s");
  auto ten_years = call("POST", "/api/v1/join-tokens", R"({"ttl_s":315360000})", admin_);
  EXPECT_EQ(ten_years.status, 400u) << ten_years.body;
  parts_.agents->stop();
}

// A rack (or a simulated fleet) enrolls with one request for its tokens: `count` of them
// made in one transaction, each single use, each its own secret; the answer lists them with
// the CA pin once. The count is bounded and named when wrong.
TEST_F(ApiTest, JoinTokensComeInBatchesOnePerHost) {
  auto batch = call("POST", "/api/v1/join-tokens", R"({"ttl_s":600,"count":3})", admin_);
  ASSERT_EQ(batch.status, 201u) << batch.body;
  auto body = json::parse(batch.body);
  EXPECT_EQ(body.value("ca_fingerprint", ""), *pki::cert_fingerprint(ca_->cert_pem()));
  ASSERT_EQ(body["join_tokens"].size(), 3u) << body;
  std::set<std::string> ids, secrets;
  for (const auto& t : body["join_tokens"]) {
    ids.insert(t["id"].get<std::string>());
    secrets.insert(t["token"].get<std::string>());
    EXPECT_GT(t["expires_ms"].get<int64_t>(), 0);
  }
  EXPECT_EQ(ids.size(), 3u);
  EXPECT_EQ(secrets.size(), 3u);
  auto listed = json::parse(call("GET", "/api/v1/join-tokens", "", admin_).body)["join_tokens"];
  EXPECT_EQ(listed.size(), 3u) << listed;
  // Each token enrolls one host, once.
  for (int i = 0; i < 3; ++i) {
    const std::string secret = body["join_tokens"][i]["token"];
    const std::string name = "rack" + std::to_string(i);
    auto ok = call("POST", "/api/v1/hosts/enroll",
                   json{{"join_token", secret}, {"name", name}, {"address", "unix:/none-" + name}}
                       .dump(),
                   "");
    EXPECT_EQ(ok.status, 201u) << ok.body;
  }
  auto reused = call("POST", "/api/v1/hosts/enroll",
                     json{{"join_token", body["join_tokens"][0]["token"]},
                          {"name", "rack9"},
                          {"address", "unix:/none-rack9"}}
                         .dump(),
                     "");
  EXPECT_EQ(reused.status, 401u) << reused.body;
  for (const char* bad : {R"({"count":0})", R"({"count":10001})", R"({"count":"3"})",
                          R"({"count":-1})"}) {
    auto r = call("POST", "/api/v1/join-tokens", bad, admin_);
    EXPECT_EQ(r.status, 400u) << bad << ": " << r.body;
    EXPECT_EQ(field(r), "count") << bad;
  }
  EXPECT_EQ(json::parse(call("GET", "/api/v1/join-tokens", "", admin_).body)["join_tokens"].size(),
            3u)
      << "a refused batch made tokens";
  parts_.agents->stop();
}

// A host row whose inventory was stored before the manager bounded agents' inventories
// (or written some other way) must not make GET /hosts/{name} recurse past the stack when
// the answer is rendered: it reads as {}.
TEST_F(ApiTest, AStoredDeepInventoryIsShownEmptyNotRenderedRecursively) {
  store::HostRecord h;
  h.name = "deep";
  h.address = "unix:/deep";
  h.inventory = "{\"a\":" + std::string(200000, '[') + std::string(200000, ']') + "}";
  ASSERT_TRUE(parts_.store->create_host(h));
  auto r = call("GET", "/api/v1/hosts/deep", "", admin_);
  ASSERT_EQ(r.status, 200u) << r.body.substr(0, 300);
  EXPECT_EQ(json::parse(r.body)["inventory"], json::object());
  EXPECT_EQ(call("GET", "/healthz", "", "").status, 200u);
  parts_.agents->stop();
}

TEST_F(ApiTest, OpenApiCoversEveryRoute) {
  auto doc = json::parse(openapi_document());
  for (const auto& r : api_->router().routes()) {
    std::string method = r->method;
    for (auto& c : method) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    EXPECT_TRUE(doc["paths"].contains(r->pattern) && doc["paths"][r->pattern].contains(method))
        << r->method << " " << r->pattern << " is not in docs/openapi.json";
  }
}

TEST_F(ApiTest, BodyLimitAndMethodHandling) {
  EXPECT_EQ(api_->body_limit("POST", "/api/v1/vms"), kDefaultBodyLimit);
  EXPECT_EQ(call("DELETE", "/api/v1/vms", "", admin_).status, 405u);
  EXPECT_EQ(call("GET", "/api/v1/nothing", "", admin_).status, 404u);
}

// GET /api/v1/vms for the web console's list: sorted by name either way with the name as
// cursor, name substring and state filters combined with paging, 400 naming a bad value.
// POST /vms/{name}/migrate: only a running VM, to another host that fits with the same
// accelerator; the intent and a vm.migrate task are recorded at once; while it migrates the
// VM's other actions and a second migration are refused.
TEST_F(ApiTest, MigrateRecordsTheIntentAndRefusesWhatCannotMove) {
  add_host("h1", 4, 4096);
  std::string op = make_token("ops", "operator");
  auto r = call("POST", "/api/v1/vms",
                R"({"name":"web","vcpus":2,"memory_mib":512,"kernel":"k","host":"h1"})", op);
  ASSERT_EQ(r.status, 202u) << r.body;
  auto mig = [&](const std::string& body) {
    return call("POST", "/api/v1/vms/web/migrate", body, op);
  };
  // Not running yet (the controller has not run it): refused, nothing recorded.
  auto early = mig("{}");
  EXPECT_EQ(early.status, 409u) << early.body;
  auto vm = parts_.store->get_vm_by_name("web");
  ASSERT_TRUE(vm);
  auto st = decode_vm_status(vm->status);
  st.state = "running";
  vm->status = encode(st);
  ASSERT_TRUE(parts_.store->update_vm(*vm));
  // One host only: nowhere to go (422); the VM's own host is a 400 naming "host".
  EXPECT_EQ(mig("{}").status, 422u);
  auto self = mig(R"({"host":"h1"})");
  EXPECT_EQ(self.status, 400u) << self.body;
  EXPECT_EQ(field(self), "host");
  EXPECT_EQ(field(mig(R"({"host":"nope"})")), "host");
  EXPECT_EQ(field(mig(R"({"hots":"h2"})")), "hots");
  EXPECT_EQ(field(mig(R"({"downtime_max_ms":60001})")), "downtime_max_ms");
  EXPECT_EQ(field(mig(R"({"tls":"no"})")), "tls");
  EXPECT_EQ(field(mig(R"({"auto_converge":1})")), "auto_converge");
  // A host with another accelerator or too small does not qualify; h4 does.
  add_host("h2", 4, 4096);
  {
    auto h2 = parts_.store->get_host_by_name("h2");
    h2->accelerator = "kvm";
    ASSERT_TRUE(parts_.store->update_host(*h2));
  }
  add_host("h3", 1, 256);
  EXPECT_EQ(mig(R"({"host":"h2"})").status, 422u);
  EXPECT_EQ(mig(R"({"host":"h3"})").status, 422u);
  add_host("h4", 4, 4096);
  auto ok = mig(R"({"max_bandwidth":1048576,"auto_converge":true})");
  ASSERT_EQ(ok.status, 202u) << ok.body;
  auto j = json::parse(ok.body);
  EXPECT_EQ(j["task"]["kind"], "vm.migrate");
  EXPECT_EQ(j["task"]["message"], "from h1 to h4");
  vm = parts_.store->get_vm_by_name("web");
  auto doc = decode_vm_document(vm->spec);
  ASSERT_TRUE(doc);
  EXPECT_EQ(doc->migration.target_host_id, parts_.store->get_host_by_name("h4")->id);
  EXPECT_EQ(doc->migration.seq, 1);
  EXPECT_EQ(doc->migration.max_bandwidth, 1048576u);
  EXPECT_TRUE(doc->migration.auto_converge);
  EXPECT_TRUE(doc->migration.tls) << "TLS unless asked otherwise (stratad --migration-tls on)";
  EXPECT_EQ(*vm->host_id, parts_.store->get_host_by_name("h1")->id);  // moves when done
  // While it migrates: a second migration and other actions are 409.
  EXPECT_EQ(mig("{}").status, 409u);
  EXPECT_EQ(call("POST", "/api/v1/vms/web/stop", "", op).status, 409u);
  EXPECT_EQ(call("DELETE", "/api/v1/vms/web", "", op).status, 409u);
  // A viewer cannot migrate.
  EXPECT_EQ(call("POST", "/api/v1/vms/web/migrate", "{}", make_token("v", "viewer")).status, 403u);

  // Cancel: recorded in the intent (the controller gives the target up), answered with the
  // migrate task; asked again, the same answer and no second event; once the record says
  // "switching", too late (409).
  auto cancel = [&] { return call("POST", "/api/v1/vms/web/migrate/cancel", "", op); };
  EXPECT_EQ(call("POST", "/api/v1/vms/web/migrate/cancel", "", make_token("v2", "viewer")).status,
            403u);
  auto c1 = cancel();
  ASSERT_EQ(c1.status, 202u) << c1.body;
  EXPECT_EQ(json::parse(c1.body)["task"]["kind"], "vm.migrate");
  doc = decode_vm_document(parts_.store->get_vm_by_name("web")->spec);
  EXPECT_EQ(doc->migration.cancelled_by, "token:ops");
  EXPECT_EQ(cancel().status, 202u);
  int cancel_events = 0;
  auto evs = parts_.store->list_events(0, 1000);
  ASSERT_TRUE(evs);
  for (const auto& e : *evs) cancel_events += e.action == "vm.migrate_cancel";
  EXPECT_EQ(cancel_events, 1);
  vm = parts_.store->get_vm_by_name("web");
  doc->migration.cancelled_by.clear();
  vm->spec = encode(*doc);
  st = decode_vm_status(vm->status);
  st.migration.phase = "switching";
  vm->status = encode(st);
  ASSERT_TRUE(parts_.store->update_vm(*vm));
  auto late = cancel();
  EXPECT_EQ(late.status, 409u) << late.body;
  EXPECT_NE(late.body.find("too late"), std::string::npos) << late.body;
  // An unknown VM: 404.
  EXPECT_EQ(call("POST", "/api/v1/vms/nope/migrate/cancel", "", op).status, 404u);
}

// HA on create: kept in the VM and shown; refused with a writable local disk or a pin, a
// priority out of range, or an unknown field, each 400 naming the field.
TEST_F(ApiTest, HaVmsNeedNothingLocalToLose) {
  add_host("h1", 8, 8192);
  // One host: HA admission control refuses (nowhere to restart), 409 naming the field.
  auto alone = call("POST", "/api/v1/vms",
                    R"({"name":"ha0","vcpus":1,"memory_mib":128,"kernel":"k",
                        "ha":{"enabled":true}})",
                    admin_);
  ASSERT_EQ(alone.status, 409u) << alone.body;
  EXPECT_EQ(json::parse(alone.body)["error"]["field"], "ha");
  add_host("h2", 8, 8192);
  auto ok = call("POST", "/api/v1/vms",
                 R"({"name":"ha1","vcpus":1,"memory_mib":128,"kernel":"k",
                     "ha":{"enabled":true,"priority":700}})",
                 admin_);
  ASSERT_EQ(ok.status, 202u) << ok.body;
  auto j = json::parse(ok.body);
  EXPECT_EQ(j["vm"]["spec"]["ha"], json({{"enabled", true}, {"priority", 700}}));
  auto doc = decode_vm_document(parts_.store->get_vm_by_name("ha1")->spec);
  EXPECT_TRUE(doc->ha.enabled);
  EXPECT_EQ(doc->ha.priority, 700);
  struct Case {
    const char* body;
    const char* field;
  } cases[] = {
      {R"({"name":"ha2","vcpus":1,"memory_mib":128,"disks":[{"name":"root","size_bytes":1048576,"boot":true}],"ha":{"enabled":true}})",
       "ha"},
      {R"({"name":"ha3","vcpus":1,"memory_mib":128,"kernel":"k","host":"h1","ha":{"enabled":true}})",
       "ha"},
      {R"({"name":"ha4","vcpus":1,"memory_mib":128,"kernel":"k","ha":{"enabled":true,"priority":1001}})",
       "ha.priority"},
      {R"({"name":"ha5","vcpus":1,"memory_mib":128,"kernel":"k","ha":{"enabled":true,"prio":1}})",
       "ha.prio"},
      {R"({"name":"ha6","vcpus":1,"memory_mib":128,"kernel":"k","ha":{"priority":1}})",
       "ha.enabled"},
  };
  for (const auto& c : cases) {
    auto r = call("POST", "/api/v1/vms", c.body, admin_);
    EXPECT_EQ(r.status, 400u) << c.body << " -> " << r.body;
    EXPECT_EQ(field(r), c.field) << r.body;
  }
  // Read-only disks survive a host (they are rebuilt from their image): allowed.
  auto ro = call("POST", "/api/v1/vms",
                 R"({"name":"ha7","vcpus":1,"memory_mib":128,"kernel":"k",
                     "disks":[{"name":"data","size_bytes":1048576,"readonly":true}],
                     "ha":{"enabled":true}})",
                 admin_);
  EXPECT_EQ(ro.status, 202u) << ro.body;
}

TEST_F(ApiTest, VmListSortsByNameAndFiltersByNameAndState) {
  add_host("h1", 64, 65536);
  for (const char* n : {"c-web", "a-db", "b-web", "d-web"}) {
    json body = {{"name", n}, {"vcpus", 1}, {"memory_mib", 64}, {"start", false},
                 {"disks", {{{"name", "root"}, {"size_bytes", 1 << 20}, {"boot", true}}}}};
    auto r = call("POST", "/api/v1/vms", body.dump(), admin_);
    ASSERT_EQ(r.status, 202u) << r.body;
  }
  auto list = [&](std::map<std::string, std::string> q) {
    HttpRequest r;
    r.method = "GET";
    r.path = "/api/v1/vms";
    r.query = std::move(q);
    r.headers["authorization"] = "Bearer " + admin_;
    auto resp = api_->dispatch(r);
    return std::make_pair(resp.status, json::parse(resp.body));
  };
  auto names = [](const json& page) {
    std::vector<std::string> out;
    for (const auto& v : page["vms"]) out.push_back(v["name"]);
    return out;
  };
  auto [s1, p1] = list({{"sort", "name"}, {"limit", "3"}});
  ASSERT_EQ(s1, 200u) << p1;
  EXPECT_EQ(names(p1), (std::vector<std::string>{"a-db", "b-web", "c-web"}));
  EXPECT_EQ(p1["next"], "c-web");
  auto [s2, p2] = list({{"sort", "name"}, {"limit", "3"}, {"after", "c-web"}});
  EXPECT_EQ(names(p2), (std::vector<std::string>{"d-web"}));
  EXPECT_TRUE(p2["next"].is_null());
  // A last page that is exactly full has no `next` either (one VM more is read to know).
  auto [s2b, p2b] = list({{"sort", "name"}, {"limit", "2"}, {"after", "b-web"}});
  EXPECT_EQ(names(p2b), (std::vector<std::string>{"c-web", "d-web"}));
  EXPECT_TRUE(p2b["next"].is_null()) << p2b;
  auto [s2c, p2c] = list({{"sort", "-name"}, {"limit", "4"}});
  EXPECT_EQ(p2c["vms"].size(), 4u);
  EXPECT_TRUE(p2c["next"].is_null()) << p2c;
  auto [s2d, p2d] = list({{"limit", "3"}});  // by id: the same
  EXPECT_EQ(p2d["vms"].size(), 3u);
  EXPECT_EQ(p2d["next"], p2d["vms"][2]["name"]);
  auto [s3, p3] = list({{"sort", "-name"}, {"name", "WEB"}, {"limit", "2"}});
  EXPECT_EQ(names(p3), (std::vector<std::string>{"d-web", "c-web"}));
  auto [s4, p4] = list({{"sort", "-name"}, {"name", "web"}, {"limit", "2"}, {"after", "c-web"}});
  EXPECT_EQ(names(p4), (std::vector<std::string>{"b-web"}));
  // Nothing ran: every VM is still pending/scheduled, none running.
  auto [s5, p5] = list({{"state", "running"}});
  EXPECT_EQ(s5, 200u);
  EXPECT_TRUE(p5["vms"].empty()) << p5;
  auto [s6, p6] = list({{"host", "h1"}, {"name", "a-"}});
  EXPECT_EQ(names(p6), (std::vector<std::string>{"a-db"}));
  for (const auto& [key, value] : std::vector<std::pair<std::string, std::string>>{
           {"sort", "created"}, {"state", "asleep"}, {"label", "tier"}}) {
    auto [status, body] = list({{key, value}});
    EXPECT_EQ(status, 400u) << key;
    EXPECT_EQ(body["error"]["field"], key);
  }
}

// POST /api/v1/placement: the create body in, where it would go and why not elsewhere out,
// nothing written (no VM, no task, no event); validated as a create would be.
TEST_F(ApiTest, PlacementDryRunExplainsEveryHostAndCreatesNothing) {
  add_host("big", 8, 8192);
  add_host("small", 2, 512);
  add_host("other", 8, 8192);
  ASSERT_EQ(call("PATCH", "/api/v1/hosts/other", R"({"labels":{"zone":"b"}})", admin_).status, 200u);
  ASSERT_EQ(call("PATCH", "/api/v1/hosts/big", R"({"labels":{"zone":"a"}})", admin_).status, 200u);
  std::string viewer = make_token("view", "viewer");
  auto events_before = json::parse(call("GET", "/api/v1/events", "", admin_).body)["events"].size();
  auto r = call("POST", "/api/v1/placement",
                R"({"name":"w","vcpus":2,"memory_mib":1024,"kernel":"k","node_selector":{"zone":"a"}})",
                viewer);
  ASSERT_EQ(r.status, 200u) << r.body;
  auto j = json::parse(r.body);
  EXPECT_EQ(j["fits"], true);
  EXPECT_EQ(j["host"], "big");
  EXPECT_EQ(j["hosts"], 3);
  ASSERT_EQ(j["candidates"].size(), 1u) << j;
  EXPECT_EQ(j["candidates"][0]["host"], "big");
  ASSERT_EQ(j["rejected"].size(), 2u) << j;
  std::map<std::string, std::string> why;
  for (const auto& x : j["rejected"]) why[x["host"]] = x["filter"].get<std::string>() + ": " + x["reason"].get<std::string>();
  EXPECT_EQ(why["small"].rfind("selector", 0), 0u) << why["small"];
  EXPECT_EQ(why["other"].rfind("selector", 0), 0u) << why["other"];
  EXPECT_NE(j["summary"].get<std::string>().find("selector filter rejected 2 hosts"), std::string::npos) << j;
  // Generated MACs differ per NIC, as in a create.
  auto nics = call("POST", "/api/v1/placement",
                   R"({"name":"w","vcpus":1,"memory_mib":64,"kernel":"k","nics":[{"mode":"user"},{"mode":"user"}]})",
                   admin_);
  EXPECT_EQ(nics.status, 200u) << nics.body;
  // Nothing fits: still 200, with every host's reason and no host.
  auto none = call("POST", "/api/v1/placement", R"({"name":"w","vcpus":1,"memory_mib":65536,"kernel":"k"})", admin_);
  ASSERT_EQ(none.status, 200u) << none.body;
  auto n = json::parse(none.body);
  EXPECT_EQ(n["fits"], false);
  EXPECT_TRUE(n["host"].is_null());
  EXPECT_EQ(n["rejected"].size(), 3u);
  EXPECT_EQ(n["rejected"][0]["filter"], "memory") << n;
  // Nothing was created or audited.
  EXPECT_TRUE(json::parse(call("GET", "/api/v1/vms", "", admin_).body)["vms"].empty());
  EXPECT_EQ(json::parse(call("GET", "/api/v1/events", "", admin_).body)["events"].size(), events_before);
  // Validated like a create: bad field 400, unknown pinned host 400, taken name 409.
  auto bad = call("POST", "/api/v1/placement", R"({"name":"w","vcpus":0,"memory_mib":64,"kernel":"k"})", admin_);
  EXPECT_EQ(bad.status, 400u);
  EXPECT_EQ(field(bad), "vcpus");
  auto pin = call("POST", "/api/v1/placement", R"({"name":"w","vcpus":1,"memory_mib":64,"kernel":"k","host":"nope"})", admin_);
  EXPECT_EQ(pin.status, 400u);
  EXPECT_EQ(field(pin), "host");
  ASSERT_EQ(call("POST", "/api/v1/vms", R"({"name":"w","vcpus":1,"memory_mib":64,"kernel":"k"})", admin_).status, 202u);
  auto taken = call("POST", "/api/v1/placement", R"({"name":"w","vcpus":1,"memory_mib":64,"kernel":"k"})", admin_);
  EXPECT_EQ(taken.status, 409u);
  EXPECT_EQ(field(taken), "name");
  EXPECT_EQ(call("POST", "/api/v1/placement", R"({"name":"x","vcpus":1,"memory_mib":64,"kernel":"k"})", "").status, 401u);
}

// POST /api/v1/plan/capacity: how many more VMs of a size fit, where, what runs out first.
// Cold migration: a stopped VM whose disks are all on a datastore migrates (the intent is
// recorded cold; the controller defines it on the target and removes it from the source); a
// stopped VM with a local disk is refused with the reason; a VM starting is neither.
TEST_F(ApiTest, StoppedVmsMigrateCold) {
  const std::string shared = "11111111-1111-4111-8111-111111111111";
  for (const char* name : {"h1", "h2"}) {
    store::HostRecord h;
    h.name = name;
    h.address = std::string("unix:/nonexistent/") + name;
    h.state = "up";
    h.accelerator = "tcg";
    h.cpu_threads = 4;
    h.memory_mib = 4096;
    h.inventory = json{{"datastores", json::array({json{{"name", "shared"}, {"id", shared},
                                                        {"path", "/mnt/shared"},
                                                        {"total_bytes", 1000},
                                                        {"free_bytes", 500}}})}}
                      .dump();
    ASSERT_TRUE(parts_.store->create_host(h));
  }
  std::string op = make_token("ops", "operator");
  auto create = [&](const std::string& name, const json& disk) {
    json b = {{"name", name}, {"vcpus", 1}, {"memory_mib", 256}, {"kernel", "k"},
              {"disks", json::array({disk})}, {"host", "h1"}, {"start", false}};
    return call("POST", "/api/v1/vms", b.dump(), op);
  };
  auto stopped = [&](const std::string& name, const char* state) {
    auto vm = parts_.store->get_vm_by_name(name);
    ASSERT_TRUE(vm);
    auto st = decode_vm_status(vm->status);
    st.state = state;
    vm->status = encode(st);
    ASSERT_TRUE(parts_.store->update_vm(*vm));
  };
  auto r = create("shared-vm", {{"name", "root"}, {"size_bytes", 1 << 20}, {"datastore", "shared"}});
  ASSERT_EQ(r.status, 202u) << r.body;
  r = create("local-vm", {{"name", "root"}, {"size_bytes", 1 << 20}});
  ASSERT_EQ(r.status, 202u) << r.body;
  ASSERT_NO_FATAL_FAILURE(stopped("local-vm", "stopped"));
  // Still being defined (pending): neither live nor cold.
  auto early = call("POST", "/api/v1/vms/shared-vm/migrate", "{}", op);
  EXPECT_EQ(early.status, 409u) << early.body;
  ASSERT_NO_FATAL_FAILURE(stopped("shared-vm", "stopped"));
  // A local disk moves too: copied by the controller (its test: disk_copy_test.cc).
  auto local = call("POST", "/api/v1/vms/local-vm/migrate", "{}", op);
  ASSERT_EQ(local.status, 202u) << local.body;
  EXPECT_TRUE(decode_vm_document(parts_.store->get_vm_by_name("local-vm")->spec)->migration.cold);
  auto cold = call("POST", "/api/v1/vms/shared-vm/migrate", "{}", op);
  ASSERT_EQ(cold.status, 202u) << cold.body;
  EXPECT_NE(json::parse(cold.body)["task"]["message"].get<std::string>().find("cold"),
            std::string::npos)
      << cold.body;
  auto doc = decode_vm_document(parts_.store->get_vm_by_name("shared-vm")->spec);
  EXPECT_TRUE(doc->migration.cold);
  EXPECT_EQ(doc->migration.target_host_id, parts_.store->get_host_by_name("h2")->id);
}

// Keep together and keep off (affinity_group, avoid_selector): stored, shown, and obeyed by
// placement; the balancer holds a keep-together VM where it is.
TEST_F(ApiTest, KeepTogetherAndKeepOffGuidePlacement) {
  add_host("h1", 8, 8192);
  add_host("h2", 8, 8192);
  {
    auto h2 = parts_.store->get_host_by_name("h2");
    h2->labels["tier"] = "old";
    ASSERT_TRUE(parts_.store->update_host(*h2));
  }
  std::string op = make_token("ops", "operator");
  auto create = [&](const std::string& name, const json& extra) {
    json b = {{"name", name}, {"vcpus", 1}, {"memory_mib", 256}, {"kernel", "k"}};
    b.update(extra);
    return call("POST", "/api/v1/vms", b.dump(), op);
  };
  auto host_of = [&](const std::string& name) {
    auto vm = parts_.store->get_vm_by_name(name);
    return vm && vm->host_id ? parts_.store->get_host(*vm->host_id)->name : std::string("-");
  };
  // Keep off tier=old: never h2, though spread would alternate.
  for (const char* n : {"k1", "k2", "k3"}) {
    auto r = create(n, {{"avoid_selector", {{"tier", "old"}}}});
    ASSERT_EQ(r.status, 202u) << r.body;
    EXPECT_EQ(host_of(n), "h1") << n;
  }
  // Keep together: the second of the pair goes where the first runs, although h1 is busier.
  ASSERT_EQ(create("p1", {{"affinity_group", "pair"}, {"host", "h2"}}).status, 202u);
  auto r = create("p2", {{"affinity_group", "pair"}});
  ASSERT_EQ(r.status, 202u) << r.body;
  EXPECT_EQ(host_of("p2"), "h2");
  auto shown = json::parse(call("GET", "/api/v1/vms/p2", "", op).body);
  EXPECT_EQ(shown["spec"]["affinity_group"], "pair");
  EXPECT_EQ(json::parse(call("GET", "/api/v1/vms/k1", "", op).body)["spec"]["avoid_selector"],
            (json{{"tier", "old"}}));
  // Both together and off tier=old: nowhere (422, the scheduler says why).
  auto none = create("p3", {{"affinity_group", "pair"}, {"avoid_selector", {{"tier", "old"}}}});
  EXPECT_EQ(none.status, 422u) << none.body;
  EXPECT_NE(none.body.find("avoid filter rejected 1 host"), std::string::npos) << none.body;
  EXPECT_NE(none.body.find("affinity filter rejected 1 host"), std::string::npos) << none.body;
}

// A keep-together group is one move in the balancer's plan (the other VMs named in
// together_with) and one migration when applied, which moves the whole group.
TEST_F(ApiTest, BalanceMovesAKeepTogetherGroupAsOne) {
  add_host("h1", 4, 4096);
  std::string op = make_token("ops", "operator");
  auto create_running = [&](const json& body) {
    auto r = call("POST", "/api/v1/vms", body.dump(), op);
    ASSERT_EQ(r.status, 202u) << r.body;
    auto vm = parts_.store->get_vm_by_name(body["name"].get<std::string>());
    ASSERT_TRUE(vm);
    auto st = decode_vm_status(vm->status);
    st.state = "running";
    vm->status = encode(st);
    ASSERT_TRUE(parts_.store->update_vm(*vm));
  };
  for (const char* n : {"g1", "g2"})
    ASSERT_NO_FATAL_FAILURE(create_running({{"name", n},
                                            {"vcpus", 1},
                                            {"memory_mib", 1024},
                                            {"kernel", "k"},
                                            {"affinity_group", "pair"}}));
  // A pinned VM beside them: only the group can move.
  ASSERT_NO_FATAL_FAILURE(create_running(
      {{"name", "p"}, {"vcpus", 1}, {"memory_mib", 1024}, {"kernel", "k"}, {"host", "h1"}}));
  add_host("h2", 4, 4096);
  auto r = call("GET", "/api/v1/balance", "", op);
  ASSERT_EQ(r.status, 200u) << r.body;
  auto plan = json::parse(r.body);
  ASSERT_EQ(plan["moves"].size(), 1u) << r.body;
  const auto& m = plan["moves"][0];
  EXPECT_EQ(m["vm"], "g1") << r.body;
  EXPECT_EQ(m["together_with"], json::array({"g2"})) << r.body;
  EXPECT_EQ(m["memory_mib"], 2048);
  EXPECT_EQ(m["to"], "h2");

  auto ap = call("POST", "/api/v1/balance/apply", "", op);
  ASSERT_EQ(ap.status, 202u) << ap.body;
  EXPECT_EQ(json::parse(ap.body)["started"].size(), 1u) << ap.body;
  const auto h2 = parts_.store->get_host_by_name("h2")->id;
  for (const char* n : {"g1", "g2"}) {
    auto doc = decode_vm_document(parts_.store->get_vm_by_name(n)->spec);
    ASSERT_TRUE(doc->migration.active()) << n;
    EXPECT_EQ(doc->migration.target_host_id, h2) << n;
  }
  EXPECT_FALSE(
      decode_vm_document(parts_.store->get_vm_by_name("p")->spec)->migration.active());
}

// Load balancing: GET /api/v1/balance proposes moves from the loaded host to the empty one
// (any role); POST /api/v1/balance/apply starts them as migrations (operator); a pinned VM
// and a VM already moving are held where they are, with the reason.
TEST_F(ApiTest, BalancePlansMovesAndApplyStartsThemAsMigrations) {
  add_host("h1", 4, 4096);
  std::string op = make_token("ops", "operator");
  std::string viewer = make_token("v", "viewer");
  auto running = [&](const std::string& name) {
    auto vm = parts_.store->get_vm_by_name(name);
    ASSERT_TRUE(vm);
    auto st = decode_vm_status(vm->status);
    st.state = "running";
    vm->status = encode(st);
    ASSERT_TRUE(parts_.store->update_vm(*vm));
  };
  for (const char* n : {"a", "b", "c"}) {
    auto r = call("POST", "/api/v1/vms",
                  json{{"name", n}, {"vcpus", 1}, {"memory_mib", 1024}, {"kernel", "k"}}.dump(), op);
    ASSERT_EQ(r.status, 202u) << r.body;
    ASSERT_NO_FATAL_FAILURE(running(n));
  }
  auto pinned = call("POST", "/api/v1/vms",
                     R"({"name":"p","vcpus":1,"memory_mib":512,"kernel":"k","host":"h1"})", op);
  ASSERT_EQ(pinned.status, 202u) << pinned.body;
  ASSERT_NO_FATAL_FAILURE(running("p"));
  // One host: nothing to balance.
  auto one = call("GET", "/api/v1/balance", "", viewer);
  ASSERT_EQ(one.status, 200u) << one.body;
  EXPECT_EQ(json::parse(one.body)["stopped"], "no_hosts");
  EXPECT_TRUE(json::parse(one.body)["moves"].empty());

  add_host("h2", 4, 4096);
  auto r = call("GET", "/api/v1/balance", "", viewer);
  ASSERT_EQ(r.status, 200u) << r.body;
  auto plan = json::parse(r.body);
  EXPECT_EQ(plan["mode"], "advise");
  EXPECT_EQ(plan["hosts"], 2);
  EXPECT_GT(plan["imbalance"].get<double>(), plan["imbalance_after"].get<double>());
  ASSERT_FALSE(plan["moves"].empty()) << r.body;
  for (const auto& m : plan["moves"]) {
    EXPECT_EQ(m["from"], "h1");
    EXPECT_EQ(m["to"], "h2");
    EXPECT_NE(m["vm"], "p") << "pinned";
    EXPECT_EQ(m["memory_mib"], 1024);
  }
  bool held_pin = false;
  for (const auto& h : plan["held"])
    held_pin = held_pin || (h["vm"] == "p" && h["reason"] == "pinned to host h1");
  EXPECT_TRUE(held_pin) << r.body;
  EXPECT_NE(plan["summary"].get<std::string>().find("would lower the imbalance"), std::string::npos);
  // Asking changed nothing.
  EXPECT_FALSE(decode_vm_document(parts_.store->get_vm_by_name("a")->spec)->migration.active());
  // The advise cycle says it once (a balance.advice event), not every minute.
  parts_.balancer->tick();
  parts_.balancer->tick();
  int advice = 0;
  auto events = parts_.store->list_events(0, 1000);
  ASSERT_TRUE(events);
  for (const auto& e : *events) advice += e.action == "balance.advice";
  EXPECT_EQ(advice, 1);
  EXPECT_FALSE(decode_vm_document(parts_.store->get_vm_by_name("a")->spec)->migration.active())
      << "advise moves nothing";

  // Applying: operators only; a body with an unknown field is a 400 naming it.
  EXPECT_EQ(call("POST", "/api/v1/balance/apply", "", viewer).status, 403u);
  EXPECT_EQ(field(call("POST", "/api/v1/balance/apply", R"({"force":true})", op)), "force");
  auto ap = call("POST", "/api/v1/balance/apply", "", op);
  ASSERT_EQ(ap.status, 202u) << ap.body;
  auto applied = json::parse(ap.body);
  ASSERT_EQ(applied["started"].size(), plan["moves"].size()) << ap.body;
  EXPECT_TRUE(applied["refused"].empty());
  for (const auto& s : applied["started"]) {
    auto vm = parts_.store->get_vm_by_name(s["vm"].get<std::string>());
    auto doc = decode_vm_document(vm->spec);
    ASSERT_TRUE(doc->migration.active()) << s;
    EXPECT_EQ(doc->migration.target_host_id, parts_.store->get_host_by_name("h2")->id);
    EXPECT_EQ(doc->migration.task_id, s["task_id"]);
  }
  auto evs = parts_.store->list_events(0, 1000);
  int applies = 0;
  for (const auto& e : *evs)
    applies += e.action == "balance.apply" && e.actor == "token:ops" && e.result == "ok";
  EXPECT_EQ(applies, 1) << "the apply's own event (the refused body's audit says error)";
  // Now the moving VMs are held (migrating) and the target's share is reserved: no
  // second plan moves them again.
  auto again = json::parse(call("GET", "/api/v1/balance", "", viewer).body);
  for (const auto& m : again["moves"])
    for (const auto& s : applied["started"]) EXPECT_NE(m["vm"], s["vm"]);
}

TEST_F(ApiTest, PlanCapacityAnswersWithoutWritingAndValidatesItsBody) {
  add_host("a", 8, 4096);
  add_host("b", 2, 1024);
  std::string viewer = make_token("view", "viewer");
  auto r = call("POST", "/api/v1/plan/capacity", R"({"vcpus":1,"memory_mib":1024,"count":2})", viewer);
  ASSERT_EQ(r.status, 200u) << r.body;
  auto j = json::parse(r.body);
  EXPECT_EQ(j["requested"], 2);
  EXPECT_EQ(j["fits"], true);
  EXPECT_EQ(j["fit"], 5) << j;  // 4 on a, 1 on b
  EXPECT_EQ(j["runs_out_first"], "memory") << j;
  uint32_t shown = 0;
  for (const auto& h : j["hosts"]) shown += h["vms"].get<uint32_t>();
  EXPECT_EQ(shown, 2u) << j;
  auto more = call("POST", "/api/v1/plan/capacity", R"({"vcpus":1,"memory_mib":1024,"count":6})", viewer);
  ASSERT_EQ(more.status, 200u);
  EXPECT_EQ(json::parse(more.body)["fits"], false);
  auto sel = call("POST", "/api/v1/plan/capacity",
                  R"({"vcpus":1,"memory_mib":64,"node_selector":{"zone":"z"}})", viewer);
  ASSERT_EQ(sel.status, 200u);
  EXPECT_EQ(json::parse(sel.body)["fit"], 0);
  EXPECT_EQ(json::parse(sel.body)["runs_out_first"], "selector");
  EXPECT_TRUE(json::parse(call("GET", "/api/v1/vms", "", admin_).body)["vms"].empty());
  for (auto [body, f] : {std::pair{R"({"memory_mib":64})", "vcpus"},
                         {R"({"vcpus":0,"memory_mib":64})", "vcpus"},
                         {R"({"vcpus":1,"memory_mib":1})", "memory_mib"},
                         {R"({"vcpus":1,"memory_mib":64,"count":100001})", "count"},
                         {R"({"vcpus":1,"memory_mib":64,"count":-1})", "count"},
                         {R"({"vcpus":1,"memory_mib":64,"accelerator":"xen"})", "accelerator"},
                         {R"({"vcpus":1,"memory_mib":64,"node_selector":{"k":1}})", "node_selector.k"},
                         {R"({"vcpus":1,"memory_mib":64,"extra":1})", "extra"}}) {
    auto bad = call("POST", "/api/v1/plan/capacity", body, viewer);
    EXPECT_EQ(bad.status, 400u) << body;
    EXPECT_EQ(field(bad), f) << body << " " << bad.body;
  }
  EXPECT_EQ(call("POST", "/api/v1/plan/capacity", R"({"vcpus":1,"memory_mib":64})", "").status, 401u);
}

// GET /api/v1/summary: the dashboard's counts for any role, computed on the server: VM and
// task counts match the lists, allocations match the VMs' sizes on each host.
TEST_F(ApiTest, SummaryCountsWhatTheListsShow) {
  add_host("a", 8, 4096);
  add_host("b", 2, 1024);
  for (int i = 0; i < 5; ++i) {
    json body = {{"name", "s" + std::to_string(i)}, {"vcpus", 1 + i % 2}, {"memory_mib", 128},
                 {"start", false}, {"disks", {{{"name", "root"}, {"size_bytes", 1 << 20}, {"boot", true}}}}};
    ASSERT_EQ(call("POST", "/api/v1/vms", body.dump(), admin_).status, 202u);
  }
  ASSERT_EQ(call("PATCH", "/api/v1/hosts/b", R"({"maintenance":true})", admin_).status, 200u);
  std::string viewer = make_token("view", "viewer");
  auto r = call("GET", "/api/v1/summary", "", viewer);
  ASSERT_EQ(r.status, 200u) << r.body;
  auto j = json::parse(r.body);
  auto vms = json::parse(call("GET", "/api/v1/vms", "", admin_).body)["vms"];
  ASSERT_EQ(vms.size(), 5u);
  std::map<std::string, int64_t> by_state;
  std::map<std::string, std::pair<uint64_t, uint64_t>> on_host;
  uint64_t vcpus = 0;
  for (const auto& v : vms) {
    ++by_state[v["status"].value("state", "unknown")];
    auto& h = on_host[v.value("host", "")];
    h.first += v["spec"]["vcpus"].get<uint64_t>();
    h.second += v["spec"]["memory_mib"].get<uint64_t>();
    vcpus += v["spec"]["vcpus"].get<uint64_t>();
  }
  EXPECT_EQ(j["vms"]["total"], 5);
  EXPECT_EQ(j["vms"]["by_state"], json(by_state)) << j;
  EXPECT_EQ(j["vms"]["unplaced"], 0);
  EXPECT_EQ(j["hosts"]["total"], 2);
  EXPECT_EQ(j["hosts"]["maintenance"], 1);
  EXPECT_EQ(j["hosts"]["by_state"], (json{{"maintenance", 1}, {"up", 1}})) << j;
  ASSERT_EQ(j["hosts"]["items"].size(), 2u);
  for (const auto& h : j["hosts"]["items"]) {
    auto want = on_host[h["name"]];
    EXPECT_EQ(h["allocated_vcpus"], want.first) << h;
    EXPECT_EQ(h["allocated_memory_mib"], want.second) << h;
  }
  EXPECT_EQ(j["capacity"]["vcpus"], 10);
  EXPECT_EQ(j["capacity"]["memory_mib"], 5120);
  EXPECT_EQ(j["capacity"]["allocated_vcpus"], vcpus);
  EXPECT_EQ(j["capacity"]["allocated_memory_mib"], 5 * 128);
  EXPECT_EQ(j["capacity"]["schedulable_vcpus"], 40);  // default CPU overcommit 4
  // No host reports a datastore: none in the fleet, an empty list per host.
  EXPECT_EQ(j["datastores"]["items"], json::array());
  EXPECT_EQ(j["datastores"]["total_bytes"], 0);
  for (const auto& h : j["hosts"]["items"]) EXPECT_EQ(h["datastores"], json::array()) << h;
  // The creates' tasks, newest first.
  auto tasks = json::parse(call("GET", "/api/v1/tasks", "", admin_).body)["tasks"];
  int64_t task_total = 0;
  for (const auto& [state, n] : j["tasks"]["by_state"].items()) task_total += n.get<int64_t>();
  EXPECT_EQ(task_total, static_cast<int64_t>(tasks.size()));
  ASSERT_EQ(j["tasks"]["recent"].size(), std::min<size_t>(10, tasks.size()));
  EXPECT_EQ(j["tasks"]["recent"][0]["id"], tasks.back()["id"]);
  auto with_recent = [&](const std::string& n) {
    HttpRequest q;
    q.method = "GET";
    q.path = "/api/v1/summary";
    q.query = {{"recent", n}};
    q.headers["authorization"] = "Bearer " + viewer;
    return api_->dispatch(q);
  };
  auto two = json::parse(with_recent("2").body);
  EXPECT_EQ(two["tasks"]["recent"].size(), 2u);
  auto bad = with_recent("101");
  EXPECT_EQ(bad.status, 400u);
  EXPECT_EQ(field(bad), "recent");
  EXPECT_EQ(call("GET", "/api/v1/summary", "", "").status, 401u);
}

// The summary's datastores are the agents' reports (each host's inventory): per host what it
// mounts with used = total - free, and the fleet's storages counted once each (a shared one
// mounted by two hosts is one storage, with the figures of the host that reported last).
TEST_F(ApiTest, SummaryShowsDatastoreUsageFromTheInventories) {
  const std::string shared = "11111111-1111-4111-8111-111111111111";
  const std::string local = "22222222-2222-4222-8222-222222222222";
  auto ds = [](const std::string& name, const std::string& id, uint64_t total, uint64_t free) {
    return json{{"name", name}, {"id", id}, {"path", "/mnt/" + name}, {"total_bytes", total},
                {"free_bytes", free}};
  };
  auto put = [&](const std::string& name, json datastores, int64_t heartbeat_ms) {
    store::HostRecord h;
    h.name = name;
    h.address = "unix:/nonexistent/" + name;
    h.state = "up";
    h.cpu_threads = 2;
    h.memory_mib = 1024;
    h.inventory = json{{"datastores", std::move(datastores)}}.dump();
    auto made = parts_.store->create_host(h);
    ASSERT_TRUE(made);
    ASSERT_TRUE(parts_.store->touch_host_heartbeat(made->id, heartbeat_ms, "up"));
  };
  put("a", json::array({ds("shared", shared, 1000, 400), ds("scratch", local, 300, 100)}), 10);
  put("b", json::array({ds("shared", shared, 1000, 250)}), 20);
  put("c", json::array(), 30);
  auto r = call("GET", "/api/v1/summary", "", make_token("view", "viewer"));
  ASSERT_EQ(r.status, 200u) << r.body;
  auto j = json::parse(r.body);
  std::map<std::string, json> items;
  for (const auto& h : j["hosts"]["items"]) items[h["name"]] = h["datastores"];
  ASSERT_EQ(items.size(), 3u) << j;
  // Per host: what GET /api/v1/hosts/{name} reports in its inventory, plus used_bytes.
  for (const auto& [name, list] : items) {
    auto inv = json::parse(call("GET", "/api/v1/hosts/" + name, "", admin_).body)["inventory"];
    ASSERT_EQ(list.size(), inv["datastores"].size()) << name;
    for (size_t i = 0; i < list.size(); ++i) {
      const auto& want = inv["datastores"][i];
      EXPECT_EQ(list[i]["name"], want["name"]);
      EXPECT_EQ(list[i]["id"], want["id"]);
      EXPECT_EQ(list[i]["total_bytes"], want["total_bytes"]);
      EXPECT_EQ(list[i]["free_bytes"], want["free_bytes"]);
      EXPECT_EQ(list[i]["used_bytes"].get<uint64_t>(),
                want["total_bytes"].get<uint64_t>() - want["free_bytes"].get<uint64_t>());
    }
  }
  EXPECT_EQ(items["a"][1]["used_bytes"], 200);
  // The fleet: two storages; "shared" once, as b (the newer report) sees it.
  const auto& fleet = j["datastores"];
  ASSERT_EQ(fleet["items"].size(), 2u) << fleet;
  EXPECT_EQ(fleet["items"][0]["name"], "scratch");
  EXPECT_EQ(fleet["items"][0]["hosts"], 1);
  EXPECT_EQ(fleet["items"][1]["name"], "shared");
  EXPECT_EQ(fleet["items"][1]["id"], shared);
  EXPECT_EQ(fleet["items"][1]["hosts"], 2);
  EXPECT_EQ(fleet["items"][1]["used_bytes"], 750);
  EXPECT_EQ(fleet["items"][1]["reported_ms"], 20);
  EXPECT_EQ(fleet["total_bytes"], 1300);
  EXPECT_EQ(fleet["used_bytes"], 950);
  EXPECT_EQ(fleet["free_bytes"], 350);
}

// GET /api/v1/events?target=vm/NAME: that target's events only, newest first, paged with
// before= (the VM and host pages' events panels).
TEST_F(ApiTest, EventsFilteredByTargetNewestFirst) {
  add_host("h1", 8, 8192);
  for (const char* n : {"a", "ab"}) {
    json body = {{"name", n}, {"vcpus", 1}, {"memory_mib", 64}, {"kernel", "k"}, {"start", false}};
    ASSERT_EQ(call("POST", "/api/v1/vms", body.dump(), admin_).status, 202u);
  }
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(call("POST", "/api/v1/vms/a/start", "", admin_).status, 202u);
    ASSERT_EQ(call("POST", "/api/v1/vms/ab/start", "", admin_).status, 202u);
  }
  auto list = [&](std::map<std::string, std::string> q) {
    HttpRequest r;
    r.method = "GET";
    r.path = "/api/v1/events";
    r.query = std::move(q);
    r.headers["authorization"] = "Bearer " + admin_;
    auto resp = api_->dispatch(r);
    return std::make_pair(resp.status, json::parse(resp.body));
  };
  auto [s1, p1] = list({{"target", "vm/a"}, {"limit", "3"}});
  ASSERT_EQ(s1, 200u) << p1;
  ASSERT_EQ(p1["events"].size(), 3u) << p1;
  for (const auto& e : p1["events"]) EXPECT_EQ(e["target"], "vm/a") << p1;
  EXPECT_GT(p1["events"][0]["seq"].get<int64_t>(), p1["events"][1]["seq"].get<int64_t>());
  EXPECT_EQ(p1["events"][0]["action"], "vm.start");
  ASSERT_TRUE(p1["next"].is_number()) << p1;
  auto [s2, p2] = list({{"target", "vm/a"}, {"limit", "3"}, {"before", std::to_string(p1["next"].get<int64_t>())}});
  ASSERT_EQ(s2, 200u) << p2;
  ASSERT_EQ(p2["events"].size(), 1u) << p2;
  EXPECT_EQ(p2["events"][0]["action"], "vm.create");
  EXPECT_TRUE(p2["next"].is_null());
  auto [s3, p3] = list({{"target", "vm/nobody"}});
  EXPECT_EQ(s3, 200u);
  EXPECT_TRUE(p3["events"].empty());
  for (const auto& [q, f] : std::vector<std::pair<std::map<std::string, std::string>, std::string>>{
           {{{"target", ""}}, "target"},
           {{{"target", "vm/a"}, {"after", "1"}}, "after"},
           {{{"before", "5"}, {"after", "1"}}, "after"},
           {{{"before", "-1"}}, "before"},
           {{{"target", "vm/a"}, {"before", "-1"}}, "before"}}) {
    auto [status, body] = list(q);
    EXPECT_EQ(status, 400u) << body;
    EXPECT_EQ(body["error"]["field"], f) << body;
  }
  // Without target, before= pages through every event newest first (before=0: the newest):
  // the pages together are the log's ascending list reversed, each event once.
  auto [sa, all] = list({{"after", "0"}, {"limit", "1000"}});
  ASSERT_EQ(sa, 200u) << all;
  std::vector<int64_t> want;
  for (const auto& e : all["events"]) want.insert(want.begin(), e["seq"].get<int64_t>());
  ASSERT_GE(want.size(), 8u) << all;
  std::vector<int64_t> got;
  std::string before = "0";
  for (int page = 0; page < 100; ++page) {
    auto [s, p] = list({{"before", before}, {"limit", "3"}});
    ASSERT_EQ(s, 200u) << p;
    ASSERT_LE(p["events"].size(), 3u) << p;
    for (const auto& e : p["events"]) got.push_back(e["seq"].get<int64_t>());
    if (p["next"].is_null()) break;
    before = std::to_string(p["next"].get<int64_t>());
  }
  EXPECT_EQ(got, want);
  auto [sn, newest] = list({{"before", "0"}, {"limit", "1"}});
  ASSERT_EQ(sn, 200u);
  EXPECT_EQ(newest["events"][0]["seq"], want.front());
}

// GET /api/v1/tasks?target_id=&order=newest: one resource's tasks, newest first (the web
// console's VM and host pages and its tasks page).
TEST_F(ApiTest, TasksOfOneTargetNewestFirst) {
  add_host("h1", 8, 8192);
  for (const char* n : {"a", "b"}) {
    json body = {{"name", n}, {"vcpus", 1}, {"memory_mib", 64}, {"kernel", "k"}, {"start", false}};
    ASSERT_EQ(call("POST", "/api/v1/vms", body.dump(), admin_).status, 202u);
  }
  auto a = json::parse(call("GET", "/api/v1/vms/a", "", admin_).body);
  auto list = [&](std::map<std::string, std::string> q) {
    HttpRequest r;
    r.method = "GET";
    r.path = "/api/v1/tasks";
    r.query = std::move(q);
    r.headers["authorization"] = "Bearer " + admin_;
    auto resp = api_->dispatch(r);
    return std::make_pair(resp.status, json::parse(resp.body));
  };
  auto [s1, all] = list({{"limit", "1000"}});
  ASSERT_EQ(s1, 200u) << all;
  ASSERT_GE(all["tasks"].size(), 2u) << all;
  auto [s2, desc] = list({{"limit", "1000"}, {"order", "newest"}});
  ASSERT_EQ(s2, 200u) << desc;
  ASSERT_EQ(desc["tasks"].size(), all["tasks"].size());
  for (size_t i = 0; i < desc["tasks"].size(); ++i)
    EXPECT_EQ(desc["tasks"][i]["id"], all["tasks"][all["tasks"].size() - 1 - i]["id"]);
  auto [s3, mine] = list({{"order", "newest"}, {"target_id", a["id"].get<std::string>()}});
  ASSERT_EQ(s3, 200u) << mine;
  ASSERT_FALSE(mine["tasks"].empty()) << mine;
  for (const auto& t : mine["tasks"]) EXPECT_EQ(t["target_id"], a["id"]) << mine;
  for (const auto& [q, f] : std::vector<std::pair<std::map<std::string, std::string>, std::string>>{
           {{{"order", "up"}}, "order"}, {{{"target_id", ""}}, "target_id"}}) {
    auto [status, body] = list(q);
    EXPECT_EQ(status, 400u) << body;
    EXPECT_EQ(body["error"]["field"], f) << body;
  }
}

// The console's search: GET /api/v1/hosts?name= and GET /api/v1/images?name= list the names
// holding the substring (any case), in the store's query; a bad value is a 400 naming "name".
TEST_F(ApiTest, HostsAndImagesByNameSubstring) {
  for (const char* n : {"Rack1-a", "rack1-b", "edge-1"}) add_host(n, 4, 4096);
  for (const char* n : {"debian-12", "Debian-13", "alpine"}) {
    store::ImageRecord i;
    i.name = n;
    i.kind = "disk";
    i.format = "raw";
    i.size_bytes = i.virtual_size = 4096;
    i.sha256 = std::string(64, 'a');
    ASSERT_TRUE(parts_.store->create_image(i));
  }
  std::string viewer = make_token("eyes", "viewer");
  auto names = [&](const std::string& path, const std::string& key,
                   std::map<std::string, std::string> q) {
    HttpRequest r;
    r.method = "GET";
    r.path = path;
    r.query = std::move(q);
    r.headers["authorization"] = "Bearer " + viewer;
    auto resp = api_->dispatch(r);
    std::vector<std::string> out;
    EXPECT_EQ(resp.status, 200u) << resp.body;
    if (resp.status != 200u) return out;
    json answer = json::parse(resp.body);
    for (const auto& x : answer[key]) out.push_back(x["name"]);
    std::sort(out.begin(), out.end());
    return out;
  };
  using V = std::vector<std::string>;
  EXPECT_EQ(names("/api/v1/hosts", "hosts", {{"name", "RACK1"}}), (V{"Rack1-a", "rack1-b"}));
  EXPECT_EQ(names("/api/v1/hosts", "hosts", {{"name", "dge"}}), (V{"edge-1"}));
  EXPECT_EQ(names("/api/v1/hosts", "hosts", {{"name", "%"}}), V{});
  EXPECT_EQ(names("/api/v1/hosts", "hosts", {{"name", ""}}).size(), 3u);
  EXPECT_EQ(names("/api/v1/hosts", "hosts", {}).size(), 3u);
  EXPECT_EQ(names("/api/v1/images", "images", {{"name", "debian"}}), (V{"Debian-13", "debian-12"}));
  EXPECT_EQ(names("/api/v1/images", "images", {{"name", "debian"}, {"limit", "1"}}).size(), 1u);
  EXPECT_EQ(names("/api/v1/images", "images", {{"name", "PIN"}}), (V{"alpine"}));
  EXPECT_EQ(names("/api/v1/images", "images", {{"name", "_"}}), V{});
  EXPECT_EQ(names("/api/v1/images", "images", {}).size(), 3u);
  for (const char* path : {"/api/v1/hosts", "/api/v1/images"})
    for (const auto& bad : {std::string(129, 'a'), std::string("a\nb")}) {
      HttpRequest r;
      r.method = "GET";
      r.path = path;
      r.query = {{"name", bad}};
      r.headers["authorization"] = "Bearer " + viewer;
      auto resp = api_->dispatch(r);
      EXPECT_EQ(resp.status, 400u) << path << " " << resp.body;
      EXPECT_EQ(field(resp), "name") << path << " " << resp.body;
    }
}

// PATCH /api/v1/vms/{name} {"labels": {...}}: set and remove keys in one audited change;
// bounded and validated like a create; refused for a viewer, a VM being deleted, a stale
// resource_version.
TEST_F(ApiTest, VmLabelsArePatched) {
  add_host("h1", 8, 8192);
  ASSERT_EQ(call("POST", "/api/v1/vms", R"({"name":"a","vcpus":1,"memory_mib":64,"kernel":"k","start":false,"labels":{"tier":"web","old":"x"}})", admin_).status, 202u);
  auto r = call("PATCH", "/api/v1/vms/a", R"({"labels":{"team":"blue","old":null}})", admin_);
  ASSERT_EQ(r.status, 200u) << r.body;
  auto j = json::parse(r.body);
  EXPECT_EQ(j["labels"], json({{"team", "blue"}, {"tier", "web"}})) << j;
  EXPECT_EQ(json::parse(call("GET", "/api/v1/vms/a", "", admin_).body)["labels"], j["labels"]);
  // The label filter of the list sees it.
  HttpRequest q;
  q.method = "GET";
  q.path = "/api/v1/vms";
  q.query = {{"label", "team=blue"}};
  q.headers["authorization"] = "Bearer " + admin_;
  EXPECT_EQ(json::parse(api_->dispatch(q).body)["vms"].size(), 1u);
  auto bad = call("PATCH", "/api/v1/vms/a", R"({"labels":{"team":7}})", admin_);
  EXPECT_EQ(bad.status, 400u);
  EXPECT_EQ(field(bad), "labels.team");
  EXPECT_EQ(field(call("PATCH", "/api/v1/vms/a", R"({"labels":{"Bad Key":"v"}})", admin_)), "labels");
  EXPECT_EQ(field(call("PATCH", "/api/v1/vms/a", R"({"labels":{},"colour":1})", admin_)), "colour");
  EXPECT_EQ(field(call("PATCH", "/api/v1/vms/a", R"({})", admin_)), "labels");
  EXPECT_EQ(call("PATCH", "/api/v1/vms/a", R"({"labels":{"x":"y"},"resource_version":1})", admin_).status, 409u);
  EXPECT_EQ(call("PATCH", "/api/v1/vms/nope", R"({"labels":{"x":"y"}})", admin_).status, 404u);
  std::string viewer = make_token("view", "viewer");
  EXPECT_EQ(call("PATCH", "/api/v1/vms/a", R"({"labels":{"x":"y"}})", viewer).status, 403u);
  json many = json::object();
  for (int i = 0; i < 70; ++i) many["k" + std::to_string(i)] = "v";
  auto over = call("PATCH", "/api/v1/vms/a", json{{"labels", many}}.dump(), admin_);
  EXPECT_EQ(over.status, 400u) << over.body;
  ASSERT_EQ(call("DELETE", "/api/v1/vms/a", "", admin_).status, 202u);
  EXPECT_EQ(call("PATCH", "/api/v1/vms/a", R"({"labels":{"x":"y"}})", admin_).status, 409u);
  int updates_ok = 0;
  auto log = json::parse(call("GET", "/api/v1/events", "", admin_).body);
  for (const auto& e : log["events"])
    updates_ok += e["action"] == "vm.update" && e["result"] == "ok" && e["target"] == "vm/a";
  EXPECT_EQ(updates_ok, 1) << log.dump();
}

// Installing from an ISO (docs/internals/firmware.md): cdrom, boot and firmware on create,
// shown by GET; kinds checked against the catalog; the cdrom route's body checked (400
// naming the field), an unknown VM 404, a viewer 403, an accepted change 202 with its task.
TEST_F(ApiTest, CdromBootOrderAndFirmware) {
  add_host("h1", 8, 8192);
  for (auto [name, kind] : {std::pair{"netinst", "iso"}, {"base", "disk"}}) {
    store::ImageRecord i;
    i.name = name;
    i.kind = kind;
    i.format = "raw";
    i.size_bytes = i.virtual_size = 4096;
    i.sha256 = std::string(64, 'a');
    ASSERT_TRUE(parts_.store->create_image(i));
  }
  std::string op = make_token("ops", "operator");
  std::string viewer = make_token("eyes", "viewer");
  json body = {
      {"name", "inst"},
      {"vcpus", 1},
      {"memory_mib", 512},
      {"disks", json::array({{{"name", "root"}, {"size_bytes", 1 << 30}, {"boot", true}}})},
      {"cdrom", "netinst"},
      {"boot", {"cdrom", "disk"}},
      {"firmware", "uefi"},
      {"start", false}};
  auto with = [&](const json& patch) {
    json b = body;
    b.merge_patch(patch);
    return call("POST", "/api/v1/vms", b.dump(), op);
  };
  struct Bad {
    json patch;
    const char* field;
  };
  for (const Bad& b : std::vector<Bad>{{{{"cdrom", "base"}}, "cdrom"},  // a disk image
                                       {{{"cdrom", 3}}, "cdrom"},
                                       {{{"boot", {"floppy"}}}, "boot[0]"},
                                       {{{"boot", {"disk", "disk"}}}, "boot[1]"},
                                       {{{"boot", "cdrom"}}, "boot"},
                                       {{{"firmware", "efi"}}, "firmware"},
                                       {{{"watchdog", "reset"}}, "watchdog"},
                                       {{{"watchdog", {{"action", "explode"}}}}, "watchdog.action"},
                                       {{{"watchdog", {{"model", "ib700"}}}}, "watchdog.model"},
                                       {{{"machine", "pc"}}, "cdrom"}}) {
    auto r = with(b.patch);
    EXPECT_EQ(r.status, 400u) << b.patch << " " << r.body;
    EXPECT_EQ(field(r), b.field) << b.patch << " " << r.body;
  }
  auto created = with(json::object());
  ASSERT_EQ(created.status, 202u) << created.body;
  auto spec = json::parse(call("GET", "/api/v1/vms/inst", "", op).body)["spec"];
  EXPECT_EQ(spec["cdrom"], "netinst");
  EXPECT_EQ(spec["boot"], json::parse(R"(["cdrom","disk"])"));
  EXPECT_EQ(spec["firmware"], "uefi");
  EXPECT_TRUE(spec["watchdog"].is_null());  // none asked for
  auto wd = with({{"name", "inst-wd"}, {"watchdog", {{"action", "poweroff"}}}});
  ASSERT_EQ(wd.status, 202u) << wd.body;
  EXPECT_EQ(json::parse(call("GET", "/api/v1/vms/inst-wd", "", op).body)["spec"]["watchdog"],
            json::parse(R"({"model":"i6300esb","action":"poweroff"})"));

  for (const auto& [b, f] :
       std::vector<std::pair<std::string, std::string>>{{"{}", "image"},
                                                        {R"({"image":7})", "image"},
                                                        {R"({"image":"base"})", "image"},
                                                        {R"({"image":"netinst","x":1})", "x"},
                                                        {R"({"image":"Bad/Name"})", "image"}}) {
    auto r = call("POST", "/api/v1/vms/inst/cdrom", b, op);
    EXPECT_EQ(r.status, 400u) << b << " " << r.body;
    EXPECT_EQ(field(r), f) << b << " " << r.body;
  }
  EXPECT_EQ(call("POST", "/api/v1/vms/nope/cdrom", R"({"image":null})", op).status, 404u);
  EXPECT_EQ(call("POST", "/api/v1/vms/inst/cdrom", R"({"image":null})", viewer).status, 403u);
  auto ej = call("POST", "/api/v1/vms/inst/cdrom", R"({"image":null})", op);
  ASSERT_EQ(ej.status, 202u) << ej.body;
  EXPECT_EQ(json::parse(ej.body)["task"]["kind"], "vm.cdrom");

  // Disk resize: the body checked naming the field, grow only, unknown VM or disk 404, a
  // viewer 403, an accepted resize 202 with its task.
  const std::string resize = "/api/v1/vms/inst/disks/root/resize";
  for (const auto& [b, f] : std::vector<std::pair<std::string, std::string>>{
           {"{}", "size_bytes"},
           {R"({"size_bytes":"2G"})", "size_bytes"},
           {R"({"size_bytes":-1})", "size_bytes"},
           {R"({"size_bytes":0})", "size_bytes"},
           {R"({"size_bytes":1024})", "size_bytes"},  // below the disk's 1 GiB
           {R"({"size_bytes":2147483648,"x":1})", "x"}}) {
    auto r = call("POST", resize, b, op);
    EXPECT_EQ(r.status, 400u) << b << " " << r.body;
    EXPECT_EQ(field(r), f) << b << " " << r.body;
  }
  const std::string two_gib = R"({"size_bytes":2147483648})";
  EXPECT_EQ(call("POST", "/api/v1/vms/nope/disks/root/resize", two_gib, op).status, 404u);
  auto no_disk = call("POST", "/api/v1/vms/inst/disks/swap/resize", two_gib, op);
  EXPECT_EQ(no_disk.status, 404u) << no_disk.body;
  EXPECT_EQ(field(no_disk), "disk");
  EXPECT_EQ(call("POST", resize, two_gib, viewer).status, 403u);
  auto grown = call("POST", resize, two_gib, op);
  ASSERT_EQ(grown.status, 202u) << grown.body;
  EXPECT_EQ(json::parse(grown.body)["task"]["kind"], "vm.disk.resize");
}

}  // namespace
}  // namespace strata::manager

namespace strata::manager {
namespace {

// Clusters over the API: a fixed CPU baseline refuses a host that cannot offer it at
// enrollment and when moved; an unknown cluster is a 400 naming the field; the default
// cluster takes anyone; a cluster with hosts is not deleted; viewers read, only admins write.
TEST_F(ApiTest, ClustersAndTheirCpuBaselineOverTheApi) {
  const std::string viewer = make_token("v", "viewer");
  auto listed = call("GET", "/api/v1/clusters", "", viewer);
  ASSERT_EQ(listed.status, 200u) << listed.body;
  EXPECT_EQ(json::parse(listed.body)["clusters"][0]["name"], "default");
  EXPECT_EQ(call("POST", "/api/v1/clusters", R"({"name":"edge"})", viewer).status, 403u);
  auto made = call("POST", "/api/v1/clusters", R"({"name":"edge","cpu_baseline":"Haswell-v4"})", admin_);
  ASSERT_EQ(made.status, 201u) << made.body;
  EXPECT_EQ(json::parse(made.body)["cpu_model"], "Haswell-v4");
  EXPECT_EQ(call("POST", "/api/v1/clusters", R"({"name":"x","cpu_baseline":"a,b"})", admin_).status, 400u);
  EXPECT_EQ(call("POST", "/api/v1/clusters", R"({"name":"x","extra":1})", admin_).status, 400u);

  // This host offers Westmere but not Haswell.
  json inventory = {{"cpu_models",
                     {{"accelerator", "kvm"},
                      {"models",
                       {{{"name", "Westmere-v1"}, {"usable", true}, {"feature_count", 56}},
                        {{"name", "Haswell-v4"}, {"usable", false},
                         {"unavailable", {"avx2", "fma"}}, {"unavailable_count", 2}}}}}}};
  auto refused = enroll({{"join_token", join_token()}, {"name", "old"}, {"address", "unix:/o"},
                         {"cluster", "edge"}, {"inventory", inventory}});
  EXPECT_EQ(refused.status, 409u) << refused.body;
  EXPECT_NE(refused.body.find("avx2"), std::string::npos) << refused.body;
  EXPECT_EQ(json::parse(refused.body)["error"]["field"], "cluster");
  auto unknown = enroll({{"join_token", join_token()}, {"name", "old"}, {"address", "unix:/o"},
                         {"cluster", "nope"}, {"inventory", inventory}});
  EXPECT_EQ(unknown.status, 400u) << unknown.body;
  auto ok = enroll({{"join_token", join_token()}, {"name", "old"}, {"address", "unix:/o"},
                    {"inventory", inventory}});
  ASSERT_EQ(ok.status, 201u) << ok.body;
  EXPECT_EQ(json::parse(ok.body)["host"]["cluster"], "default");
  auto shown = json::parse(call("GET", "/api/v1/clusters/default", "", viewer).body);
  EXPECT_EQ(shown["cpu_model"], "Westmere-v1") << shown.dump();
  EXPECT_EQ(shown["hosts"][0]["name"], "old");
  EXPECT_EQ(shown["hosts"][0]["offers_baseline"], true);

  auto move = call("PATCH", "/api/v1/hosts/old", R"({"cluster":"edge"})", admin_);
  EXPECT_EQ(move.status, 409u) << move.body;
  EXPECT_EQ(call("PATCH", "/api/v1/clusters/edge", R"({"cpu_baseline":"auto"})", admin_).status, 200u);
  move = call("PATCH", "/api/v1/hosts/old", R"({"cluster":"edge"})", admin_);
  ASSERT_EQ(move.status, 200u) << move.body;
  EXPECT_EQ(json::parse(move.body)["cluster"], "edge");
  EXPECT_EQ(json::parse(call("GET", "/api/v1/clusters/edge", "", viewer).body)["cpu_model"],
            "Westmere-v1");
  auto busy = call("DELETE", "/api/v1/clusters/edge", "", admin_);
  EXPECT_EQ(busy.status, 409u) << busy.body;
  EXPECT_EQ(call("DELETE", "/api/v1/clusters/default", "", admin_).status, 409u);
  EXPECT_EQ(call("GET", "/api/v1/clusters/nope", "", viewer).status, 404u);
}

}  // namespace
}  // namespace strata::manager
