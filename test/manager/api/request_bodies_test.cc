// REST body decoders: every body type's rules, and the inputs the fuzzer found or that
// belong to the same class: null in an optional field (nlohmann's value() threw on it, an
// uncaught exception that took stratad down), huge integers, wrong types inside free-form
// objects.
#include "strata/manager/api/request_bodies.h"

#include <gtest/gtest.h>

#include "strata/manager/api/json_fields.h"
#include "strata/model/validation.h"
#include "strata/wire/api_level.h"

namespace strata::manager {
namespace {

nlohmann::json body(std::string_view text) { return *parse_json_object(text); }

TEST(RequestBodies, NullOptionalFieldsMeanAbsent) {
  auto join = decode_join_token_create(body(R"({"ttl_s":null})"));
  ASSERT_TRUE(join) << join.error().message;
  EXPECT_EQ(join->ttl_s, 3600);

  auto stop = decode_vm_stop(body(R"({"force":null,"timeout_s":null,"resource_version":null})"));
  ASSERT_TRUE(stop) << stop.error().message;
  EXPECT_FALSE(stop->force);
  EXPECT_EQ(stop->timeout_s, 0u);

  auto patch = decode_host_patch(body(R"({"maintenance":null,"labels":null})"));
  ASSERT_TRUE(patch) << patch.error().message;
  EXPECT_FALSE(patch->maintenance);
  EXPECT_TRUE(patch->labels.empty());

  auto token = decode_token_create(body(R"({"name":"ci","role":"viewer","ttl_s":null})"));
  ASSERT_TRUE(token) << token.error().message;
  EXPECT_FALSE(token->ttl_s);

  auto enroll = decode_enroll(
      body(R"({"join_token":"t","name":"h1","address":"10.0.0.1:7481","csr":null,"inventory":null})"));
  ASSERT_TRUE(enroll) << enroll.error().message;
  EXPECT_FALSE(enroll->csr);
  EXPECT_EQ(enroll->inventory, "");
}

TEST(RequestBodies, EnrollInventoryOfOtherTypesIsIgnoredNotThrown) {
  auto e = decode_enroll(body(
      R"({"join_token":"t","name":"h1","address":"a:1","inventory":{"accelerator":5,"cpu_threads":-1,"memory_total_bytes":"x"}})"));
  ASSERT_TRUE(e) << e.error().message;
  EXPECT_EQ(e->accelerator, "");
  EXPECT_EQ(e->cpu_threads, 0);
  EXPECT_EQ(e->memory_mib, 0);
  e = decode_enroll(body(
      R"({"join_token":"t","name":"h1","address":"a:1","inventory":{"accelerator":"kvm","cpu_threads":18446744073709551615,"memory_total_bytes":1073741824}})"));
  ASSERT_TRUE(e);
  EXPECT_EQ(e->accelerator, "kvm");
  EXPECT_EQ(e->cpu_threads, 0);  // past int64: not a thread count
  EXPECT_EQ(e->memory_mib, 1024);
}

// The enrolling agent's API level (strata/wire/api_level.h): in the window it enrolls, an
// agent from before levels (no agent.api_level) is level 1; outside the window, or not a
// level, it is refused naming the field.
TEST(RequestBodies, EnrollChecksTheAgentApiLevel) {
  auto with_level = [](const std::string& agent) {
    return decode_enroll(body(
        R"({"join_token":"t","name":"h1","address":"a:1","inventory":{"agent":)" + agent + "}}"));
  };
  EXPECT_TRUE(with_level(R"({"version":"x","api_level":)" + std::to_string(wire::kApiLevel) + "}"));
  EXPECT_TRUE(
      with_level(R"({"version":"x","api_level":)" + std::to_string(wire::kApiLevel + 1) + "}"));
  EXPECT_TRUE(with_level(R"({"version":"x"})"));  // before levels: level 1, one behind
  auto ahead = with_level(R"({"api_level":)" + std::to_string(wire::kApiLevel + 2) + "}");
  ASSERT_FALSE(ahead);
  EXPECT_EQ(ahead.error().code, ErrorCode::failed_precondition);
  EXPECT_EQ(ahead.error().field, "inventory.agent.api_level");
  auto bad = with_level(R"({"api_level":"2"})");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, ErrorCode::invalid_argument);
  EXPECT_EQ(bad.error().field, "inventory.agent.api_level");
}

TEST(RequestBodies, EachBodyNamesItsBadField) {
  auto t = decode_token_create(body(R"({"name":"ci","role":"root"})"));
  ASSERT_FALSE(t);
  EXPECT_EQ(t.error().field, "role");
  t = decode_token_create(body(R"({"name":"ci","role":"admin","ttl_s":18446744073709551615})"));
  ASSERT_FALSE(t);
  EXPECT_EQ(t.error().field, "ttl_s");
  auto j = decode_join_token_create(body(R"({"ttl_s":0})"));
  ASSERT_FALSE(j);
  EXPECT_EQ(j.error().field, "ttl_s");
  auto s = decode_vm_stop(body(R"({"timeout_s":3601})"));
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().field, "timeout_s");
  auto p = decode_host_patch(body(R"({"labels":{"a":1}})"));
  ASSERT_FALSE(p);
  EXPECT_EQ(p.error().field, "labels.a");
  auto e = decode_enroll(body(R"({"join_token":"t","name":"h1","address":""})"));
  ASSERT_FALSE(e);
  EXPECT_EQ(e.error().field, "address");
  EXPECT_FALSE(check_vm_action_body("start", body(R"({"force":true})")));
  EXPECT_TRUE(check_vm_action_body("stop", body(R"({"force":true})")));
}

