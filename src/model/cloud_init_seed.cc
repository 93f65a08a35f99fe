// Renders a NoCloud seed (meta-data, user-data, network-config) from a VmSpec. The
// documents are emitted as indented JSON, which is valid YAML for cloud-init's parser, so
// no hand-written YAML quoting is needed. The instance-id is the VM's uuid: a clone (new
// uuid) is a new instance to cloud-init, which then sets a new machine-id, host keys, etc.
#include "strata/model/cloud_init_seed.h"

#include <nlohmann/json.hpp>

#include "strata/model/validation.h"

namespace strata::model {
namespace {

using nlohmann::json;

std::string dump(const json& j) {
  // Inputs are validated ASCII except user_data; replace rather than throw on bad UTF-8.
  return j.dump(2, ' ', false, json::error_handler_t::replace) + "\n";
}

std::string boundary_for(const std::string& a, const std::string& b) {
  std::string boundary = "==strata-cloud-init==";
  for (int i = 0; a.find(boundary) != std::string::npos || b.find(boundary) != std::string::npos;
       ++i)
    boundary = "==strata-cloud-init-" + std::to_string(i) + "==";
  return boundary;
}

std::string part_type(const std::string& user_data) {
  if (user_data.starts_with("#cloud-config")) return "text/cloud-config";
  return "text/x-shellscript";  // "#!" (validated)
}

}  // namespace

Result<CloudInitSeed> render_cloud_init_seed(const VmSpec& spec) {
  if (!spec.cloud_init) return invalid_argument("cloud_init", "the VM has no cloud_init");
  if (spec.uuid.empty()) return invalid_argument("uuid", "not completed (empty)");
  const CloudInit& ci = *spec.cloud_init;
  if (auto s = validate_cloud_init(ci, spec.nics.size()); !s) return tl::unexpected(s.error());
  const std::string hostname = ci.hostname.empty() ? spec.name : ci.hostname;

  CloudInitSeed seed;
  seed.meta_data = dump({{"instance-id", spec.uuid}, {"local-hostname", hostname}});

  json cc = json::object();
  std::string short_name = hostname.substr(0, hostname.find('.'));
  cc["hostname"] = short_name;
  if (short_name != hostname) cc["fqdn"] = hostname;
  cc["preserve_hostname"] = false;
  cc["manage_etc_hosts"] = true;
  // A new machine-id once per instance: a clone (new uuid, so a new instance-id) of a VM
  // whose disk already holds one must not keep it (DHCP client ids, journald, D-Bus).
  // Fixed text, no input of the spec in it.
  cc["bootcmd"] = json::array({json::array(
      {"cloud-init-per", "instance", "strata-machine-id", "sh", "-c",
       "rm -f /etc/machine-id /var/lib/dbus/machine-id && systemd-machine-id-setup"})});
  if (!ci.users.empty()) {
    json users = json::array();
    for (const CloudInitUser& u : ci.users) {
      json ju = {{"name", u.name}, {"shell", "/bin/bash"}};
      if (!u.ssh_authorized_keys.empty()) ju["ssh_authorized_keys"] = u.ssh_authorized_keys;
      if (u.password_hash.empty()) {
        ju["lock_passwd"] = true;
      } else {
        ju["lock_passwd"] = false;
        ju["passwd"] = u.password_hash;  // cloud-init takes crypt(3) hashes here
      }
      if (u.sudo) ju["sudo"] = "ALL=(ALL) NOPASSWD:ALL";
      if (!u.groups.empty()) {
        std::string groups;
        for (const std::string& g : u.groups) groups += (groups.empty() ? "" : ", ") + g;
        ju["groups"] = groups;
      }
      users.push_back(std::move(ju));
    }
    cc["users"] = std::move(users);
  }
  std::string cloud_config = "#cloud-config\n" + dump(cc);
  if (ci.user_data.empty()) {
    seed.user_data = std::move(cloud_config);
  } else {
    // Two parts; cloud-init merges cloud-config parts and runs scripts.
    std::string b = boundary_for(cloud_config, ci.user_data);
    std::string extra = ci.user_data;
    if (!extra.ends_with("\n")) extra += "\n";
    seed.user_data = "Content-Type: multipart/mixed; boundary=\"" + b +
                     "\"\nMIME-Version: 1.0\n\n--" + b +
                     "\nContent-Type: text/cloud-config; charset=\"us-ascii\"\n"
                     "Content-Disposition: attachment; filename=\"strata.cfg\"\n\n" +
                     cloud_config + "\n--" + b + "\nContent-Type: " + part_type(ci.user_data) +
                     "; charset=\"utf-8\"\nContent-Disposition: attachment; "
                     "filename=\"user-data\"\n\n" +
                     extra + "\n--" + b + "--\n";
  }

  if (!ci.network.empty()) {
    json eth = json::object();
    for (const CloudInitNic& n : ci.network) {
      const std::string& mac = spec.nics[n.nic].mac;
      if (mac.empty())
        return invalid_argument("nics[" + std::to_string(n.nic) + "].mac", "not completed (empty)");
      std::string lower = mac;
      for (char& c : lower)
        if (c >= 'A' && c <= 'F') c = static_cast<char>(c - 'A' + 'a');
      json e = {{"match", {{"macaddress", lower}}}};
      if (n.dhcp4) {
        e["dhcp4"] = true;
      } else {
        e["dhcp4"] = false;
        e["addresses"] = json::array({n.address});
        if (!n.gateway.empty()) {
          int fam = 0;
          (void)validate_ip("gateway", n.gateway, false, &fam);
          e[fam == 6 ? "gateway6" : "gateway4"] = n.gateway;
        }
      }
      if (!n.nameservers.empty()) e["nameservers"] = {{"addresses", n.nameservers}};
      eth["nic" + std::to_string(n.nic)] = std::move(e);
    }
    seed.network_config = dump({{"version", 2}, {"ethernets", std::move(eth)}});
  }
  return seed;
}

}  // namespace strata::model
