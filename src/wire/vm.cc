// strata.agent.v1 messages <-> the model's VM types: one conversion for the agent service
// and its clients (the manager, `strata-agent ctl`).
#include "strata/wire/vm.h"

#include <fmt/format.h>

#include "strata/model/validation.h"
#include "strata/model/vm_spec_json.h"

namespace strata::wire {

v1::VmState to_proto(model::VmState state) {
  switch (state) {
    case model::VmState::defined:
      return v1::VM_STATE_DEFINED;
    case model::VmState::starting:
      return v1::VM_STATE_STARTING;
    case model::VmState::running:
      return v1::VM_STATE_RUNNING;
    case model::VmState::paused:
      return v1::VM_STATE_PAUSED;
    case model::VmState::shutting_down:
      return v1::VM_STATE_SHUTTING_DOWN;
    case model::VmState::stopped:
      return v1::VM_STATE_STOPPED;
    case model::VmState::crashed:
      return v1::VM_STATE_CRASHED;
  }
  return v1::VM_STATE_UNSPECIFIED;
}

Result<model::VmState> from_proto(v1::VmState state) {
  switch (state) {
    case v1::VM_STATE_DEFINED:
      return model::VmState::defined;
    case v1::VM_STATE_STARTING:
      return model::VmState::starting;
    case v1::VM_STATE_RUNNING:
      return model::VmState::running;
    case v1::VM_STATE_PAUSED:
      return model::VmState::paused;
    case v1::VM_STATE_SHUTTING_DOWN:
      return model::VmState::shutting_down;
    case v1::VM_STATE_STOPPED:
      return model::VmState::stopped;
    case v1::VM_STATE_CRASHED:
      return model::VmState::crashed;
    default:
      break;
  }
  return invalid_argument("state", fmt::format("unknown VM state {}", static_cast<int>(state)));
}

v1::DiskSpec to_proto(const model::DiskSpec& d) {
  v1::DiskSpec pd;
  pd.set_name(d.name);
  pd.set_base_image(d.base_image);
  pd.set_size_bytes(d.size_bytes);
  pd.set_boot(d.boot);
  pd.set_readonly(d.readonly);
  pd.set_datastore(d.datastore);
  pd.set_datastore_id(d.datastore_id);
  pd.set_hotplug_slot(d.hotplug_slot);
  return pd;
}

model::DiskSpec from_proto(const v1::DiskSpec& d) {
  return model::DiskSpec{d.name(),     d.base_image(), d.size_bytes(),   d.boot(),
                         d.readonly(), d.datastore(),  d.datastore_id(), d.hotplug_slot()};
}

v1::NicSpec to_proto(const model::NicSpec& n) {
  v1::NicSpec pn;
  pn.set_mode(n.mode == model::NicMode::bridge ? v1::NIC_MODE_BRIDGE : v1::NIC_MODE_USER);
  pn.set_bridge(n.bridge);
  pn.set_mac(n.mac);
  pn.set_vlan(n.vlan);
  pn.set_hotplug_slot(n.hotplug_slot);
  return pn;
}

Result<model::NicSpec> from_proto(const v1::NicSpec& n, std::string_view field) {
  model::NicSpec nic;
  switch (n.mode()) {
    case v1::NIC_MODE_UNSPECIFIED:
    case v1::NIC_MODE_USER:
      nic.mode = model::NicMode::user;
      break;
    case v1::NIC_MODE_BRIDGE:
      nic.mode = model::NicMode::bridge;
      break;
    default:
      return invalid_argument(fmt::format("{}.mode", field),
                              fmt::format("unknown NIC mode {}", static_cast<int>(n.mode())));
  }
  nic.bridge = n.bridge();
  nic.mac = n.mac();
  // Range-checked before narrowing; model::validate checks it belongs to a bridge NIC.
  if (n.vlan() > model::kMaxVlanId)
    return invalid_argument(
        fmt::format("{}.vlan", field),
        fmt::format("{} is not a VLAN id (1..{}, or 0 for none)", n.vlan(), model::kMaxVlanId));
  nic.vlan = static_cast<uint16_t>(n.vlan());
  nic.hotplug_slot = n.hotplug_slot();
  return nic;
}

v1::VmSpec to_proto(const model::VmSpec& spec) {
  v1::VmSpec out;
  out.set_name(spec.name);
  out.set_uuid(spec.uuid);
  out.set_vcpus(spec.vcpus);
  out.set_memory_mib(spec.memory_mib);
  out.set_machine(spec.machine);
  if (spec.kernel_boot) {
    auto* kb = out.mutable_kernel_boot();
    kb->set_kernel(spec.kernel_boot->kernel);
    kb->set_initrd(spec.kernel_boot->initrd);
    kb->set_cmdline(spec.kernel_boot->cmdline);
  }
  for (const auto& d : spec.disks) *out.add_disks() = to_proto(d);
  for (const auto& n : spec.nics) *out.add_nics() = to_proto(n);
  out.set_vnc(spec.vnc);
  for (const auto& [k, v] : spec.labels) (*out.mutable_labels())[k] = v;
  if (spec.cloud_init) out.set_cloud_init_json(model::to_json(*spec.cloud_init).dump());
  out.set_cpu_model(spec.cpu_model);
  out.set_cdrom(spec.cdrom);
  for (model::BootDevice b : spec.boot) out.add_boot(model::to_string(b));
  if (spec.firmware != model::Firmware::bios) out.set_firmware(model::to_string(spec.firmware));
  if (spec.watchdog) out.set_watchdog_action(model::to_string(spec.watchdog->action));
  return out;
}

Result<model::VmSpec> from_proto(const v1::VmSpec& in, std::string_view field) {
  model::VmSpec spec;
  spec.name = in.name();
  spec.uuid = in.uuid();
  if (in.vcpus() != 0) spec.vcpus = in.vcpus();
  if (in.memory_mib() != 0) spec.memory_mib = in.memory_mib();
  if (!in.machine().empty()) spec.machine = in.machine();
  if (in.has_kernel_boot()) {
    spec.kernel_boot = model::KernelBoot{in.kernel_boot().kernel(), in.kernel_boot().initrd(),
                                         in.kernel_boot().cmdline()};
  }
  for (const auto& d : in.disks()) spec.disks.push_back(from_proto(d));
  for (int i = 0; i < in.nics_size(); ++i) {
    auto nic = from_proto(in.nics(i), fmt::format("{}.nics[{}]", field, i));
    if (!nic) return tl::unexpected(nic.error());
    spec.nics.push_back(std::move(*nic));
  }
  spec.vnc = in.has_vnc() ? in.vnc() : true;
  spec.cpu_model = in.cpu_model();
  if (auto st = model::validate_cpu_model(fmt::format("{}.cpu_model", field), spec.cpu_model); !st)
    return tl::unexpected(st.error());
  for (const auto& [k, v] : in.labels()) spec.labels[k] = v;
  if (!in.cloud_init_json().empty()) {
    // Strict parse and full validation here, so bad input is an error naming the field
    // ("spec.cloud_init.users[0].password_hash") and never reaches a file or a command.
    auto ci =
        model::cloud_init_from_json_text(in.cloud_init_json(), static_cast<size_t>(in.nics_size()));
    if (!ci) {
      Error e = ci.error();
      e.field = fmt::format("{}.{}", field, e.field);
      return tl::unexpected(e);
    }
    spec.cloud_init = std::move(*ci);
  }
  spec.cdrom = in.cdrom();
  for (int i = 0; i < in.boot_size(); ++i) {
    auto b = model::boot_device_from_string(in.boot(i));
    if (!b) return invalid_argument(fmt::format("{}.boot[{}]", field, i), "must be cdrom or disk");
    spec.boot.push_back(*b);
  }
  if (!in.firmware().empty()) {
    auto f = model::firmware_from_string(in.firmware());
    if (!f) return invalid_argument(fmt::format("{}.firmware", field), "must be bios or uefi");
    spec.firmware = *f;
  }
  if (!in.watchdog_action().empty()) {
    auto a = model::watchdog_action_from_string(in.watchdog_action());
    if (!a)
      return invalid_argument(fmt::format("{}.watchdog_action", field),
                              "must be reset, shutdown, poweroff, pause, inject-nmi or none");
    spec.watchdog = model::Watchdog{*a};
  }
  return spec;
}

v1::GuestFacts to_proto(const model::GuestFacts& g) {
  v1::GuestFacts out;
  out.set_os_name(g.os_name);
  out.set_os_id(g.os_id);
  out.set_os_version(g.os_version);
  out.set_kernel_release(g.kernel_release);
  out.set_hostname(g.hostname);
  for (const auto& i : g.interfaces) {
    auto* pi = out.add_interfaces();
    pi->set_name(i.name);
    pi->set_mac(i.mac);
    for (const auto& a : i.addresses) pi->add_addresses(a);
  }
  out.set_updated_unix_ms(g.updated_unix_ms);
  return out;
}

Result<model::GuestFacts> from_proto(const v1::GuestFacts& in) {
  nlohmann::json ifs = nlohmann::json::array();
  for (const auto& i : in.interfaces()) {
    nlohmann::json addrs = nlohmann::json::array();
    for (const auto& a : i.addresses()) addrs.push_back(a);
    ifs.push_back({{"name", i.name()}, {"mac", i.mac()}, {"addresses", std::move(addrs)}});
  }
  // One set of checks for the wire and the store: guest_facts_from_json.
  return model::guest_facts_from_json({{"os_name", in.os_name()},
                                       {"os_id", in.os_id()},
                                       {"os_version", in.os_version()},
                                       {"kernel_release", in.kernel_release()},
                                       {"hostname", in.hostname()},
                                       {"interfaces", std::move(ifs)},
                                       {"updated_ms", in.updated_unix_ms()}});
}

std::string state_name(v1::VmState state) {
  auto s = from_proto(state);
  return s ? model::to_string(*s) : "unknown";
}

std::optional<model::GuestFacts> guest_facts_of(const v1::VmStatus& status) {
  if (!status.has_guest()) return std::nullopt;
  auto g = from_proto(status.guest());
  if (!g) return std::nullopt;
  return std::move(*g);
}

}  // namespace strata::wire
