// strata.agent.v1 messages <-> the agent driver's VmStatus, VmStats, VmEvent and ImageInfo.
#include "strata/wire/vm_status.h"

namespace strata::wire {

using agent::ImageInfo;
using agent::VmEvent;
using agent::VmExit;
using agent::VmStats;
using agent::VmStatus;

v1::VmStatus to_proto(const VmStatus& s) {
  v1::VmStatus out;
  *out.mutable_spec() = to_proto(s.spec);
  out.set_state(to_proto(s.state));
  out.set_pid(s.pid);
  out.set_accelerator(s.accelerator);
  if (s.last_exit) {
    auto* e = out.mutable_last_exit();
    e->set_signaled(s.last_exit->signaled);
    e->set_code(s.last_exit->code);
    e->set_reason(s.last_exit->reason);
    e->set_at_unix_ms(s.last_exit->at_unix_ms);
  }
  out.set_state_changed_unix_ms(s.state_changed_unix_ms);
  out.set_qmp_socket(s.qmp_socket);
  out.set_vnc_socket(s.vnc_socket);
  out.set_qga_socket(s.qga_socket);
  out.set_console_log(s.console_log);
  if (s.guest) *out.mutable_guest() = to_proto(*s.guest);
  out.set_cpu_model(s.cpu_model);
  return out;
}

Result<VmStatus> from_proto(const v1::VmStatus& in) {
  VmStatus s;
  auto spec = from_proto(in.spec(), "spec");
  if (!spec) return tl::unexpected(spec.error());
  s.spec = std::move(*spec);
  auto state = from_proto(in.state());
  if (!state) return tl::unexpected(state.error());
  s.state = *state;
  s.pid = in.pid();
  s.accelerator = in.accelerator();
  if (in.has_last_exit()) {
    s.last_exit = VmExit{in.last_exit().signaled(), in.last_exit().code(), in.last_exit().reason(),
                         in.last_exit().at_unix_ms()};
  }
  s.state_changed_unix_ms = in.state_changed_unix_ms();
  s.qmp_socket = in.qmp_socket();
  s.vnc_socket = in.vnc_socket();
  s.qga_socket = in.qga_socket();
  s.console_log = in.console_log();
  s.cpu_model = in.cpu_model();
  if (in.has_guest()) {
    auto g = from_proto(in.guest());
    if (!g) return tl::unexpected(g.error());
    s.guest = std::move(*g);
  }
  return s;
}

v1::VmStats to_proto(const VmStats& s) {
  v1::VmStats out;
  out.set_cpu_time_ns(s.cpu_time_ns);
  out.set_rss_bytes(s.rss_bytes);
  out.set_disk_read_bytes(s.disk_read_bytes);
  out.set_disk_write_bytes(s.disk_write_bytes);
  out.set_net_rx_bytes(s.net_rx_bytes);
  out.set_net_tx_bytes(s.net_tx_bytes);
  return out;
}

VmStats from_proto(const v1::VmStats& in) {
  VmStats s;
  s.cpu_time_ns = in.cpu_time_ns();
  s.rss_bytes = in.rss_bytes();
  s.disk_read_bytes = in.disk_read_bytes();
  s.disk_write_bytes = in.disk_write_bytes();
  s.net_rx_bytes = in.net_rx_bytes();
  s.net_tx_bytes = in.net_tx_bytes();
  return s;
}

v1::VmEvent to_proto(const VmEvent& e) {
  v1::VmEvent out;
  out.set_vm(e.vm);
  out.set_state(to_proto(e.state));
  out.set_detail(e.detail);
  out.set_at_unix_ms(e.at_unix_ms);
  return out;
}

Result<VmEvent> from_proto(const v1::VmEvent& in) {
  auto state = from_proto(in.state());
  if (!state) return tl::unexpected(state.error());
  return VmEvent{in.vm(), *state, in.detail(), in.at_unix_ms()};
}

v1::Image to_proto(const ImageInfo& image) {
  v1::Image out;
  out.set_name(image.name);
  out.set_format(image.format);
  out.set_virtual_size(image.virtual_size);
  out.set_actual_size(image.actual_size);
  out.set_backing_file(image.backing_file);
  return out;
}

}  // namespace strata::wire
