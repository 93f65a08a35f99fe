// Pure request building for every command (see requests.h).
#include "strata/cli/requests.h"

#include <cctype>
#include <charconv>

#include "strata/cli/parse.h"

namespace strata::cli {

using nlohmann::json;

std::string url_escape(std::string_view text) {
  static const char* kHex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : text) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

namespace {

const std::string kApi = "/api/v1";

std::vector<std::string> split(std::string_view s, char sep) {
  std::vector<std::string> out;
  size_t start = 0;
  while (true) {
    size_t p = s.find(sep, start);
    out.emplace_back(s.substr(start, p == std::string_view::npos ? p : p - start));
    if (p == std::string_view::npos) break;
    start = p + 1;
  }
  return out;
}

std::string vm_path(const std::string& name) { return kApi + "/vms/" + url_escape(name); }

}  // namespace

std::string body_text(const ApiRequest& req, int indent) {
  if (!req.body) return {};
  return req.body->dump(indent, ' ', false, json::error_handler_t::replace);
}

Result<json> parse_disk_spec(std::string_view text) {
  json disk = json::object();
  for (const auto& part : split(text, ',')) {
    auto eq = part.find('=');
    std::string key = part.substr(0, eq);
    std::string value = eq == std::string::npos ? "" : part.substr(eq + 1);
    bool has_value = eq != std::string::npos;
    if (key == "name" && has_value && !value.empty()) {
      disk["name"] = value;
    } else if (key == "size" && has_value) {
      auto size = parse_size(value, "--disk size", 1);
      if (!size) return tl::unexpected(size.error());
      if (*size == 0) return invalid_argument("--disk", "--disk: size must be greater than zero");
      disk["size_bytes"] = *size;
    } else if (key == "image" && has_value && !value.empty()) {
      disk["image"] = value;
    } else if ((key == "boot" || key == "readonly") && !has_value) {
      disk[key] = true;
    } else if (key == "datastore" && has_value && !value.empty()) {
      disk["datastore"] = value;
    } else {
      return invalid_argument("--disk", "--disk: cannot read '" + part + "' in '" +
                                            std::string(text) +
                                            "' (expected name=N[,size=1G][,image=IMG][,boot]"
                                            "[,readonly][,datastore=NAME])");
    }
  }
  if (!disk.contains("name"))
    return invalid_argument("--disk",
                            "--disk: name=... is required in '" + std::string(text) + "'");
  if (!disk.contains("size_bytes") && !disk.contains("image"))
    return invalid_argument("--disk", "--disk " + disk["name"].get<std::string>() +
                                          ": give size=... or image=... (or both)");
  return disk;
}

Result<json> parse_nic_spec(std::string_view text) {
  auto parts = split(text, ',');
  json nic = json::object();
  if (parts[0] == "user") {
    nic["mode"] = "user";
  } else if (parts[0].rfind("bridge=", 0) == 0 && parts[0].size() > 7) {
    nic["mode"] = "bridge";
    nic["bridge"] = parts[0].substr(7);
  } else {
    return invalid_argument(
        "--nic", "--nic: expected 'user' or 'bridge=NAME', got '" + std::string(text) + "'");
  }
  for (size_t i = 1; i < parts.size(); ++i) {
    if (parts[i].rfind("mac=", 0) == 0 && parts[i].size() > 4) {
      nic["mac"] = parts[i].substr(4);
    } else if (parts[i].rfind("vlan=", 0) == 0) {
      std::string v = parts[i].substr(5);
      unsigned id = 0;
      auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), id);
      if (v.empty() || ec != std::errc() || end != v.data() + v.size() || id < 1 || id > 4094)
        return invalid_argument("--nic", "--nic: vlan must be 1..4094, got '" + v + "'");
      nic["vlan"] = id;
    } else {
      return invalid_argument("--nic", "--nic: unknown option '" + parts[i] + "'");
    }
  }
  return nic;
}

Result<std::vector<std::string>> ssh_keys_from_file(std::string_view text,
                                                    const std::string& file) {
  std::vector<std::string> keys;
  for (auto line : split(text, '\n')) {
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t'))
      line.pop_back();
    size_t start = line.find_first_not_of(" \t");
    if (start == std::string::npos || line[start] == '#') continue;
    keys.push_back(line.substr(start));
  }
  if (keys.empty())
    return invalid_argument("--ssh-key", "--ssh-key " + file + ": no public key in the file");
  return keys;
}

