// cloud_init: validation of every field (errors name the field), strict JSON, and the
// rendered NoCloud seed (meta-data / user-data / network-config) as exact documents.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "strata/model/cloud_init_seed.h"
#include "strata/model/validation.h"
#include "strata/model/vm_spec_json.h"

namespace strata::model {
namespace {

using nlohmann::json;

const char* kKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGvZ0pQ3b2x3bY4mJbQfJ6x1m0mC4sQ alice@laptop";
const char* kHash = "$6$rounds=5000$saltsalt$7yQ1TGe3kTq0yZbqgW3jB5o2l8Vd4RzrCkPGpH0tNz0";

VmSpec spec_with(CloudInit ci) {
  VmSpec s;
  s.name = "web-1";
  s.uuid = "3f2504e0-4f89-41d3-9a0c-0305e82c3301";
  s.kernel_boot = KernelBoot{"vmlinuz", "", ""};
  s.nics.push_back(NicSpec{NicMode::user, "", "52:54:00:AB:34:56"});
  s.cloud_init = std::move(ci);
  return s;
}

CloudInit good() {
  CloudInit ci;
  ci.hostname = "web-1.example.org";
  ci.users.push_back(CloudInitUser{"alice", {kKey}, kHash, true, {"adm", "sudo"}});
  return ci;
}

void expect_field(const Status& s, const std::string& field) {
  ASSERT_FALSE(s) << "expected rejection of " << field;
  EXPECT_EQ(s.error().code, ErrorCode::invalid_argument);
  EXPECT_EQ(s.error().field, field) << s.error().to_string();
}

TEST(CloudInitValidation, GoodSpecPasses) {
  EXPECT_TRUE(validate(spec_with(good())));
  EXPECT_TRUE(validate(spec_with(CloudInit{})));
}

TEST(CloudInitValidation, Hostname) {
  for (std::string bad : std::vector<std::string>{"-a", "a-", "a..b", ".a", "a.", "a_b", "a b", "a\nb",
                          std::string(64, 'a'), std::string("\x01")}) {
    auto ci = good();
    ci.hostname = bad;
    expect_field(validate(spec_with(ci)), "cloud_init.hostname");
  }
  for (std::string ok : std::vector<std::string>{"a", "Web-1", "a.b.c", std::string(63, 'a')}) {
    auto ci = good();
    ci.hostname = ok;
    EXPECT_TRUE(validate(spec_with(ci))) << ok;
  }
}

TEST(CloudInitValidation, Users) {
  for (std::string bad : std::vector<std::string>{"", "Alice", "1abc", "a;b", "a b", "-x", std::string(33, 'a')}) {
    auto ci = good();
    ci.users[0].name = bad;
    expect_field(validate(spec_with(ci)), "cloud_init.users[0].name");
  }
  auto dup = good();
  dup.users.push_back(dup.users[0]);
  expect_field(validate(spec_with(dup)), "cloud_init.users[1].name");
  auto grp = good();
  grp.users[0].groups.push_back("wheel;rm");
  expect_field(validate(spec_with(grp)), "cloud_init.users[0].groups[2]");
}

TEST(CloudInitValidation, SshKeys) {
  for (std::string bad : std::vector<std::string>{"", "rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQ", "ssh-rsa",
                          "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQ\nssh-rsa AAAAB3NzaC1yc2EAAAA x",
                          "ssh-rsa AAAA$(reboot)AAAAAAAAAAAAAAAAA", "ssh-rsa short"}) {
    auto ci = good();
    ci.users[0].ssh_authorized_keys = {bad};
    expect_field(validate(spec_with(ci)), "cloud_init.users[0].ssh_authorized_keys[0]");
  }
  for (std::string ok : std::vector<std::string>{"ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTY= x",
                         "sk-ssh-ed25519@openssh.com AAAAGnNrLXNzaC1lZDI1NTE5QG9wZW5zc2guY29t"}) {
    auto ci = good();
    ci.users[0].ssh_authorized_keys = {ok};
    EXPECT_TRUE(validate(spec_with(ci))) << ok;
  }
}

TEST(CloudInitValidation, PasswordHashNeverClearText) {
  for (std::string bad : std::vector<std::string>{"hunter2", "$6$", "$6$salt$", "$9$salt$hash", "$6$sa lt$hash",
                          "$6$salt$hash\n"}) {
    auto ci = good();
    ci.users[0].password_hash = bad;
    expect_field(validate(spec_with(ci)), "cloud_init.users[0].password_hash");
  }
  for (std::string ok : std::vector<std::string>{"$y$j9T$abcdefgh$ABCDEFGHIJ0123456789./", "$1$salt$hash",
                         "$5$salt$hash"}) {
    auto ci = good();
    ci.users[0].password_hash = ok;
    EXPECT_TRUE(validate(spec_with(ci))) << ok;
  }
}

TEST(CloudInitValidation, Network) {
  auto nic = [](CloudInitNic n) {
    auto ci = good();
    ci.network = {n};
    return validate(spec_with(ci));
  };
  EXPECT_TRUE(nic(CloudInitNic{0, true, "", "", {}}));
  EXPECT_TRUE(nic(CloudInitNic{0, false, "192.0.2.10/24", "192.0.2.1", {"192.0.2.53"}}));
  EXPECT_TRUE(nic(CloudInitNic{0, false, "2001:db8::10/64", "2001:db8::1", {}}));
  expect_field(nic(CloudInitNic{1, true, "", "", {}}), "cloud_init.network[0].nic");
  expect_field(nic(CloudInitNic{0, false, "", "", {}}), "cloud_init.network[0].address");
  expect_field(nic(CloudInitNic{0, true, "192.0.2.10/24", "", {}}), "cloud_init.network[0].address");
  expect_field(nic(CloudInitNic{0, false, "192.0.2.10", "", {}}), "cloud_init.network[0].address");
  expect_field(nic(CloudInitNic{0, false, "192.0.2.10/33", "", {}}), "cloud_init.network[0].address");
  expect_field(nic(CloudInitNic{0, false, "300.0.2.10/24", "", {}}), "cloud_init.network[0].address");
  expect_field(nic(CloudInitNic{0, false, "192.0.2.10/24", "2001:db8::1", {}}),
               "cloud_init.network[0].gateway");
  expect_field(nic(CloudInitNic{0, true, "", "", {"dns.example"}}),
               "cloud_init.network[0].nameservers[0]");
}

TEST(CloudInitValidation, UserData) {
  auto ud = [](std::string s) {
    auto ci = good();
    ci.user_data = std::move(s);
    return validate(spec_with(ci));
  };
  EXPECT_TRUE(ud("#cloud-config\npackages: [htop]\n"));
  EXPECT_TRUE(ud("#!/bin/sh\necho\thi\n"));
  expect_field(ud("packages: [htop]\n"), "cloud_init.user_data");
  expect_field(ud("#!/bin/sh\necho \x1b[31m\n"), "cloud_init.user_data");
  expect_field(ud("#!/bin/sh\n" + std::string(kMaxUserDataBytes, 'x')), "cloud_init.user_data");
}

TEST(CloudInitJson, StrictRoundTrip) {
  VmSpec s = spec_with(good());
  s.cloud_init->network = {CloudInitNic{0, false, "192.0.2.10/24", "192.0.2.1", {"192.0.2.53"}}};
  s.cloud_init->user_data = "#!/bin/sh\ntrue\n";
  auto back = vm_spec_from_json(to_json(s));
  ASSERT_TRUE(back) << back.error().to_string();
  ASSERT_TRUE(back->cloud_init);
  EXPECT_EQ(to_json(*back->cloud_init), to_json(*s.cloud_init));

  json j = to_json(s);
  j["cloud_init"]["password"] = "hunter2";
  auto r = vm_spec_from_json(j);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().field, "cloud_init.password");
  j = to_json(s);
  j["cloud_init"]["users"][0]["sudo"] = "yes";
  r = vm_spec_from_json(j);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().field, "cloud_init.users[0].sudo");
  j = to_json(s);
  j["cloud_init"]["users"][0]["ssh_authorized_keys"] = {1};
  r = vm_spec_from_json(j);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().field, "cloud_init.users[0].ssh_authorized_keys[0]");
  auto alone = cloud_init_from_json(json{{"hostname", "x_y"}}, 0);
  ASSERT_FALSE(alone);
  EXPECT_EQ(alone.error().field, "cloud_init.hostname");
  EXPECT_FALSE(to_json(spec_with(good())).dump().empty());
  json no_ci = to_json(spec_with(good()));
  no_ci.erase("cloud_init");
  auto plain = vm_spec_from_json(no_ci);
  ASSERT_TRUE(plain);
  EXPECT_FALSE(plain->cloud_init);
}

