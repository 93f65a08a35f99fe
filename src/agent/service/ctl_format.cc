// ctl flag parsing and table/JSON printing.
#include "ctl_format.h"

#include <fmt/format.h>
#include <google/protobuf/util/json_util.h>

#include <cctype>
#include <charconv>
#include <sstream>

namespace strata::agent::cli {

namespace {
std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::string cur;
  std::istringstream in(s);
  while (std::getline(in, cur, sep)) out.push_back(cur);
  return out;
}
}  // namespace

Result<uint64_t> parse_size(const std::string& field, const std::string& text) {
  uint64_t value = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || p == text.data()) {
    return invalid_argument(field, "expected a size like 512M or 10G, got \"" + text + "\"");
  }
  std::string suffix(p, text.data() + text.size());
  for (auto& c : suffix) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  if (suffix.ends_with("IB")) suffix.resize(suffix.size() - 2);
  if (suffix.ends_with("B")) suffix.resize(suffix.size() - 1);
  int shift = 0;
  if (suffix.empty())
    shift = 0;
  else if (suffix == "K")
    shift = 10;
  else if (suffix == "M")
    shift = 20;
  else if (suffix == "G")
    shift = 30;
  else if (suffix == "T")
    shift = 40;
  else
    return invalid_argument(field, "unknown size suffix \"" + suffix + "\"");
  if (shift && value > (UINT64_MAX >> shift)) return invalid_argument(field, "too large");
  return value << shift;
}

Result<model::DiskSpec> parse_disk_flag(const std::string& text) {
  model::DiskSpec d;
  for (const auto& part : split(text, ',')) {
    auto eq = part.find('=');
    std::string key = part.substr(0, eq);
    std::string val = eq == std::string::npos ? "" : part.substr(eq + 1);
    if (key == "name")
      d.name = val;
    else if (key == "base")
      d.base_image = val;
    else if (key == "size") {
      auto s = parse_size("--disk size", val);
      if (!s) return tl::unexpected(s.error());
      d.size_bytes = *s;
    } else if (key == "boot" && eq == std::string::npos)
      d.boot = true;
    else if ((key == "ro" || key == "readonly") && eq == std::string::npos)
      d.readonly = true;
    else if (key == "datastore")
      d.datastore = val;
    else
      return invalid_argument(
          "--disk", "unknown part \"" + part + "\" (name=,base=,size=,boot,ro,datastore=)");
  }
  return d;
}

Result<model::NicSpec> parse_nic_flag(const std::string& text) {
  model::NicSpec n;
  bool mode_set = false;
  for (const auto& part : split(text, ',')) {
    auto eq = part.find('=');
    std::string key = part.substr(0, eq);
    std::string val = eq == std::string::npos ? "" : part.substr(eq + 1);
    if (key == "user" && eq == std::string::npos) {
      n.mode = model::NicMode::user;
      mode_set = true;
    } else if (key == "bridge" && eq != std::string::npos) {
      n.mode = model::NicMode::bridge;
      n.bridge = val;
      mode_set = true;
    } else if (key == "mac" && eq != std::string::npos) {
      n.mac = val;
    } else if (key == "vlan" && eq != std::string::npos) {
      unsigned v = 0;
      auto [p, ec] = std::from_chars(val.data(), val.data() + val.size(), v);
      if (ec != std::errc() || p != val.data() + val.size() || v < 1 || v > model::kMaxVlanId)
        return invalid_argument("--nic", "vlan must be 1..4094, got \"" + val + "\"");
      n.vlan = static_cast<uint16_t>(v);
    } else {
      return invalid_argument("--nic",
                              "unknown part \"" + part + "\" (user | bridge=BR, mac=, vlan=)");
    }
  }
  if (!mode_set) return invalid_argument("--nic", "needs \"user\" or \"bridge=BR\"");
  return n;
}

Result<std::pair<std::string, std::string>> parse_label_flag(const std::string& text) {
  auto eq = text.find('=');
  if (eq == std::string::npos || eq == 0) {
    return invalid_argument("--label", "expected key=value, got \"" + text + "\"");
  }
  return std::make_pair(text.substr(0, eq), text.substr(eq + 1));
}

std::string to_json_text(const google::protobuf::Message& m) {
  google::protobuf::util::JsonPrintOptions opts;
  opts.add_whitespace = true;
  opts.preserve_proto_field_names = true;
  opts.always_print_primitive_fields = true;
  std::string out;
  (void)google::protobuf::util::MessageToJsonString(m, &out, opts);
  return out;
}

std::string human_bytes(uint64_t b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(b);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  return u == 0 ? fmt::format("{} B", b) : fmt::format("{:.1f} {}", v, units[u]);
}

void print_vm_table(std::ostream& out, const std::vector<const v1::VmStatus*>& vms) {
  out << fmt::format("{:<24} {:<14} {:>8} {:>5} {:>8} {:<5}\n", "NAME", "STATE", "PID", "VCPU",
                     "MEM_MIB", "ACCEL");
  for (const auto* vm : vms) {
    out << fmt::format("{:<24} {:<14} {:>8} {:>5} {:>8} {:<5}\n", vm->spec().name(),
                       state_name(vm->state()), vm->pid() ? std::to_string(vm->pid()) : "-",
                       vm->spec().vcpus(), vm->spec().memory_mib(),
                       vm->accelerator().empty() ? "-" : vm->accelerator());
  }
}

void print_vm_details(std::ostream& out, const v1::VmStatus& vm) {
  const auto& s = vm.spec();
  out << fmt::format("name:        {}\nuuid:        {}\nstate:       {}\npid:         {}\n",
                     s.name(), s.uuid(), state_name(vm.state()), vm.pid());
  out << fmt::format("accelerator: {}\nvcpus:       {}\nmemory:      {} MiB\nmachine:     {}\n",
                     vm.accelerator(), s.vcpus(), s.memory_mib(), s.machine());
  if (s.has_kernel_boot()) {
    out << fmt::format("kernel:      {} initrd={} cmdline=\"{}\"\n", s.kernel_boot().kernel(),
                       s.kernel_boot().initrd(), s.kernel_boot().cmdline());
  }
  for (const auto& d : s.disks()) {
    out << fmt::format("disk:        {} base={} size={}{}{}\n", d.name(),
                       d.base_image().empty() ? "-" : d.base_image(), human_bytes(d.size_bytes()),
                       d.boot() ? " boot" : "", d.readonly() ? " ro" : "");
  }
  for (const auto& n : s.nics()) {
    out << fmt::format("nic:         {}{} mac={}{}\n",
                       n.mode() == v1::NIC_MODE_BRIDGE ? "bridge=" : "user", n.bridge(), n.mac(),
                       n.vlan() != 0 ? fmt::format(" vlan={}", n.vlan()) : "");
  }
  for (const auto& [k, v] : s.labels()) out << fmt::format("label:       {}={}\n", k, v);
  if (vm.has_last_exit()) {
    out << fmt::format("last exit:   {} {}={}\n", vm.last_exit().reason(),
                       vm.last_exit().signaled() ? "signal" : "code", vm.last_exit().code());
  }
  out << fmt::format("console log: {}\nqmp socket:  {}\nvnc socket:  {}\n", vm.console_log(),
                     vm.qmp_socket(), vm.vnc_socket().empty() ? "-" : vm.vnc_socket());
}

}  // namespace strata::agent::cli
