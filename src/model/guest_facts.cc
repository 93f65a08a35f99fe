// qemu-guest-agent replies -> GuestFacts, and GuestFacts <-> JSON (see guest_facts.h).
// Everything a guest says is bounded and checked here before the agent keeps it.
#include "strata/model/guest_facts.h"

#include "strata/common/json.h"
#include "strata/model/validation.h"

namespace strata::model {
namespace {

using nlohmann::json;

constexpr JsonLimits kReplyLimits{.max_depth = 8, .max_values = 20000};

// A fact string: printable ASCII or UTF-8 bytes >= 0x80 (an OS name may hold them), no
// control characters, at most kMaxGuestFactBytes.
Status fact_string(const json& v, const std::string& field, std::string& out) {
  if (!v.is_string()) return invalid_argument(field, "expected a string");
  const auto& s = v.get_ref<const std::string&>();
  if (s.size() > kMaxGuestFactBytes)
    return invalid_argument(field, "longer than " + std::to_string(kMaxGuestFactBytes) + " bytes");
  for (unsigned char c : s)
    if (c < 0x20 || c == 0x7f) return invalid_argument(field, "control character");
  out = s;
  return {};
}

// {"return": R} -> R; {"error": ...} -> failed_precondition.
Result<json> reply_value(std::string_view reply, const char* command) {
  if (reply.size() > kMaxGuestReplyBytes)
    return invalid_argument(command, "reply longer than " +
                                         std::to_string(kMaxGuestReplyBytes) + " bytes");
  auto j = parse_json(reply, kReplyLimits);
  if (!j) return invalid_argument(command, "reply is not JSON: " + j.error().message);
  if (!j->is_object()) return invalid_argument(command, "reply is not an object");
  if (auto e = j->find("error"); e != j->end()) {
    std::string desc;
    if (e->is_object() && e->contains("desc") && (*e)["desc"].is_string())
      (void)fact_string((*e)["desc"], command, desc);
    return make_error(ErrorCode::failed_precondition,
                      std::string(command) + " failed in the guest: " + desc);
  }
  auto r = j->find("return");
  if (r == j->end()) return invalid_argument(command, "reply has no \"return\"");
  return *r;
}

// Optional string member: absent leaves `out` empty.
Status optional_fact(const json& obj, const char* key, const std::string& base, std::string& out) {
  auto it = obj.find(key);
  if (it == obj.end()) return {};
  return fact_string(*it, base + "." + key, out);
}

bool is_mac(std::string_view m) {
  if (m.size() != 17) return false;
  for (size_t i = 0; i < m.size(); ++i) {
    char c = m[i];
    bool hex = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
    if (i % 3 == 2 ? c != ':' : !hex) return false;
  }
  return true;
}

std::string lower_hex(std::string s) {
  for (char& c : s)
    if (c >= 'A' && c <= 'F') c = static_cast<char>(c - 'A' + 'a');
  return s;
}

Status read_address(const json& a, const std::string& field, std::string& out) {
  if (!a.is_object()) return invalid_argument(field, "expected an object");
  std::string ip;
  auto it = a.find("ip-address");
  if (it == a.end()) return invalid_argument(field + ".ip-address", "missing");
  if (auto s = fact_string(*it, field + ".ip-address", ip); !s) return s;
  auto p = a.find("prefix");
  if (p == a.end() || !p->is_number_unsigned() || p->get<uint64_t>() > 128)
    return invalid_argument(field + ".prefix", "expected 0..128");
  // A link-local IPv6 address may carry a zone ("fe80::1%eth0"): drop it.
  if (auto pct = ip.find('%'); pct != std::string::npos) ip.resize(pct);
  std::string cidr = ip + "/" + std::to_string(p->get<uint64_t>());
  if (auto s = validate_ip(field + ".ip-address", cidr, true, nullptr); !s) return s;
  out = std::move(cidr);
  return {};
}

Status read_interface(const json& i, const std::string& field, GuestInterface& out) {
  if (!i.is_object()) return invalid_argument(field, "expected an object");
  auto n = i.find("name");
  if (n == i.end()) return invalid_argument(field + ".name", "missing");
  if (auto s = fact_string(*n, field + ".name", out.name); !s) return s;
  if (out.name.empty()) return invalid_argument(field + ".name", "empty");
  if (auto m = i.find("hardware-address"); m != i.end()) {
    std::string mac;
    if (auto s = fact_string(*m, field + ".hardware-address", mac); !s) return s;
    if (!mac.empty() && !is_mac(mac))
      return invalid_argument(field + ".hardware-address", "not a MAC address");
    out.mac = lower_hex(mac);
  }
  if (auto a = i.find("ip-addresses"); a != i.end()) {
    if (!a->is_array()) return invalid_argument(field + ".ip-addresses", "expected an array");
    for (size_t k = 0; k < a->size() && out.addresses.size() < kMaxGuestAddresses; ++k) {
      std::string addr;
      if (auto s = read_address((*a)[k], field + ".ip-addresses[" + std::to_string(k) + "]", addr);
          !s)
        return s;
      out.addresses.push_back(std::move(addr));
    }
  }
  return {};
}

}  // namespace

Status apply_guest_osinfo(std::string_view reply, GuestFacts& facts) {
  auto r = reply_value(reply, "guest-get-osinfo");
  if (!r) return tl::unexpected(r.error());
  if (!r->is_object()) return invalid_argument("guest-get-osinfo", "\"return\" is not an object");
  GuestFacts f = facts;
  const std::string base = "guest-get-osinfo";
  f.os_name.clear();
  f.os_id.clear();
  f.os_version.clear();
  f.kernel_release.clear();
  if (auto s = optional_fact(*r, "pretty-name", base, f.os_name); !s) return s;
  if (f.os_name.empty())
    if (auto s = optional_fact(*r, "name", base, f.os_name); !s) return s;
  if (auto s = optional_fact(*r, "id", base, f.os_id); !s) return s;
  if (auto s = optional_fact(*r, "version-id", base, f.os_version); !s) return s;
  if (auto s = optional_fact(*r, "kernel-release", base, f.kernel_release); !s) return s;
  facts = std::move(f);
  return {};
}

Status apply_guest_hostname(std::string_view reply, GuestFacts& facts) {
  auto r = reply_value(reply, "guest-get-host-name");
  if (!r) return tl::unexpected(r.error());
  if (!r->is_object()) return invalid_argument("guest-get-host-name", "\"return\" is not an object");
  std::string host;
  auto it = r->find("host-name");
  if (it == r->end()) return invalid_argument("guest-get-host-name.host-name", "missing");
  if (auto s = fact_string(*it, "guest-get-host-name.host-name", host); !s) return s;
  if (!host.empty())
    if (auto s = validate_hostname("guest-get-host-name.host-name", host); !s) return s;
  facts.hostname = std::move(host);
  return {};
}

Status apply_guest_interfaces(std::string_view reply, GuestFacts& facts) {
  auto r = reply_value(reply, "guest-network-get-interfaces");
  if (!r) return tl::unexpected(r.error());
  if (!r->is_array())
    return invalid_argument("guest-network-get-interfaces", "\"return\" is not an array");
  std::vector<GuestInterface> out;
  for (size_t i = 0; i < r->size() && out.size() < kMaxGuestInterfaces; ++i) {
    GuestInterface gi;
    if (auto s = read_interface((*r)[i], "guest-network-get-interfaces[" + std::to_string(i) + "]",
                                gi);
        !s)
      return s;
    if (gi.name == "lo") continue;
    out.push_back(std::move(gi));
  }
  facts.interfaces = std::move(out);
  return {};
}

json to_json(const GuestFacts& f) {
  json ifs = json::array();
  for (const auto& i : f.interfaces)
    ifs.push_back({{"name", i.name}, {"mac", i.mac}, {"addresses", i.addresses}});
  return {{"os_name", f.os_name},   {"os_id", f.os_id},
          {"os_version", f.os_version}, {"kernel_release", f.kernel_release},
          {"hostname", f.hostname}, {"interfaces", std::move(ifs)},
          {"updated_ms", f.updated_unix_ms}};
}

Result<GuestFacts> guest_facts_from_json(const json& j) {
  if (!j.is_object()) return invalid_argument("guest", "expected an object");
  GuestFacts f;
  const std::string base = "guest";
  if (auto s = optional_fact(j, "os_name", base, f.os_name); !s) return tl::unexpected(s.error());
  if (auto s = optional_fact(j, "os_id", base, f.os_id); !s) return tl::unexpected(s.error());
  if (auto s = optional_fact(j, "os_version", base, f.os_version); !s)
    return tl::unexpected(s.error());
  if (auto s = optional_fact(j, "kernel_release", base, f.kernel_release); !s)
    return tl::unexpected(s.error());
  if (auto s = optional_fact(j, "hostname", base, f.hostname); !s)
    return tl::unexpected(s.error());
  if (auto u = j.find("updated_ms"); u != j.end()) {
    if (!u->is_number_integer()) return invalid_argument("guest.updated_ms", "expected an integer");
    f.updated_unix_ms = u->get<int64_t>();
  }
  if (auto ifs = j.find("interfaces"); ifs != j.end()) {
    if (!ifs->is_array() || ifs->size() > kMaxGuestInterfaces)
      return invalid_argument("guest.interfaces", "expected an array of at most " +
                                                      std::to_string(kMaxGuestInterfaces));
    for (size_t i = 0; i < ifs->size(); ++i) {
      const json& e = (*ifs)[i];
      const std::string p = "guest.interfaces[" + std::to_string(i) + "]";
      if (!e.is_object()) return invalid_argument(p, "expected an object");
      GuestInterface gi;
      if (auto s = optional_fact(e, "name", p, gi.name); !s) return tl::unexpected(s.error());
      if (auto s = optional_fact(e, "mac", p, gi.mac); !s) return tl::unexpected(s.error());
      if (!gi.mac.empty() && !is_mac(gi.mac)) return invalid_argument(p + ".mac", "not a MAC");
      if (auto a = e.find("addresses"); a != e.end()) {
        if (!a->is_array() || a->size() > kMaxGuestAddresses)
          return invalid_argument(p + ".addresses", "expected an array of at most " +
                                                        std::to_string(kMaxGuestAddresses));
        for (size_t k = 0; k < a->size(); ++k) {
          const std::string af = p + ".addresses[" + std::to_string(k) + "]";
          std::string addr;
          if (auto s = fact_string((*a)[k], af, addr); !s) return tl::unexpected(s.error());
          if (auto s = validate_ip(af, addr, true, nullptr); !s) return tl::unexpected(s.error());
          gi.addresses.push_back(std::move(addr));
        }
      }
      f.interfaces.push_back(std::move(gi));
    }
  }
  return f;
}

}  // namespace strata::model