Result<json> parse_ip_spec(std::string_view text, size_t nic) {
  json n = {{"nic", nic}};
  const std::string expected =
      "(expected 'dhcp' or ADDRESS/PREFIX[,gw=IP][,dns=IP]..., e.g. 192.0.2.10/24,gw=192.0.2.1)";
  if (text == "dhcp") {
    n["dhcp4"] = true;
    return n;
  }
  auto parts = split(text, ',');
  if (parts[0].find('/') == std::string::npos || parts[0].front() == '/' ||
      parts[0].back() == '/')
    return invalid_argument("--ip", "--ip: cannot read '" + std::string(text) + "' " + expected);
  n["address"] = parts[0];
  for (size_t i = 1; i < parts.size(); ++i) {
    const std::string& p = parts[i];
    if (p.rfind("gw=", 0) == 0 && p.size() > 3 && !n.contains("gateway")) {
      n["gateway"] = p.substr(3);
    } else if (p.rfind("dns=", 0) == 0 && p.size() > 4) {
      n["nameservers"].push_back(p.substr(4));
    } else {
      return invalid_argument("--ip", "--ip: cannot read '" + p + "' in '" + std::string(text) +
                                          "' " + expected);
    }
  }
  return n;
}

namespace {

// The cloud_init object of the create body from the flags; null when no flag asks for it.
Result<json> cloud_init_body(const VmCreateOptions& o) {
  if (o.user.empty()) {
    const char* needs = !o.ssh_keys.empty()        ? "--ssh-key"
                        : !o.password_hash.empty() ? "--password-hash"
                        : o.sudo                   ? "--sudo"
                                                   : nullptr;
    if (needs) return invalid_argument(needs, std::string(needs) + " needs --user NAME");
  }
  if (!o.password_hash.empty()) {
    // crypt(3) only: "$id$salt$hash" ($6$, $y$, ...). The server checks it fully; this
    // catches a clear-text password before it leaves the machine.
    size_t dollars = 0;
    for (char c : o.password_hash) dollars += c == '$';
    if (o.password_hash.front() != '$' || dollars < 3)
      return invalid_argument("--password-hash",
                              "--password-hash takes a crypt(3) hash (\"$6$salt$hash\", "
                              "\"$y$...\"; e.g. from `mkpasswd -m sha-512`), never a "
                              "clear-text password");
  }
  if (o.ips.size() > o.nics.size())
    return invalid_argument("--ip", "--ip: " + std::to_string(o.ips.size()) +
                                        " given for " + std::to_string(o.nics.size()) +
                                        " --nic (one --ip per --nic, in order)");
  json ci = json::object();
  if (!o.hostname.empty()) ci["hostname"] = o.hostname;
  if (!o.user.empty()) {
    json u = {{"name", o.user}};
    if (!o.ssh_keys.empty()) u["ssh_authorized_keys"] = o.ssh_keys;
    if (!o.password_hash.empty()) u["password_hash"] = o.password_hash;
    if (o.sudo) u["sudo"] = true;
    ci["users"] = json::array({u});
  }
  for (size_t i = 0; i < o.ips.size(); ++i) {
    auto n = parse_ip_spec(o.ips[i], i);
    if (!n) return tl::unexpected(n.error());
    ci["network"].push_back(std::move(*n));
  }
  if (!o.user_data.empty()) ci["user_data"] = o.user_data;
  if (ci.empty()) return json(nullptr);
  return ci;
}

}  // namespace

Result<json> parse_key_values(const std::vector<std::string>& items, const char* flag) {
  json m = json::object();
  for (const auto& item : items) {
    auto kv = parse_key_value(item, flag);
    if (!kv) return tl::unexpected(kv.error());
    m[kv->first] = kv->second;
  }
  return m;
}

