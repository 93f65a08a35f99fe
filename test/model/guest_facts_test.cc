// Guest facts: qemu-guest-agent 7.2 replies (as a Debian 12 guest sends them) -> GuestFacts,
// refusals of malformed or oversized replies (naming the member, facts unchanged), bounds,
// and the JSON round trip the manager's store uses.
#include "strata/model/guest_facts.h"

#include <gtest/gtest.h>

#include <string>

namespace strata::model {
namespace {

using nlohmann::json;

const char* kOsinfo =
    R"({"return": {"name": "Debian GNU/Linux", "kernel-release": "6.1.0-27-cloud-amd64",)"
    R"J( "version": "12 (bookworm)", "pretty-name": "Debian GNU/Linux 12 (bookworm)",)J"
    R"( "version-id": "12", "kernel-version": "#1 SMP PREEMPT_DYNAMIC Debian 6.1.115-1",)"
    R"( "machine": "x86_64", "id": "debian"}})";
const char* kHostname = R"({"return": {"host-name": "ci-guest"}})";
const char* kInterfaces =
    R"({"return": [{"name": "lo", "ip-addresses": [{"ip-address-type": "ipv4",)"
    R"( "ip-address": "127.0.0.1", "prefix": 8}, {"ip-address-type": "ipv6", "ip-address": "::1",)"
    R"( "prefix": 128}], "statistics": {"tx-packets": 0}, "hardware-address": "00:00:00:00:00:00"},)"
    R"( {"name": "eth0", "ip-addresses": [{"ip-address-type": "ipv4", "ip-address": "10.0.2.15",)"
    R"( "prefix": 24}, {"ip-address-type": "ipv6", "ip-address": "fe80::5054:ff:fe12:3456%eth0",)"
    R"( "prefix": 64}], "statistics": {"rx-bytes": 1234}, "hardware-address": "52:54:00:12:34:AB"}]})";

TEST(GuestFacts, ParsesTheRepliesOfARealGuestAgent) {
  GuestFacts f;
  ASSERT_TRUE(apply_guest_osinfo(kOsinfo, f));
  ASSERT_TRUE(apply_guest_hostname(kHostname, f));
  ASSERT_TRUE(apply_guest_interfaces(kInterfaces, f));
  EXPECT_EQ(f.os_name, "Debian GNU/Linux 12 (bookworm)");
  EXPECT_EQ(f.os_id, "debian");
  EXPECT_EQ(f.os_version, "12");
  EXPECT_EQ(f.kernel_release, "6.1.0-27-cloud-amd64");
  EXPECT_EQ(f.hostname, "ci-guest");
  ASSERT_EQ(f.interfaces.size(), 1u);  // loopback left out
  EXPECT_EQ(f.interfaces[0].name, "eth0");
  EXPECT_EQ(f.interfaces[0].mac, "52:54:00:12:34:ab");
  EXPECT_EQ(f.interfaces[0].addresses,
            (std::vector<std::string>{"10.0.2.15/24", "fe80::5054:ff:fe12:3456/64"}));
}

TEST(GuestFacts, AnErrorReplyIsFailedPrecondition) {
  GuestFacts f;
  auto r = apply_guest_hostname(
      R"({"error": {"class": "CommandNotFound", "desc": "The command guest-get-host-name has not been found"}})",
      f);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::failed_precondition);
  EXPECT_NE(r.error().message.find("has not been found"), std::string::npos);
}

TEST(GuestFacts, MalformedRepliesAreRefusedNamingTheMemberAndChangeNothing) {
  GuestFacts before;
  ASSERT_TRUE(apply_guest_osinfo(kOsinfo, before));
  ASSERT_TRUE(apply_guest_hostname(kHostname, before));
  ASSERT_TRUE(apply_guest_interfaces(kInterfaces, before));
  struct Case {
    Status (*apply)(std::string_view, GuestFacts&);
    std::string reply;
    std::string field;
  } cases[] = {
      {apply_guest_osinfo, "not json", "guest-get-osinfo"},
      {apply_guest_osinfo, R"({"return": []})", "guest-get-osinfo"},
      {apply_guest_osinfo, R"({"no-return": 1})", "guest-get-osinfo"},
      {apply_guest_osinfo, R"({"return": {"pretty-name": 7}})", "guest-get-osinfo.pretty-name"},
      {apply_guest_osinfo, R"({"return": {"id": "deb\u001b[31mian"}})", "guest-get-osinfo.id"},
      {apply_guest_osinfo, R"({"return": {"id": ")" + std::string(300, 'x') + R"("}})",
       "guest-get-osinfo.id"},
      {apply_guest_hostname, R"({"return": {"host-name": "evil host; rm -rf"}})",
       "guest-get-host-name.host-name"},
      {apply_guest_hostname, R"({"return": {}})", "guest-get-host-name.host-name"},
      {apply_guest_interfaces, R"({"return": {}})", "guest-network-get-interfaces"},
      {apply_guest_interfaces, R"({"return": [{"name": "eth0", "hardware-address": "zz"}]})",
       "guest-network-get-interfaces[0].hardware-address"},
      {apply_guest_interfaces,
       R"({"return": [{"name": "eth0", "ip-addresses": [{"ip-address": "300.1.1.1", "prefix": 24}]}]})",
       "guest-network-get-interfaces[0].ip-addresses[0].ip-address"},
      {apply_guest_interfaces,
       R"({"return": [{"name": "eth0", "ip-addresses": [{"ip-address": "10.0.0.1", "prefix": 200}]}]})",
       "guest-network-get-interfaces[0].ip-addresses[0].prefix"},
      {apply_guest_interfaces, R"({"return": [{"ip-addresses": []}]})",
       "guest-network-get-interfaces[0].name"},
      // Nesting beyond the parser's bound.
      {apply_guest_interfaces, R"({"return": [[[[[[[[[[[[1]]]]]]]]]]]]})",
       "guest-network-get-interfaces"},
  };
  for (const auto& c : cases) {
    GuestFacts f = before;
    auto r = c.apply(c.reply, f);
    ASSERT_FALSE(r) << c.reply;
    EXPECT_EQ(r.error().code, ErrorCode::invalid_argument) << c.reply;
    EXPECT_EQ(r.error().field, c.field) << c.reply;
    EXPECT_EQ(f, before) << c.reply;
  }
  GuestFacts f;
  std::string huge = R"({"return": {"host-name": ")" + std::string(kMaxGuestReplyBytes, 'a') + "\"}}";
  EXPECT_FALSE(apply_guest_hostname(huge, f));
}

TEST(GuestFacts, InterfacesAndAddressesAreBounded) {
  json ifs = json::array();
  for (int i = 0; i < 40; ++i) {
    json addrs = json::array();
    for (int a = 0; a < 40; ++a)
      addrs.push_back({{"ip-address", "10.0." + std::to_string(i) + "." + std::to_string(a)},
                       {"prefix", 24}});
    ifs.push_back({{"name", "eth" + std::to_string(i)}, {"ip-addresses", addrs}});
  }
  GuestFacts f;
  ASSERT_TRUE(apply_guest_interfaces(json{{"return", ifs}}.dump(), f));
  ASSERT_EQ(f.interfaces.size(), kMaxGuestInterfaces);
  for (const auto& i : f.interfaces) EXPECT_EQ(i.addresses.size(), kMaxGuestAddresses);
}

TEST(GuestFacts, JsonRoundTripsAndIsChecked) {
  GuestFacts f;
  ASSERT_TRUE(apply_guest_osinfo(kOsinfo, f));
  ASSERT_TRUE(apply_guest_hostname(kHostname, f));
  ASSERT_TRUE(apply_guest_interfaces(kInterfaces, f));
  f.updated_unix_ms = 1764500000000;
  auto back = guest_facts_from_json(to_json(f));
  ASSERT_TRUE(back) << back.error().to_string();
  EXPECT_EQ(*back, f);
  json bad = to_json(f);
  bad["interfaces"][0]["addresses"][0] = "10.0.2.15";  // no prefix
  auto r = guest_facts_from_json(bad);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().field, "guest.interfaces[0].addresses[0]");
  bad = to_json(f);
  bad["hostname"] = std::string("a\nb");
  EXPECT_EQ(guest_facts_from_json(bad).error().field, "guest.hostname");
  EXPECT_FALSE(guest_facts_from_json(json::array()));
}

}  // namespace
}  // namespace strata::model