// The planning bodies, decoded outside their routes (so they are fuzzed too).
TEST(RequestBodies, PlanBodiesDecodeAndNameTheirBadField) {
  auto h = decode_host_down_plan(body(R"({"hosts":["a","b"],"ha_only":true})"));
  ASSERT_TRUE(h) << h.error().to_string();
  EXPECT_EQ(h->hosts, (std::vector<std::string>{"a", "b"}));
  EXPECT_TRUE(h->ha_only);
  for (const auto& [text, field] : std::vector<std::pair<std::string, std::string>>{
           {R"({"hosts":[]})", "hosts"},
           {R"({"hosts":["a",1]})", "hosts[1]"},
           {R"({"hosts":"a"})", "hosts"},
           {R"({"hosts":["a"],"ha_only":1})", "ha_only"},
           {R"({"hosts":["a"],"other":1})", "other"}}) {
    auto bad = decode_host_down_plan(body(text));
    ASSERT_FALSE(bad) << text;
    EXPECT_EQ(bad.error().field, field) << text;
  }
  nlohmann::json many = {{"hosts", nlohmann::json::array()}};
  for (int i = 0; i < 1001; ++i) many["hosts"].push_back("h");
  EXPECT_EQ(decode_host_down_plan(many).error().field, "hosts");

  auto c = decode_capacity_plan(body(R"({"vcpus":2,"memory_mib":2048,"count":10,)"
                                     R"("node_selector":{"zone":"a"},"accelerator":"kvm"})"));
  ASSERT_TRUE(c) << c.error().to_string();
  EXPECT_EQ(c->vcpus, 2u);
  EXPECT_EQ(c->memory_mib, 2048u);
  EXPECT_EQ(c->count, 10u);
  EXPECT_EQ(c->node_selector.at("zone"), "a");
  EXPECT_EQ(c->accelerator, "kvm");
  EXPECT_EQ(decode_capacity_plan(body(R"({"vcpus":1,"memory_mib":64})"))->accelerator, "any");
  for (const auto& [text, field] : std::vector<std::pair<std::string, std::string>>{
           {R"({"vcpus":0,"memory_mib":64})", "vcpus"},
           {R"({"vcpus":1,"memory_mib":1})", "memory_mib"},
           {R"({"vcpus":1,"memory_mib":64,"count":100001})", "count"},
           {R"({"vcpus":1,"memory_mib":64,"accelerator":"xen"})", "accelerator"},
           {R"({"vcpus":1,"memory_mib":64,"node_selector":{"a":1}})", "node_selector.a"},
           {R"({"vcpus":-1,"memory_mib":64})", "vcpus"}}) {
    auto bad = decode_capacity_plan(body(text));
    ASSERT_FALSE(bad) << text;
    EXPECT_EQ(bad.error().field, field) << text << ": " << bad.error().message;
  }
  nlohmann::json selector = {
      {"vcpus", 1u}, {"memory_mib", 64u}, {"node_selector", nlohmann::json::object()}};
  for (size_t i = 0; i <= model::kMaxLabels; ++i)
    selector["node_selector"]["k" + std::to_string(i)] = "v";
  EXPECT_EQ(decode_capacity_plan(selector).error().field, "node_selector");
}