Result<ApiRequest> build_vm_create(const VmCreateOptions& o) {
  if (o.vcpus == 0) return invalid_argument("--vcpus", "--vcpus must be at least 1");
  auto mem = parse_memory_mib(o.memory, "--memory");
  if (!mem) return tl::unexpected(mem.error());
  if (!o.image.empty() && !o.kernel.empty())
    return invalid_argument("--image",
                            "--image and --kernel are exclusive: boot from a disk "
                            "image or from a kernel, not both");
  if (o.kernel.empty() && (!o.initrd.empty() || !o.cmdline.empty()))
    return invalid_argument("--kernel", "--initrd and --cmdline need --kernel");
  json body = {{"name", o.name}, {"vcpus", o.vcpus}, {"memory_mib", *mem}};
  if (!o.kernel.empty()) {
    body["kernel"] = o.kernel;
    if (!o.initrd.empty()) body["initrd"] = o.initrd;
    if (!o.cmdline.empty()) body["cmdline"] = o.cmdline;
  }
  json disks = json::array();
  if (!o.image.empty()) {
    disks.push_back({{"name", "root"}, {"image", o.image}, {"boot", true}});
    if (!o.datastore.empty()) disks.back()["datastore"] = o.datastore;
  } else if (!o.datastore.empty()) {
    return invalid_argument("--datastore", "--datastore places the --image boot disk; without "
                                           "--image use --disk ...,datastore=NAME");
  }
  for (const auto& d : o.disks) {
    auto disk = parse_disk_spec(d);
    if (!disk) return tl::unexpected(disk.error());
    for (const auto& existing : disks)
      if (existing["name"] == (*disk)["name"])
        return invalid_argument(
            "--disk", "--disk: two disks are named '" + (*disk)["name"].get<std::string>() + "'");
    disks.push_back(std::move(*disk));
  }
  if (!disks.empty()) body["disks"] = disks;
  json nics = json::array();
  for (const auto& n : o.nics) {
    auto nic = parse_nic_spec(n);
    if (!nic) return tl::unexpected(nic.error());
    nics.push_back(std::move(*nic));
  }
  if (!nics.empty()) body["nics"] = nics;
  auto labels = parse_key_values(o.labels, "--label");
  if (!labels) return tl::unexpected(labels.error());
  if (!labels->empty()) body["labels"] = *labels;
  auto selector = parse_key_values(o.selectors, "--selector");
  if (!selector) return tl::unexpected(selector.error());
  if (!selector->empty()) body["node_selector"] = *selector;
  if (!o.host.empty()) body["host"] = o.host;
  if (!o.anti_affinity_group.empty()) body["anti_affinity_group"] = o.anti_affinity_group;
  if (!o.affinity_group.empty()) body["affinity_group"] = o.affinity_group;
  auto avoid = parse_key_values(o.avoids, "--avoid");
  if (!avoid) return tl::unexpected(avoid.error());
  if (!avoid->empty()) body["avoid_selector"] = *avoid;
  if (!o.cpu_model.empty()) body["cpu_model"] = o.cpu_model;  // the server validates it
  if (o.ha_priority >= 0 && !o.ha)
    return invalid_argument("--ha-priority", "--ha-priority needs --ha");
  if (o.ha) {
    body["ha"] = {{"enabled", true}};
    if (o.ha_priority >= 0) body["ha"]["priority"] = o.ha_priority;
  }
  if (o.no_start) body["start"] = false;
  if (!o.cdrom.empty()) body["cdrom"] = o.cdrom;
  if (!o.boot.empty()) {
    json order = json::array();
    std::string_view rest = o.boot;
    while (true) {
      auto comma = rest.find(',');
      std::string item(rest.substr(0, comma));
      if (item != "cdrom" && item != "disk")
        return invalid_argument("--boot",
                                "--boot: expected a list of cdrom and disk (e.g. "
                                "cdrom,disk), got '" +
                                    o.boot + "'");
      order.push_back(item);
      if (comma == std::string_view::npos) break;
      rest.remove_prefix(comma + 1);
    }
    body["boot"] = order;
  }
  if (!o.firmware.empty()) body["firmware"] = o.firmware;
  if (!o.watchdog.empty()) body["watchdog"] = {{"model", "i6300esb"}, {"action", o.watchdog}};
  auto ci = cloud_init_body(o);
  if (!ci) return tl::unexpected(ci.error());
  if (!ci->is_null()) body["cloud_init"] = std::move(*ci);
  return ApiRequest{"POST", kApi + "/vms", body};
}