TEST(CloudInitSeed, RendersExactDocuments) {
  VmSpec s = spec_with(good());
  s.cloud_init->network = {CloudInitNic{0, false, "192.0.2.10/24", "192.0.2.1", {"192.0.2.53"}}};
  auto seed = render_cloud_init_seed(s);
  ASSERT_TRUE(seed) << seed.error().to_string();
  EXPECT_EQ(seed->meta_data,
            "{\n  \"instance-id\": \"3f2504e0-4f89-41d3-9a0c-0305e82c3301\",\n"
            "  \"local-hostname\": \"web-1.example.org\"\n}\n");
  ASSERT_TRUE(seed->user_data.starts_with("#cloud-config\n{"));
  json cc = json::parse(seed->user_data.substr(seed->user_data.find('\n') + 1));
  EXPECT_EQ(cc["hostname"], "web-1");
  EXPECT_EQ(cc["fqdn"], "web-1.example.org");
  EXPECT_EQ(cc["preserve_hostname"], false);
  ASSERT_EQ(cc["users"].size(), 1u);
  EXPECT_EQ(cc["users"][0]["name"], "alice");
  EXPECT_EQ(cc["users"][0]["ssh_authorized_keys"], json::array({kKey}));
  EXPECT_EQ(cc["users"][0]["passwd"], kHash);
  EXPECT_EQ(cc["users"][0]["lock_passwd"], false);
  EXPECT_EQ(cc["users"][0]["sudo"], "ALL=(ALL) NOPASSWD:ALL");
  EXPECT_EQ(cc["users"][0]["groups"], "adm, sudo");
  EXPECT_EQ(cc["bootcmd"][0][1], "instance");  // new machine-id once per instance (clones)
  json net = json::parse(seed->network_config);
  EXPECT_EQ(net, json::parse(R"({"version": 2, "ethernets": {"nic0": {
      "match": {"macaddress": "52:54:00:ab:34:56"}, "dhcp4": false,
      "addresses": ["192.0.2.10/24"], "gateway4": "192.0.2.1",
      "nameservers": {"addresses": ["192.0.2.53"]}}}})"));
  // Deterministic.
  EXPECT_EQ(render_cloud_init_seed(s)->user_data, seed->user_data);
}

