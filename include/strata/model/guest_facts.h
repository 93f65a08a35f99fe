// Facts about a running guest, read from its qemu-guest-agent: OS, host name and IP
// addresses. The replies come from inside the guest (untrusted), so the parsers here check
// every value's type and shape and bound every size before a fact is kept. Pure: the QEMU
// driver polls the guest agent and feeds the replies in; the manager keeps the result in
// the VM's status (JSON below) and shows it as `status.guest`.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "strata/common/error.h"

namespace strata::model {

struct GuestInterface {
  std::string name;                    // "eth0"
  std::string mac;                     // "52:54:00:12:34:56" (lowercase), or empty
  std::vector<std::string> addresses;  // "10.0.2.15/24", "fe80::1/64"
  bool operator==(const GuestInterface&) const = default;
};

struct GuestFacts {
  std::string os_name;         // guest-get-osinfo pretty-name
  std::string os_id;           // id ("debian")
  std::string os_version;      // version-id ("12")
  std::string kernel_release;  // kernel-release
  std::string hostname;        // guest-get-host-name
  std::vector<GuestInterface> interfaces;  // loopback left out
  int64_t updated_unix_ms = 0;             // when they were read
  bool operator==(const GuestFacts&) const = default;
};

inline constexpr size_t kMaxGuestFactBytes = 256;      // each string
inline constexpr size_t kMaxGuestInterfaces = 16;      // further interfaces are left out
inline constexpr size_t kMaxGuestAddresses = 16;       // per interface; further left out
inline constexpr size_t kMaxGuestReplyBytes = 1 << 20;  // a longer reply is refused

// Each applies one reply (the guest agent's JSON reply text: {"return": ...}) to `facts`.
// An {"error": ...} reply is failed_precondition (the guest agent lacks the command); a
// malformed one (not JSON, wrong types, a string with control characters or too long, an
// address that is not an IP address) is invalid_argument naming the member, and `facts`
// is left unchanged.
Status apply_guest_osinfo(std::string_view reply, GuestFacts& facts);
Status apply_guest_hostname(std::string_view reply, GuestFacts& facts);
Status apply_guest_interfaces(std::string_view reply, GuestFacts& facts);

// {"os_name", "os_id", "os_version", "kernel_release", "hostname",
//  "interfaces": [{"name", "mac", "addresses": [...]}], "updated_ms"}
nlohmann::json to_json(const GuestFacts& facts);
// The same checks as the reply parsers (the manager reads it back from its store).
Result<GuestFacts> guest_facts_from_json(const nlohmann::json& j);

}  // namespace strata::model