ApiRequest build_vm_list(const std::vector<std::string>& label_selector, const std::string& host) {
  std::string q;
  for (const auto& l : label_selector) q += (q.empty() ? "?" : "&") + ("label=" + url_escape(l));
  if (!host.empty()) q += (q.empty() ? "?" : "&") + ("host=" + url_escape(host));
  return {"GET", kApi + "/vms" + q, std::nullopt};
}

ApiRequest build_vm_get(const std::string& name) { return {"GET", vm_path(name), std::nullopt}; }

ApiRequest build_vm_action(const std::string& name, const std::string& verb) {
  return {"POST", vm_path(name) + "/" + verb, json::object()};
}

ApiRequest build_vm_stop(const std::string& name, bool force, std::optional<uint64_t> timeout_s) {
  json body = json::object();
  if (force) body["force"] = true;
  if (timeout_s) body["timeout_s"] = *timeout_s;
  return {"POST", vm_path(name) + "/stop", body};
}

ApiRequest build_vm_cdrom(const std::string& name, const std::optional<std::string>& image) {
  return {"POST", vm_path(name) + "/cdrom", json{{"image", image ? json(*image) : json(nullptr)}}};
}

Result<ApiRequest> build_vm_resize_disk(const std::string& name, const std::string& disk,
                                        const std::string& size) {
  auto bytes = parse_size(size, "size", 1ull << 20);
  if (!bytes) return tl::unexpected(bytes.error());
  return ApiRequest{"POST", vm_path(name) + "/disks/" + url_escape(disk) + "/resize",
                    json{{"size_bytes", *bytes}}};
}

Result<ApiRequest> build_vm_attach_disk(const std::string& name, const DiskAttachArgs& a) {
  json body{{"name", a.disk}};
  if (!a.size.empty()) {
    auto bytes = parse_size(a.size, "--size", 1ull << 20);
    if (!bytes) return tl::unexpected(bytes.error());
    body["size_bytes"] = *bytes;
  } else if (a.base_image.empty()) {
    return invalid_argument("--size", "a new blank disk needs --size (or --base IMAGE)");
  }
  if (!a.base_image.empty()) body["image"] = a.base_image;
  if (!a.datastore.empty()) body["datastore"] = a.datastore;
  if (a.readonly) body["readonly"] = true;
  return ApiRequest{"POST", vm_path(name) + "/disks", body};
}

ApiRequest build_vm_detach_disk(const std::string& name, const std::string& disk) {
  return {"DELETE", vm_path(name) + "/disks/" + url_escape(disk), std::nullopt};
}

ApiRequest build_vm_attach_nic(const std::string& name, const std::string& bridge,
                               const std::string& mac, uint32_t vlan) {
  json body{{"mode", bridge.empty() ? "user" : "bridge"}};
  if (!bridge.empty()) body["bridge"] = bridge;
  if (vlan != 0) body["vlan"] = vlan;
  if (!mac.empty()) body["mac"] = mac;
  return {"POST", vm_path(name) + "/nics", body};
}

ApiRequest build_vm_detach_nic(const std::string& name, const std::string& mac) {
  return {"DELETE", vm_path(name) + "/nics/" + url_escape(mac), std::nullopt};
}

ApiRequest build_vm_migrate_cancel(const std::string& name) {
  return {"POST", vm_path(name) + "/migrate/cancel", json::object()};
}

ApiRequest build_vm_migrate(const std::string& name, const std::string& host,
                            uint64_t max_bandwidth, uint64_t downtime_max_ms, bool tls,
                            bool auto_converge, bool postcopy) {
  json body = json::object();
  if (!host.empty()) body["host"] = host;
  if (max_bandwidth) body["max_bandwidth"] = max_bandwidth;
  if (downtime_max_ms) body["downtime_max_ms"] = downtime_max_ms;
  if (!tls) body["tls"] = false;  // absent: the cluster default
  if (auto_converge) body["auto_converge"] = true;
  if (postcopy) body["postcopy"] = true;
  return {"POST", vm_path(name) + "/migrate", body};
}

