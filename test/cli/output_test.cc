// Output goldens: aligned tables, FIELD/VALUE lists, JSON and YAML.
#include "strata/cli/output.h"

#include <gtest/gtest.h>

namespace strata::cli {
namespace {

using nlohmann::json;

json sample_vms() {
  return json::parse(R"([
    {"name":"web-1","desired_state":"running","host":"h1",
     "spec":{"vcpus":2,"memory_mib":512},"labels":{"app":"web","tier":"1"},
     "status":{"state":"running"}},
    {"name":"database-long-name","desired_state":"stopped","host":"",
     "spec":{"vcpus":16,"memory_mib":16384},"labels":{},
     "status":{"state":"stopped"}}
  ])");
}

TEST(Output, VmTableGolden) {
  EXPECT_EQ(render(sample_vms(), OutputFormat::table, vm_columns()),
            "NAME                STATE    DESIRED  HOST  VCPUS  MEMORY  LABELS\n"
            "web-1               running  running  h1    2      512M    app=web,tier=1\n"
            "database-long-name  stopped  stopped  -     16     16G     -\n");
}

TEST(Output, EmptyListIsHeaderOnly) {
  EXPECT_EQ(render(json::array(), OutputFormat::table, host_columns()),
            "NAME  STATE  REACHABILITY  CLUSTER  ACCEL  CPUS  MEMORY  AGENT  API  LABELS\n");
}

TEST(Output, FieldsGolden) {
  json task = json::parse(R"({"id":"t1","state":"running","progress":40,
    "result":{},"tags":[],"spec":{"disks":[{"name":"root"}]}})");
  EXPECT_EQ(render(task, OutputFormat::table),
            "FIELD               VALUE\n"
            "id                  t1\n"
            "progress            40\n"
            "result              {}\n"
            "spec.disks[0].name  root\n"
            "state               running\n"
            "tags                []\n");
}

TEST(Output, JsonIsPrettyAndParsesBack) {
  json v = sample_vms();
  std::string out = render(v, OutputFormat::json, vm_columns());
  EXPECT_EQ(json::parse(out), v);
  EXPECT_EQ(out.back(), '\n');
}

TEST(Output, YamlGolden) {
  json v = json::parse(R"({"name":"web-1","vcpus":2,"ok":true,"none":null,
    "labels":{"app":"web"},"empty":{},"list":[],
    "disks":[{"name":"root","boot":true},{"name":"data","size":1024}],
    "tricky":["yes","","123","a: b","#x"," lead","line\nbreak","plain text"]})");
  EXPECT_EQ(to_yaml(v),
            "disks:\n"
            "- boot: true\n"
            "  name: root\n"
            "- name: data\n"
            "  size: 1024\n"
            "empty: {}\n"
            "labels:\n"
            "  app: web\n"
            "list: []\n"
            "name: web-1\n"
            "none: null\n"
            "ok: true\n"
            "tricky:\n"
            "- \"yes\"\n"
            "- \"\"\n"
            "- \"123\"\n"
            "- \"a: b\"\n"
            "- \"#x\"\n"
            "- \" lead\"\n"
            "- \"line\\nbreak\"\n"
            "- plain text\n"
            "vcpus: 2\n");
  EXPECT_EQ(to_yaml(json::array()), "[]\n");
  EXPECT_EQ(to_yaml(json::parse(R"([[1,2],[]])")), "- - 1\n  - 2\n- []\n");
}

TEST(Output, CellHelpers) {
  json j = json::parse(R"({"a":{"b":""},"n":3,"t":1700000000000})");
  EXPECT_EQ(text_at(j, "/a/b"), "-");
  EXPECT_EQ(text_at(j, "/missing"), "-");
  EXPECT_EQ(text_at(j, "/n"), "3");
  EXPECT_EQ(time_text(j["t"]), "2023-11-14T22:13:20Z");
  EXPECT_EQ(labels_text(json::object()), "-");
}

TEST(Output, FormatNames) {
  EXPECT_EQ(parse_output_format("yaml").value(), OutputFormat::yaml);
  EXPECT_FALSE(parse_output_format("xml"));
}

}  // namespace
}  // namespace strata::cli