TEST(RequestBodies, HostPatchSetsAndRemovesLabels) {
  auto p = decode_host_patch(body(R"({"labels":{"zone":"a","old":null},"maintenance":true})"));
  ASSERT_TRUE(p);
  EXPECT_EQ(p->labels.at("zone"), "a");
  EXPECT_FALSE(p->labels.at("old"));
  EXPECT_EQ(p->maintenance, true);
}

TEST(RequestBodies, HostPatchIsCountedBeforeItIsCopied) {
  nlohmann::json b;
  for (int i = 0; i < 128; ++i) b["labels"]["k" + std::to_string(i)] = i % 2 ? nlohmann::json("v") : nlohmann::json(nullptr);
  EXPECT_TRUE(decode_host_patch(b)) << "64 sets and 64 removals fit in one patch";
  b["labels"]["one-more"] = nullptr;
  auto p = decode_host_patch(b);
  ASSERT_FALSE(p);
  EXPECT_EQ(p.error().field, "labels");
  EXPECT_NE(p.error().message.find("at most 128"), std::string::npos) << p.error().message;
  // A bad value is named once ("labels.zone", was "labels.zone.zone"), a bad key by the map.
  p = decode_host_patch(body(R"({"labels":{"zone":"a\u0001"}})"));
  ASSERT_FALSE(p);
  EXPECT_EQ(p.error().field, "labels.zone");
  p = decode_host_patch(body(R"({"labels":{"a b":"x"}})"));
  ASSERT_FALSE(p);
  EXPECT_EQ(p.error().field, "labels");
}

TEST(RequestBodies, VmListQuerySortNameStateAndTheirErrors) {
  auto query = [](std::map<std::string, std::string> q) {
    HttpRequest r;
    r.query = std::move(q);
    return decode_vm_list_query(r);
  };
  auto plain = query({});
  ASSERT_TRUE(plain);
  EXPECT_EQ(plain->limit, 0);
  EXPECT_EQ(plain->sort, VmListQuery::Sort::id);
  EXPECT_FALSE(plain->state);
  auto full = query({{"limit", "50"}, {"after", "vm-9"}, {"label", "tier=web"}, {"host", "h1"},
                     {"name", "web"}, {"state", "running"}, {"sort", "-name"}});
  ASSERT_TRUE(full) << full.error().to_string();
  EXPECT_EQ(full->limit, 50);
  EXPECT_EQ(full->after, "vm-9");
  EXPECT_EQ(full->label, (std::pair<std::string, std::string>{"tier", "web"}));
  EXPECT_EQ(full->host, "h1");
  EXPECT_EQ(full->name_contains, "web");
  EXPECT_EQ(full->state, "running");
  EXPECT_EQ(full->sort, VmListQuery::Sort::name_desc);
  EXPECT_EQ(query({{"sort", "name"}})->sort, VmListQuery::Sort::name);
  struct Bad {
    std::map<std::string, std::string> q;
    std::string field;
  };
  for (const auto& [q, field] : std::vector<Bad>{{{{"sort", "created"}}, "sort"},
                                                 {{{"state", "asleep"}}, "state"},
                                                 {{{"label", "tier"}}, "label"},
                                                 {{{"label", "=web"}}, "label"},
                                                 {{{"limit", "10001"}}, "limit"},
                                                 {{{"name", std::string(64, 'a')}}, "name"}}) {
    auto r = query(q);
    ASSERT_FALSE(r) << field;
    EXPECT_EQ(r.error().code, ErrorCode::invalid_argument);
    EXPECT_EQ(r.error().field, field);
  }
}

TEST(RequestBodies, ExpectedVersionFromBodyOrIfMatch) {
  HttpRequest r;
  auto b = body(R"({"resource_version":7})");
  EXPECT_EQ(**expected_version(r, &b), 7);
  b = body(R"({"resource_version":18446744073709551615})");
  EXPECT_FALSE(expected_version(r, &b));
  b = body(R"({"resource_version":null})");
  EXPECT_FALSE(*expected_version(r, &b));
  r.headers["if-match"] = "\"9\"";
  EXPECT_EQ(**expected_version(r, nullptr), 9);
  r.headers["if-match"] = "x";
  EXPECT_FALSE(expected_version(r, nullptr));
}

}  // namespace
}  // namespace strata::manager