ApiRequest build_vm_delete(const std::string& name) {
  return {"DELETE", vm_path(name), std::nullopt};
}

ApiRequest build_host_list() { return {"GET", kApi + "/hosts", std::nullopt}; }

ApiRequest build_host_get(const std::string& name) {
  return {"GET", kApi + "/hosts/" + url_escape(name), std::nullopt};
}

Result<ApiRequest> build_host_label(const std::string& name,
                                    const std::vector<std::string>& edits) {
  if (edits.empty())
    return invalid_argument("labels", "give at least one label: key=value to set, key- to remove");
  json labels = json::object();
  for (const auto& e : edits) {
    if (e.size() > 1 && e.back() == '-' && e.find('=') == std::string::npos) {
      labels[e.substr(0, e.size() - 1)] = nullptr;
      continue;
    }
    auto kv = parse_key_value(e, "label");
    if (!kv) return tl::unexpected(kv.error());
    labels[kv->first] = kv->second;
  }
  return ApiRequest{"PATCH", kApi + "/hosts/" + url_escape(name), json{{"labels", labels}}};
}

ApiRequest build_host_evacuate(const std::string& name, bool partial) {
  json body = json::object();
  if (partial) body["partial"] = true;
  return {"POST", kApi + "/hosts/" + url_escape(name) + "/evacuate", body};
}

Result<ApiRequest> build_host_maintenance(const std::string& name, const std::string& on_off) {
  if (on_off != "on" && on_off != "off")
    return invalid_argument("maintenance", "maintenance takes 'on' or 'off', not '" + on_off + "'");
  return ApiRequest{"PATCH", kApi + "/hosts/" + url_escape(name),
                    json{{"maintenance", on_off == "on"}}};
}

Result<ApiRequest> build_host_cluster(const std::string& name, const std::string& cluster) {
  if (cluster.empty()) return invalid_argument("cluster", "give a cluster name");
  return ApiRequest{"PATCH", kApi + "/hosts/" + url_escape(name), json{{"cluster", cluster}}};
}

ApiRequest build_cluster_list() { return {"GET", kApi + "/clusters", std::nullopt}; }

ApiRequest build_cluster_get(const std::string& name) {
  return {"GET", kApi + "/clusters/" + url_escape(name), std::nullopt};
}

namespace {
// The server checks the model name; here only that one was given.
Status check_baseline(const std::string& cpu_baseline) {
  if (cpu_baseline.empty())
    return invalid_argument("cpu-baseline", "--cpu-baseline is auto or a QEMU CPU model");
  return {};
}
}  // namespace

Result<ApiRequest> build_cluster_create(const std::string& name, const std::string& cpu_baseline) {
  if (name.empty()) return invalid_argument("name", "give a cluster name");
  if (auto st = check_baseline(cpu_baseline); !st) return tl::unexpected(st.error());
  return ApiRequest{"POST", kApi + "/clusters", json{{"name", name}, {"cpu_baseline", cpu_baseline}}};
}

Result<ApiRequest> build_cluster_set(const std::string& name, const std::string& cpu_baseline) {
  if (auto st = check_baseline(cpu_baseline); !st) return tl::unexpected(st.error());
  return ApiRequest{"PATCH", kApi + "/clusters/" + url_escape(name),
                    json{{"cpu_baseline", cpu_baseline}}};
}

ApiRequest build_cluster_delete(const std::string& name) {
  return {"DELETE", kApi + "/clusters/" + url_escape(name), std::nullopt};
}

ApiRequest build_image_list() { return {"GET", kApi + "/images", std::nullopt}; }

ApiRequest build_image_put(const std::string& name, const std::string& kind) {
  return {"POST", kApi + "/images?name=" + url_escape(name) + "&kind=" + url_escape(kind),
          std::nullopt};
}

ApiRequest build_vm_import_plan(const std::string& format, const std::string& descriptor,
                                const std::map<std::string, std::string>& networks) {
  nlohmann::json body{{"format", format}, {"descriptor", descriptor}};
  if (!networks.empty()) body["network_map"] = networks;
  return {"POST", kApi + "/vms/import/plan", body};
}

