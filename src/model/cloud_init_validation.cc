// Validation of the cloud_init part of a VmSpec. Everything here ends up in files the guest
// parses as YAML and in a disk image built by a tool, so every string is checked for its
// shape and for control characters; errors name the field ("cloud_init.users[0].name").
#include <arpa/inet.h>

#include <set>
#include <string>

#include "strata/common/ascii.h"
#include "strata/model/validation.h"

namespace strata::model {
namespace {

std::string at(const std::string& base, size_t i) { return base + "[" + std::to_string(i) + "]"; }

// The value must be printable ASCII (no control characters, no DEL, no 8-bit bytes).
Status printable_ascii(const std::string& field, std::string_view v) {
  for (size_t i = 0; i < v.size(); ++i) {
    auto u = static_cast<unsigned char>(v[i]);
    if (u < 0x20 || u > 0x7e)
      return invalid_argument(
          field, "invalid character at position " + std::to_string(i) + " (printable ASCII only)");
  }
  return {};
}

Status validate_posix_name(const std::string& field, std::string_view name) {
  if (name.empty()) return invalid_argument(field, "must not be empty");
  if (name.size() > 32) return invalid_argument(field, "longer than 32 characters");
  for (size_t i = 0; i < name.size(); ++i) {
    char c = name[i];
    bool ok = (c >= 'a' && c <= 'z') || c == '_' || (i > 0 && ((c >= '0' && c <= '9') || c == '-'));
    if (!ok)
      return invalid_argument(field, "invalid character at position " + std::to_string(i) +
                                         " (a POSIX name: [a-z_][a-z0-9_-]*)");
  }
  return {};
}

Status validate_ssh_key(const std::string& field, std::string_view key) {
  if (key.empty()) return invalid_argument(field, "must not be empty");
  if (key.size() > kMaxSshKeyBytes)
    return invalid_argument(field, "longer than " + std::to_string(kMaxSshKeyBytes) + " bytes");
  if (auto s = printable_ascii(field, key); !s) return s;
  if (!(key.starts_with("ssh-") || key.starts_with("ecdsa-") || key.starts_with("sk-")))
    return invalid_argument(field,
                            "not an OpenSSH public key (must start with ssh-, ecdsa- or sk-)");
  size_t sp = key.find(' ');
  if (sp == std::string_view::npos || sp + 1 >= key.size())
    return invalid_argument(field,
                            "not an OpenSSH public key (expected \"TYPE BASE64 [COMMENT]\")");
  for (size_t i = 0; i < sp; ++i)
    if (!is_ascii_alnum(key[i]) && key[i] != '-' && key[i] != '@' && key[i] != '.')
      return invalid_argument(field, "invalid key type");
  size_t end = key.find(' ', sp + 1);
  std::string_view blob = key.substr(sp + 1, end == std::string_view::npos ? key.npos : end - sp - 1);
  if (blob.size() < 16) return invalid_argument(field, "key data too short");
  for (char c : blob)
    if (!is_ascii_alnum(c) && c != '+' && c != '/' && c != '=')
      return invalid_argument(field, "key data is not base64");
  return {};
}

}  // namespace

Status validate_hostname(std::string_view field, std::string_view host) {
  std::string f(field);
  if (host.empty()) return invalid_argument(f, "must not be empty");
  if (host.size() > 253) return invalid_argument(f, "longer than 253 characters");
  size_t start = 0;
  while (start <= host.size()) {
    size_t dot = host.find('.', start);
    std::string_view label = host.substr(start, dot == host.npos ? host.npos : dot - start);
    if (label.empty()) return invalid_argument(f, "empty label (leading, trailing or double '.')");
    if (label.size() > 63) return invalid_argument(f, "a label is longer than 63 characters");
    for (size_t i = 0; i < label.size(); ++i)
      if (!is_ascii_alnum(label[i]) && label[i] != '-')
        return invalid_argument(f, "invalid character at position " + std::to_string(start + i) +
                                       " (allowed: A-Z a-z 0-9 '-' '.')");
    if (label.front() == '-' || label.back() == '-')
      return invalid_argument(f, "a label must not start or end with '-'");
    if (dot == host.npos) break;
    start = dot + 1;
  }
  return {};
}

Status validate_password_hash(std::string_view field, std::string_view hash) {
  std::string f(field);
  if (hash.size() > 512) return invalid_argument(f, "longer than 512 characters");
  // crypt(3) prefixes of the methods a Linux guest's libcrypt accepts; anything else (a clear
  // password above all) is refused.
  static constexpr std::string_view kPrefixes[] = {"$y$", "$gy$", "$7$", "$2b$", "$2y$",
                                                   "$2a$", "$6$", "$5$", "$1$"};
  bool known = false;
  for (std::string_view p : kPrefixes) known = known || hash.starts_with(p);
  if (!known)
    return invalid_argument(f,
                            "not a crypt(3) hash (expected \"$6$salt$hash\", \"$y$...\"; e.g. from "
                            "`mkpasswd -m sha-512`); clear-text passwords are not accepted");
  size_t dollars = 0;
  for (size_t i = 0; i < hash.size(); ++i) {
    char c = hash[i];
    if (c == '$') ++dollars;
    else if (!is_ascii_alnum(c) && c != '.' && c != '/' && c != '=' && c != ',')
      return invalid_argument(f, "invalid character at position " + std::to_string(i) +
                                     " (a crypt(3) hash: A-Z a-z 0-9 . / $ = ,)");
  }
  if (dollars < 3 || hash.back() == '$')
    return invalid_argument(f, "not a crypt(3) hash (salt and hash missing)");
  return {};
}

Status validate_ip(std::string_view field, std::string_view ip, bool with_prefix, int* family) {
  std::string f(field);
  std::string addr(ip);
  int prefix = -1;
  if (with_prefix) {
    size_t slash = addr.find('/');
    if (slash == std::string::npos)
      return invalid_argument(f, "expected ADDRESS/PREFIX (e.g. 192.0.2.10/24)");
    std::string p = addr.substr(slash + 1);
    addr.resize(slash);
    if (p.empty() || p.size() > 3) return invalid_argument(f, "invalid prefix length");
    prefix = 0;
    for (char c : p) {
      if (c < '0' || c > '9') return invalid_argument(f, "invalid prefix length");
      prefix = prefix * 10 + (c - '0');
    }
  }
  unsigned char buf[16];
  int fam = 0;
  if (addr.size() <= 15 && inet_pton(AF_INET, addr.c_str(), buf) == 1) fam = 4;
  else if (addr.size() <= 45 && inet_pton(AF_INET6, addr.c_str(), buf) == 1) fam = 6;
  else
    return invalid_argument(f, "not an IPv4 or IPv6 address");
  if (with_prefix && (prefix > (fam == 4 ? 32 : 128)))
    return invalid_argument(f, "invalid prefix length");
  if (family) *family = fam;
  return {};
}

Status validate_cloud_init(const CloudInit& ci, size_t nic_count) {
  const std::string base = "cloud_init";
  if (!ci.hostname.empty())
    if (auto s = validate_hostname(base + ".hostname", ci.hostname); !s) return s;
  if (ci.users.size() > kMaxCloudInitUsers)
    return invalid_argument(base + ".users",
                            "at most " + std::to_string(kMaxCloudInitUsers) + " users");
  std::set<std::string> names;
  for (size_t i = 0; i < ci.users.size(); ++i) {
    const CloudInitUser& u = ci.users[i];
    const std::string p = at(base + ".users", i);
    if (auto s = validate_posix_name(p + ".name", u.name); !s) return s;
    if (!names.insert(u.name).second)
      return invalid_argument(p + ".name", "duplicate user \"" + u.name + "\"");
    if (u.ssh_authorized_keys.size() > kMaxSshKeysPerUser)
      return invalid_argument(p + ".ssh_authorized_keys",
                              "at most " + std::to_string(kMaxSshKeysPerUser) + " keys");
    for (size_t k = 0; k < u.ssh_authorized_keys.size(); ++k)
      if (auto s = validate_ssh_key(at(p + ".ssh_authorized_keys", k), u.ssh_authorized_keys[k]); !s)
        return s;
    if (!u.password_hash.empty())
      if (auto s = validate_password_hash(p + ".password_hash", u.password_hash); !s) return s;
    if (u.groups.size() > 32) return invalid_argument(p + ".groups", "at most 32 groups");
    for (size_t g = 0; g < u.groups.size(); ++g)
      if (auto s = validate_posix_name(at(p + ".groups", g), u.groups[g]); !s) return s;
  }
  std::set<uint32_t> nics;
  if (ci.network.size() > kMaxNics)
    return invalid_argument(base + ".network", "more entries than NICs");
  for (size_t i = 0; i < ci.network.size(); ++i) {
    const CloudInitNic& n = ci.network[i];
    const std::string p = at(base + ".network", i);
    if (n.nic >= nic_count)
      return invalid_argument(p + ".nic", "NIC " + std::to_string(n.nic) +
                                              " does not exist (the VM has " +
                                              std::to_string(nic_count) + ")");
    if (!nics.insert(n.nic).second) return invalid_argument(p + ".nic", "NIC configured twice");
    if (n.dhcp4 == !n.address.empty())
      return invalid_argument(p + ".address", "set either dhcp4 or a static address (exactly one)");
    int fam = 0;
    if (!n.address.empty())
      if (auto s = validate_ip(p + ".address", n.address, true, &fam); !s) return s;
    if (!n.gateway.empty()) {
      if (n.dhcp4) return invalid_argument(p + ".gateway", "only with a static address");
      int gfam = 0;
      if (auto s = validate_ip(p + ".gateway", n.gateway, false, &gfam); !s) return s;
      if (gfam != fam) return invalid_argument(p + ".gateway", "not of the address's family");
    }
    if (n.nameservers.size() > kMaxNameservers)
      return invalid_argument(p + ".nameservers", "at most " + std::to_string(kMaxNameservers));
    for (size_t k = 0; k < n.nameservers.size(); ++k)
      if (auto s = validate_ip(at(p + ".nameservers", k), n.nameservers[k], false, nullptr); !s)
        return s;
  }
  if (ci.user_data.size() > kMaxUserDataBytes)
    return invalid_argument(base + ".user_data",
                            "longer than " + std::to_string(kMaxUserDataBytes) + " bytes");
  if (!ci.user_data.empty()) {
    if (!(ci.user_data.starts_with("#cloud-config\n") || ci.user_data.starts_with("#!")))
      return invalid_argument(base + ".user_data",
                              "must start with \"#cloud-config\" (a line) or \"#!\"");
    for (size_t i = 0; i < ci.user_data.size(); ++i) {
      auto u = static_cast<unsigned char>(ci.user_data[i]);
      if ((u < 0x20 && u != '\n' && u != '\t') || u == 0x7f)
        return invalid_argument(base + ".user_data", "control character at position " +
                                                         std::to_string(i) +
                                                         " (only newline and tab allowed)");
    }
  }
  return {};
}

}  // namespace strata::model