TEST(CloudInitSeed, DefaultsAndClones) {
  VmSpec s = spec_with(CloudInit{});
  auto seed = render_cloud_init_seed(s);
  ASSERT_TRUE(seed);
  EXPECT_NE(seed->meta_data.find("\"local-hostname\": \"web-1\""), std::string::npos);
  EXPECT_TRUE(seed->network_config.empty());
  json cc = json::parse(seed->user_data.substr(14));
  EXPECT_FALSE(cc.contains("users"));
  // A clone has a new uuid: a new instance-id, so cloud-init runs again in it.
  VmSpec clone = s;
  clone.uuid = "9a2504e0-4f89-41d3-9a0c-0305e82c3302";
  EXPECT_NE(render_cloud_init_seed(clone)->meta_data, seed->meta_data);
  s.uuid.clear();
  EXPECT_FALSE(render_cloud_init_seed(s));
}

TEST(CloudInitSeed, ExtraUserDataIsASecondMimePart) {
  auto ci = good();
  ci.user_data = "#!/bin/sh\necho ==strata-cloud-init== >/tmp/x";
  auto seed = render_cloud_init_seed(spec_with(ci));
  ASSERT_TRUE(seed);
  const std::string& u = seed->user_data;
  EXPECT_TRUE(u.starts_with("Content-Type: multipart/mixed; boundary=\"==strata-cloud-init-0==\""))
      << u;
  EXPECT_NE(u.find("Content-Type: text/cloud-config"), std::string::npos);
  EXPECT_NE(u.find("Content-Type: text/x-shellscript"), std::string::npos);
  EXPECT_NE(u.find("echo ==strata-cloud-init== >/tmp/x\n"), std::string::npos);
  EXPECT_TRUE(u.ends_with("--==strata-cloud-init-0==--\n"));
}

}  // namespace
}  // namespace strata::model