ApiRequest build_vm_import(const std::string& format, const std::string& name,
                           const std::string& host, bool start,
                           const std::map<std::string, std::string>& networks) {
  std::string t = kApi + "/vms/import?format=" + url_escape(format);
  if (!name.empty()) t += "&name=" + url_escape(name);
  if (!host.empty()) t += "&host=" + url_escape(host);
  if (start) t += "&start=true";
  if (!networks.empty()) t += "&network_map=" + url_escape(nlohmann::json(networks).dump());
  return {"POST", t, std::nullopt};
}

ApiRequest build_import_task_find(const std::string& vm_name) {
  if (vm_name.empty())
    return {"GET", kApi + "/tasks?state=running&order=newest&limit=20", std::nullopt};
  return {"GET", kApi + "/tasks?target_id=" + url_escape(vm_name) + "&order=newest&limit=5",
          std::nullopt};
}

nlohmann::json pick_import_task(const nlohmann::json& list, const std::string& vm_name) {
  if (!list.is_object() || !list.contains("tasks") || !list["tasks"].is_array()) return nullptr;
  for (const auto& t : list["tasks"]) {
    if (!t.is_object() || t.value("kind", "") != "vm.import") continue;
    if (!vm_name.empty() && t.value("target_id", "") != vm_name) continue;
    std::string state = t.value("state", "");
    if (state == "pending" || state == "running") return t;
  }
  return nullptr;
}

ApiRequest build_image_get(const std::string& name) {
  return {"GET", kApi + "/images/" + url_escape(name), std::nullopt};
}

ApiRequest build_image_delete(const std::string& name) {
  return {"DELETE", kApi + "/images/" + url_escape(name), std::nullopt};
}

ApiRequest build_task_get(const std::string& id) {
  return {"GET", kApi + "/tasks/" + url_escape(id), std::nullopt};
}

ApiRequest build_events_list(std::optional<int64_t> after, int limit) {
  std::string q = "?limit=" + std::to_string(limit);
  if (after) q += "&after=" + std::to_string(*after);
  return {"GET", kApi + "/events" + q, std::nullopt};
}

ApiRequest build_events_stream(std::optional<int64_t> after) {
  return {"GET", kApi + "/events/stream" + (after ? "?after=" + std::to_string(*after) : ""),
          std::nullopt};
}

Result<ApiRequest> build_token_create(const std::string& name, const std::string& role,
                                      const std::string& ttl) {
  if (role != "admin" && role != "operator" && role != "viewer")
    return invalid_argument("--role",
                            "--role must be admin, operator or viewer, not '" + role + "'");
  json body = {{"name", name}, {"role", role}};
  if (!ttl.empty()) {
    auto s = parse_duration_s(ttl, "--ttl");
    if (!s) return tl::unexpected(s.error());
    body["ttl_s"] = *s;
  }
  return ApiRequest{"POST", kApi + "/tokens", body};
}

Result<ApiRequest> build_join_token_create(const std::string& ttl, int count) {
  json body = json::object();
  if (!ttl.empty()) {
    auto s = parse_duration_s(ttl, "--ttl");
    if (!s) return tl::unexpected(s.error());
    body["ttl_s"] = *s;
  }
  if (count != 0) {
    if (count < 1 || count > 10000)
      return tl::unexpected(Error{ErrorCode::invalid_argument, "--count must be 1..10000", "count"});
    body["count"] = count;
  }
  return ApiRequest{"POST", kApi + "/join-tokens", body};
}

ApiRequest build_join_token_list() { return {"GET", kApi + "/join-tokens", std::nullopt}; }

ApiRequest build_join_token_delete(const std::string& id) {
  return {"DELETE", kApi + "/join-tokens/" + url_escape(id), std::nullopt};
}

ApiRequest build_token_delete(const std::string& id) {
  return {"DELETE", kApi + "/tokens/" + url_escape(id), std::nullopt};
}

ApiRequest build_version() { return {"GET", kApi + "/version", std::nullopt}; }

ApiRequest build_console(const std::string& name, std::optional<uint64_t> tail_bytes) {
  return {"GET",
          vm_path(name) + "/console" + (tail_bytes ? "?tail=" + std::to_string(*tail_bytes) : ""),
          std::nullopt};
}

}  // namespace strata::cli
