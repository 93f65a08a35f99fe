// The REST form of a VM (see vm_rest.h): the create body -> VmDocument, a record -> JSON.
#include "strata/manager/api/vm_rest.h"

#include <cstdlib>

#include <fmt/format.h>

#include "strata/manager/api/json_fields.h"
#include "strata/model/validation.h"
#include "strata/model/vm_spec_json.h"

namespace strata::manager {

using nlohmann::json;

Result<model::DiskSpec> disk_from_rest(const json& body, const std::string& prefix) {
  using T = JsonType;
  if (auto st = check_fields(body,
                             {{"name", T::string, true},
                              {"image", T::string},
                              {"size_bytes", T::unsigned_integer},
                              {"boot", T::boolean},
                              {"readonly", T::boolean},
                              {"datastore", T::string}},
                             prefix);
      !st)
    return tl::unexpected(st.error());
  model::DiskSpec disk;
  disk.name = body["name"].get<std::string>();
  disk.base_image = optional_string(body, "image");
  disk.size_bytes = optional_uint(body, "size_bytes", 0);
  if (disk.size_bytes > model::kMaxDiskBytes)
    return invalid_argument(prefix + "size_bytes", fmt::format("{}size_bytes must be at most {}",
                                                               prefix, model::kMaxDiskBytes));
  disk.boot = optional_bool(body, "boot", false);
  disk.readonly = optional_bool(body, "readonly", false);
  disk.datastore = optional_string(body, "datastore");
  return disk;
}

Result<model::NicSpec> nic_from_rest(const json& body, const std::string& prefix) {
  using T = JsonType;
  if (auto st = check_fields(body,
                             {{"mode", T::string, true},
                              {"bridge", T::string},
                              {"mac", T::string},
                              {"vlan", T::unsigned_integer}},
                             prefix);
      !st)
    return tl::unexpected(st.error());
  model::NicSpec nic;
  auto mode = model::nic_mode_from_string(body["mode"].get<std::string>());
  if (!mode) return invalid_argument(prefix + "mode", "mode must be \"user\" or \"bridge\"");
  nic.mode = *mode;
  nic.bridge = optional_string(body, "bridge");
  nic.mac = optional_string(body, "mac");
  // Range-checked here (a wider number would wrap); model::validate checks the rest.
  uint64_t vlan = optional_uint(body, "vlan", 0);
  if (vlan > model::kMaxVlanId)
    return invalid_argument(prefix + "vlan", fmt::format("{}vlan must be 1..{} (0: no VLAN)",
                                                         prefix, model::kMaxVlanId));
  nic.vlan = static_cast<uint16_t>(vlan);
  return nic;
}

Result<VmDocument> vm_document_from_request(const json& body, bool* start) {
  using T = JsonType;
  if (auto st = check_fields(body, {{"name", T::string, true},
                                    {"vcpus", T::unsigned_integer, true},
                                    {"memory_mib", T::unsigned_integer, true},
                                    {"machine", T::string},
                                    {"kernel", T::string},
                                    {"initrd", T::string},
                                    {"cmdline", T::string},
                                    {"disks", T::array},
                                    {"nics", T::array},
                                    {"labels", T::object},
                                    {"host", T::string},
                                    {"node_selector", T::object},
                                    {"anti_affinity_group", T::string},
                                    {"affinity_group", T::string},
                                    {"avoid_selector", T::object},
                                    {"ha", T::object},
                                    {"vnc", T::boolean},
                                    {"cloud_init", T::object},
                                    {"cpu_model", T::string},
                                    {"cdrom", T::string},
                                    {"boot", T::array},
                                    {"firmware", T::string},
                                    {"watchdog", T::object},
                                    {"start", T::boolean}});
      !st)
    return tl::unexpected(st.error());
  VmDocument d;
  model::VmSpec& s = d.spec;
  s.name = body["name"].get<std::string>();
  if (auto st = model::validate_name("name", s.name); !st) return tl::unexpected(st.error());
  uint64_t vcpus = body["vcpus"].get<uint64_t>();
  if (vcpus < 1 || vcpus > model::kMaxVcpus)
    return invalid_argument("vcpus", fmt::format("vcpus must be 1..{}", model::kMaxVcpus));
  s.vcpus = static_cast<uint32_t>(vcpus);
  s.memory_mib = body["memory_mib"].get<uint64_t>();
  if (s.memory_mib < model::kMinMemoryMib || s.memory_mib > model::kMaxMemoryMib)
    return invalid_argument("memory_mib", fmt::format("memory_mib must be {}..{}",
                                                      model::kMinMemoryMib, model::kMaxMemoryMib));
  // Optional fields may be null (= absent): read them with optional_*(), never value().
  s.machine = optional_string(body, "machine", s.machine);
  std::string kernel = optional_string(body, "kernel"), initrd = optional_string(body, "initrd"),
              cmdline = optional_string(body, "cmdline");
  if (!kernel.empty()) {
    s.kernel_boot = model::KernelBoot{kernel, initrd, cmdline};
  } else if (!initrd.empty() || !cmdline.empty()) {
    return invalid_argument(initrd.empty() ? "cmdline" : "initrd",
                            "initrd and cmdline need a kernel");
  }
  if (body.contains("disks") && body["disks"].is_array()) {
    const json& disks = body["disks"];
    if (disks.size() > model::kMaxDisks)
      return invalid_argument("disks", fmt::format("at most {} disks", model::kMaxDisks));
    for (size_t i = 0; i < disks.size(); ++i) {
      auto disk = disk_from_rest(disks[i], fmt::format("disks[{}].", i));
      if (!disk) return tl::unexpected(disk.error());
      s.disks.push_back(std::move(*disk));
    }
  }
  if (body.contains("nics") && body["nics"].is_array()) {
    const json& nics = body["nics"];
    if (nics.size() > model::kMaxNics)
      return invalid_argument("nics", fmt::format("at most {} nics", model::kMaxNics));
    for (size_t i = 0; i < nics.size(); ++i) {
      auto nic = nic_from_rest(nics[i], fmt::format("nics[{}].", i));
      if (!nic) return tl::unexpected(nic.error());
      s.nics.push_back(std::move(*nic));
    }
  }
  if (body.contains("labels") && body["labels"].is_object()) {
    auto labels = label_map(body["labels"], "labels");
    if (!labels) return tl::unexpected(labels.error());
    s.labels = std::move(*labels);
  }
  if (body.contains("node_selector") && body["node_selector"].is_object()) {
    auto sel = label_map(body["node_selector"], "node_selector");
    if (!sel) return tl::unexpected(sel.error());
    d.placement.node_selector = std::move(*sel);
  }
  d.placement.host = optional_string(body, "host");
  if (!d.placement.host.empty())
    if (auto st = model::validate_name("host", d.placement.host); !st)
      return tl::unexpected(st.error());
  d.placement.anti_affinity_group = optional_string(body, "anti_affinity_group");
  if (!d.placement.anti_affinity_group.empty())
    if (auto st = model::validate_name("anti_affinity_group", d.placement.anti_affinity_group);
        !st)
      return tl::unexpected(st.error());
  d.placement.affinity_group = optional_string(body, "affinity_group");
  if (!d.placement.affinity_group.empty()) {
    if (auto st = model::validate_name("affinity_group", d.placement.affinity_group); !st)
      return tl::unexpected(st.error());
    if (d.placement.affinity_group == d.placement.anti_affinity_group)
      return invalid_argument("affinity_group",
                              "a group cannot keep its VMs together and apart (the same name "
                              "as anti_affinity_group)");
  }
  if (body.contains("avoid_selector") && body["avoid_selector"].is_object()) {
    auto sel = label_map(body["avoid_selector"], "avoid_selector");
    if (!sel) return tl::unexpected(sel.error());
    d.placement.avoid_selector = std::move(*sel);
  }
  if (body.contains("ha") && body["ha"].is_object()) {
    if (auto st = check_fields(body["ha"], {{"enabled", T::boolean, true},
                                            {"priority", T::unsigned_integer}},
                               "ha.");
        !st)
      return tl::unexpected(st.error());
    d.ha.enabled = body["ha"]["enabled"].get<bool>();
    uint64_t prio = optional_uint(body["ha"], "priority", 0);
    if (prio > 1000) return invalid_argument("ha.priority", "ha.priority must be 0..1000");
    d.ha.priority = static_cast<int>(prio);
  }
  // vnc false: no graphical console (QEMU gets no -vnc display, the console route says so).
  s.vnc = optional_bool(body, "vnc", true);
  // cloud-init: the model's strict parser and validation (errors name the field, e.g.
  // "cloud_init.users[0].password_hash"); network entries refer to the NICs above.
  if (const json* ci = optional_member(body, "cloud_init")) {
    auto parsed = model::cloud_init_from_json(*ci, s.nics.size());
    if (!parsed) return tl::unexpected(parsed.error());
    s.cloud_init = std::move(*parsed);
  }
  // Absent: the cluster's CPU baseline (so the VM can move within its cluster).
  s.cpu_model = optional_string(body, "cpu_model");
  // Installing from an ISO (docs/internals/firmware.md): the CD-ROM's iso image, the
  // firmware boot order and the firmware; the model's validation names the field.
  s.cdrom = optional_string(body, "cdrom");
  if (const json* boot = optional_member(body, "boot")) {
    if (boot->size() > 2) return invalid_argument("boot", "at most 2 entries (cdrom, disk)");
    for (size_t i = 0; i < boot->size(); ++i) {
      const json& b = (*boot)[i];
      auto dev =
          b.is_string() ? model::boot_device_from_string(b.get<std::string>()) : std::nullopt;
      if (!dev)
        return invalid_argument(fmt::format("boot[{}]", i), "must be \"cdrom\" or \"disk\"");
      s.boot.push_back(*dev);
    }
  }
  if (std::string fw = optional_string(body, "firmware"); !fw.empty()) {
    auto f = model::firmware_from_string(fw);
    if (!f) return invalid_argument("firmware", "must be \"bios\" or \"uefi\"");
    s.firmware = *f;
  }
  // A guest watchdog (an i6300esb device and QEMU's action when it expires).
  if (const json* wd = optional_member(body, "watchdog")) {
    auto w = model::watchdog_from_json(*wd);
    if (!w) return tl::unexpected(w.error());
    s.watchdog = *w;
  }
  *start = optional_bool(body, "start", true);
  if (auto st = model::validate(s); !st) return tl::unexpected(st.error());
  if (auto st = validate_ha(d); !st) return tl::unexpected(st.error());
  return d;
}

json cloud_init_to_rest(const model::CloudInit& ci) {
  json j = model::to_json(ci);
  if (j.contains("users"))
    for (json& u : j["users"]) {
      // A password hash is a secret (it can be cracked offline): never shown again.
      u["password_set"] = u.contains("password_hash");
      u.erase("password_hash");
      if (!u.contains("sudo")) u["sudo"] = false;
    }
  // Extra user-data may hold anything (chpasswd lists, tokens): only its size is shown.
  if (j.contains("user_data")) {
    j["user_data_bytes"] = ci.user_data.size();
    j.erase("user_data");
  }
  return j;
}

nlohmann::json vm_metrics_of(const nlohmann::json& sample, const std::string& vm) {
  if (!sample.is_object() || !sample.contains("vms") || !sample["vms"].is_array()) return nullptr;
  for (const json& v : sample["vms"]) {
    if (!v.is_object() || !v.contains("name") || v["name"] != vm) continue;
    json out = json::object();
    const json stats = v.contains("stats") && v["stats"].is_object() ? v["stats"] : json::object();
    for (const char* k : {"cpu_time_ns", "rss_bytes", "disk_read_bytes", "disk_write_bytes",
                          "net_rx_bytes", "net_tx_bytes"}) {
      uint64_t n = 0;  // protobuf prints 64-bit integers as strings and leaves out zeros
      if (stats.contains(k) && stats[k].is_string()) {
        const std::string& s = stats[k].get_ref<const std::string&>();
        n = std::strtoull(s.c_str(), nullptr, 10);
      } else if (stats.contains(k) && stats[k].is_number_unsigned()) {
        n = stats[k].get<uint64_t>();
      }
      out[k] = n;
    }
    return out;
  }
  return nullptr;
}

nlohmann::json vm_to_json(const store::VmRecord& vm, const std::string& host_name) {
  json spec = json::object();
  std::string desired = vm.desired_state;
  if (auto doc = decode_vm_document(vm.spec)) {
    const model::VmSpec& s = doc->spec;
    spec = {{"vcpus", s.vcpus}, {"memory_mib", s.memory_mib}, {"machine", s.machine}};
    if (s.kernel_boot) {
      spec["kernel"] = s.kernel_boot->kernel;
      spec["initrd"] = s.kernel_boot->initrd;
      spec["cmdline"] = s.kernel_boot->cmdline;
    }
    json disks = json::array();
    for (const auto& dk : s.disks) {
      disks.push_back({{"name", dk.name},
                       {"image", dk.base_image},
                       {"size_bytes", dk.size_bytes},
                       {"boot", dk.boot},
                       {"readonly", dk.readonly},
                       {"hotplug_slot", dk.hotplug_slot}});
      if (!dk.datastore.empty()) {
        disks.back()["datastore"] = dk.datastore;
        disks.back()["datastore_id"] = dk.datastore_id;
      }
    }
    json nics = json::array();
    for (const auto& n : s.nics) {
      nics.push_back({{"mode", model::to_string(n.mode)},
                      {"bridge", n.bridge},
                      {"mac", n.mac},
                      {"hotplug_slot", n.hotplug_slot}});
      if (n.vlan != 0) nics.back()["vlan"] = n.vlan;
    }
    spec["disks"] = disks;
    spec["nics"] = nics;
    spec["uuid"] = s.uuid;
    spec["host"] = doc->placement.host;
    spec["node_selector"] = doc->placement.node_selector;
    spec["anti_affinity_group"] = doc->placement.anti_affinity_group;
    spec["affinity_group"] = doc->placement.affinity_group;
    spec["avoid_selector"] = doc->placement.avoid_selector;
    spec["ha"] = {{"enabled", doc->ha.enabled}, {"priority", doc->ha.priority}};
    spec["vnc"] = s.vnc;
    spec["cloud_init"] = s.cloud_init ? cloud_init_to_rest(*s.cloud_init) : json(nullptr);
    // "" (null here): the cluster's CPU baseline.
    spec["cpu_model"] = s.cpu_model.empty() ? json(nullptr) : json(s.cpu_model);
    spec["cdrom"] = s.cdrom.empty() ? json(nullptr) : json(s.cdrom);
    spec["boot"] = json::array();
    for (model::BootDevice b : s.boot) spec["boot"].push_back(model::to_string(b));
    spec["firmware"] = model::to_string(s.firmware);
    spec["watchdog"] = s.watchdog ? model::to_json(*s.watchdog) : json(nullptr);
    desired = desired_state_name(vm, *doc);
  }
  VmStatusDoc st = decode_vm_status(vm.status);
  // A live migration in progress: its task and phase (the target host's id until it ends).
  json migration = nullptr;
  if (auto doc = decode_vm_document(vm.spec); doc && doc->migration.active())
    migration = {{"task_id", doc->migration.task_id},
                 {"target_host_id", doc->migration.target_host_id},
                 {"phase", st.migration.phase.empty() ? "pending" : st.migration.phase}};
  // Templates and clones: whether this VM is a template, and what it was cloned from.
  bool is_template = false;
  json clone_of = nullptr;
  if (auto doc = decode_vm_document(vm.spec); doc) {
    is_template = doc->is_template;
    if (doc->clone_of.is_clone())
      clone_of = {{"source_id", doc->clone_of.source_id},
                  {"source_name", doc->clone_of.source_name},
                  {"linked", doc->clone_of.linked},
                  {"pending", doc->clone_of.pending}};
  }
  return {{"id", vm.id},
          {"name", vm.name},
          {"resource_version", vm.resource_version},
          {"template", is_template},
          {"clone_of", clone_of},
          {"spec", spec},
          {"labels", vm.labels},
          {"desired_state", desired},
          {"deletion_requested", vm.deletion_requested},
          {"host", host_name},
          {"status",
           {{"state", st.state},
            {"host", host_name},
            {"agent_state", st.agent_state},
            {"last_error", st.last_error},
            {"observed_ms", st.observed_ms},
            {"migration", migration},
            {"guest", st.guest ? model::to_json(*st.guest) : json(nullptr)},
            {"cpu_model", st.cpu_model.empty() ? json(nullptr) : json(st.cpu_model)}}},
          {"created_ms", vm.created_ms},
          {"updated_ms", vm.updated_ms}};
}

}  // namespace strata::manager
