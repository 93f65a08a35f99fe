// `strata-agent ctl` commands: one gRPC call (or stream) each, errors mapped to exit codes.
#include "ctl.h"

#include <fmt/format.h>
#include <google/protobuf/util/json_util.h>

#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "ctl_format.h"
#include "strata/agent/service/agent_cli.h"
#include "strata/agent/service/agent_client.h"
#include "strata/model/vm_spec_json.h"
#include "strata/wire/vm_status.h"

namespace strata::agent::cli {

namespace {

using Stub = v1::AgentService::Stub;

service::AgentClient connect(const CtlGlobal& g) {
  std::string target = g.address.empty() ? "unix:" + g.socket : g.address;
  return service::AgentClient(target, std::chrono::seconds(g.timeout_s));
}

int fail(const Error& e) {
  std::cerr << "error: " << e.to_string() << "\n";
  return exit_code(e.code);
}

std::string request_id(const CtlGlobal& g) {
  return g.request_id.empty() ? service::new_request_id() : g.request_id;
}

bool json(const CtlGlobal& g) { return g.output == "json"; }

template <typename T>
int print_or_fail(const CtlGlobal& g, const Result<T>& r,
                  const std::function<void(const T&)>& table) {
  if (!r) return fail(r.error());
  if (json(g))
    std::cout << to_json_text(*r);
  else
    table(*r);
  return kExitOk;
}

}  // namespace

int ctl_health(const CtlGlobal& g) {
  auto c = connect(g);
  auto r = c.call(&Stub::Health, v1::HealthRequest{});
  return print_or_fail<v1::HealthResponse>(g, r, [](const v1::HealthResponse& h) {
    std::cout << fmt::format(
        "serving:     {}\nversion:     {}\nhostname:    {}\naccelerator: {}\n"
        "vms:         {}\n",
        h.serving(), h.agent_version(), h.hostname(), h.accelerator(), h.vm_count());
  });
}

int ctl_inventory(const CtlGlobal& g) {
  auto c = connect(g);
  auto r = c.call(&Stub::GetInventory, v1::GetInventoryRequest{});
  if (!r) return fail(r.error());
  const auto& inv = r->inventory();
  if (json(g)) {
    // The full inventory document, as the manager stores it.
    try {
      std::cout << nlohmann::json::parse(inv.inventory_json()).dump(2) << "\n";
    } catch (const nlohmann::json::exception&) {
      std::cout << inv.inventory_json() << "\n";
    }
    return kExitOk;
  }
  std::cout << fmt::format(
      "hostname:    {}\nos:          {} (kernel {})\ncpu:         {} ({} sockets, {} cores, {} "
      "threads)\nmemory:      {}\nqemu:        {}\naccelerator: {} ({})\nagent:       {}\n",
      inv.hostname(), inv.os(), inv.kernel(), inv.cpu_model(), inv.cpu_sockets(), inv.cpu_cores(),
      inv.cpu_threads(), human_bytes(inv.memory_total_bytes()), inv.qemu_version(),
      inv.accelerator(), inv.accelerator_reason(), inv.agent_version());
  return kExitOk;
}

int ctl_metrics(const CtlGlobal& g) {
  auto c = connect(g);
  auto r = c.call(&Stub::GetMetrics, v1::GetMetricsRequest{});
  return print_or_fail<v1::GetMetricsResponse>(g, r, [](const v1::GetMetricsResponse& m) {
    const auto& h = m.host();
    std::cout << fmt::format(
        "host: cpu {:.1f}% load {:.2f} {:.2f} {:.2f} memory {} / {} available\n",
        h.cpu_busy() * 100, h.load1(), h.load5(), h.load15(),
        human_bytes(h.memory_available_bytes()), human_bytes(h.memory_total_bytes()));
    std::cout << fmt::format("{:<24} {:<10} {:>12} {:>12} {:>12} {:>12}\n", "VM", "STATE", "CPU_S",
                             "RSS", "DISK_R", "DISK_W");
    for (const auto& vm : m.vms()) {
      std::cout << fmt::format(
          "{:<24} {:<10} {:>12.2f} {:>12} {:>12} {:>12}\n", vm.name(), state_name(vm.state()),
          vm.stats().cpu_time_ns() / 1e9, human_bytes(vm.stats().rss_bytes()),
          human_bytes(vm.stats().disk_read_bytes()), human_bytes(vm.stats().disk_write_bytes()));
    }
  });
}

int ctl_vm_list(const CtlGlobal& g, const std::vector<std::string>& labels) {
  v1::ListVmsRequest req;
  for (const auto& l : labels) {
    auto kv = parse_label_flag(l);
    if (!kv) return fail(kv.error());
    (*req.mutable_label_selector())[kv->first] = kv->second;
  }
  auto c = connect(g);
  auto r = c.call(&Stub::ListVms, req);
  return print_or_fail<v1::ListVmsResponse>(g, r, [](const v1::ListVmsResponse& l) {
    std::vector<const v1::VmStatus*> vms;
    for (const auto& vm : l.vms()) vms.push_back(&vm);
    print_vm_table(std::cout, vms);
  });
}

int ctl_vm_show(const CtlGlobal& g, const std::string& name) {
  v1::GetVmRequest req;
  req.set_name(name);
  auto c = connect(g);
  auto r = c.call(&Stub::GetVm, req);
  if (!r) return fail(r.error());
  if (json(g))
    std::cout << to_json_text(r->vm());
  else
    print_vm_details(std::cout, r->vm());
  return kExitOk;
}

int ctl_vm_define(const CtlGlobal& g, const DefineFlags& f) {
  // The spec is the model's, from a file or the flags, and goes on the wire through the one
  // conversion (wire/vm.h); the agent validates it.
  model::VmSpec m;
  if (!f.spec_file.empty()) {
    std::ifstream in(f.spec_file);
    if (!in) return fail(Error{ErrorCode::not_found, "cannot read " + f.spec_file, "--spec"});
    std::stringstream buf;
    buf << in.rdbuf();
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(buf.str());
    } catch (const nlohmann::json::exception& e) {
      return fail(Error{ErrorCode::invalid_argument, e.what(), "--spec"});
    }
    auto parsed = model::vm_spec_from_json(j);
    if (!parsed) return fail(parsed.error());
    m = std::move(*parsed);
  } else {
    m.name = f.name;
    m.uuid = f.uuid;
    if (f.vcpus != 0) m.vcpus = f.vcpus;
    if (!f.machine.empty()) m.machine = f.machine;
    if (!f.memory.empty()) {
      // A bare number is MiB here (unlike disk sizes): "--memory 512".
      bool bare = f.memory.find_first_not_of("0123456789") == std::string::npos;
      auto bytes = parse_size("--memory", bare ? f.memory + "M" : f.memory);
      if (!bytes) return fail(bytes.error());
      m.memory_mib = *bytes >> 20;
    }
    if (!f.kernel.empty()) {
      m.kernel_boot = model::KernelBoot{f.kernel, f.initrd, f.cmdline};
    } else if (!f.initrd.empty() || !f.cmdline.empty()) {
      return fail(Error{ErrorCode::invalid_argument, "needs --kernel", "--initrd/--cmdline"});
    }
    for (const auto& d : f.disks) {
      auto disk = parse_disk_flag(d);
      if (!disk) return fail(disk.error());
      m.disks.push_back(std::move(*disk));
    }
    for (const auto& n : f.nics) {
      auto nic = parse_nic_flag(n);
      if (!nic) return fail(nic.error());
      m.nics.push_back(std::move(*nic));
    }
    for (const auto& l : f.labels) {
      auto kv = parse_label_flag(l);
      if (!kv) return fail(kv.error());
      m.labels[kv->first] = kv->second;
    }
    if (f.no_vnc) m.vnc = false;
  }
  const v1::VmSpec spec = wire::to_proto(m);
  v1::DefineVmRequest req;
  std::string rid = request_id(g);
  req.set_request_id(rid);
  *req.mutable_spec() = spec;
  auto c = connect(g);
  auto r = c.call(&Stub::DefineVm, req);
  if (!r) return fail(r.error());
  v1::VmStatus vm = r->vm();
  if (f.start) {
    v1::StartVmRequest s;
    s.set_request_id(rid + ".start");
    s.set_name(vm.spec().name());
    auto sr = c.call(&Stub::StartVm, s);
    if (!sr) return fail(sr.error());
    vm = sr->vm();
  }
  if (json(g))
    std::cout << to_json_text(vm);
  else
    print_vm_details(std::cout, vm);
  return kExitOk;
}

int ctl_vm_action(const CtlGlobal& g, const std::string& action, const std::string& name,
                  int timeout_s) {
  auto c = connect(g);
  std::string rid = request_id(g);
  Result<v1::VmStatus> vm = tl::unexpected(Error{});
  auto extract = [](const auto& r) -> Result<v1::VmStatus> {
    if (!r) return tl::unexpected(r.error());
    return r->vm();
  };
  auto req = [&]<typename Req>(Req r) {
    r.set_request_id(rid);
    r.set_name(name);
    return r;
  };
  if (action == "start") {
    vm = extract(c.call(&Stub::StartVm, req(v1::StartVmRequest{})));
  } else if (action == "shutdown") {
    auto r = req(v1::ShutdownVmRequest{});
    r.set_timeout_ms(static_cast<uint32_t>(timeout_s) * 1000);
    // The call waits for the guest: give the RPC the shutdown timeout plus a margin.
    vm = extract(c.call(&Stub::ShutdownVm, r, std::chrono::seconds(timeout_s + 30)));
  } else if (action == "force-off") {
    vm = extract(c.call(&Stub::ForceOffVm, req(v1::ForceOffVmRequest{})));
  } else if (action == "reboot") {
    vm = extract(c.call(&Stub::RebootVm, req(v1::RebootVmRequest{})));
  } else if (action == "pause") {
    vm = extract(c.call(&Stub::PauseVm, req(v1::PauseVmRequest{})));
  } else if (action == "resume") {
    vm = extract(c.call(&Stub::ResumeVm, req(v1::ResumeVmRequest{})));
  } else if (action == "undefine") {
    auto r = c.call(&Stub::UndefineVm, req(v1::UndefineVmRequest{}));
    if (!r) return fail(r.error());
    if (json(g))
      std::cout << "{}\n";
    else
      std::cout << "undefined " << name << "\n";
    return kExitOk;
  } else {
    return fail(Error{ErrorCode::invalid_argument, "unknown action " + action, "action"});
  }
  if (!vm) return fail(vm.error());
  if (json(g))
    std::cout << to_json_text(*vm);
  else
    std::cout << fmt::format("{} {} pid={}\n", name, state_name(vm->state()), vm->pid());
  return kExitOk;
}

int ctl_vm_console(const CtlGlobal& g, const std::string& name, bool follow,
                   const std::string& write, bool write_given, uint32_t bytes) {
  auto c = connect(g);
  if (write_given) {
    v1::WriteConsoleRequest w;
    w.set_request_id(request_id(g));
    w.set_name(name);
    w.set_data(write + "\n");
    auto r = c.call(&Stub::WriteConsole, w);
    if (!r) return fail(r.error());
    if (!follow) return kExitOk;
  }
  if (!follow) {
    v1::ConsoleTailRequest t;
    t.set_name(name);
    t.set_max_bytes(bytes);
    auto r = c.call(&Stub::ConsoleTail, t);
    if (!r) return fail(r.error());
    std::cout << r->data() << std::flush;
    return kExitOk;
  }
  grpc::ClientContext ctx;  // no deadline: follows until interrupted
  v1::StreamConsoleRequest s;
  s.set_name(name);
  s.set_tail_bytes(bytes);
  auto reader = c.stub().StreamConsole(&ctx, s);
  v1::ConsoleChunk chunk;
  while (reader->Read(&chunk)) std::cout << chunk.data() << std::flush;
  auto st = reader->Finish();
  if (!st.ok()) return fail(wire::from_grpc_status(st));
  return kExitOk;
}

int ctl_vm_guest_agent(const CtlGlobal& g, const std::string& name, const std::string& json_cmd,
                       int timeout_s) {
  v1::GuestAgentCommandRequest req;
  req.set_request_id(request_id(g));
  req.set_name(name);
  req.set_command_json(json_cmd);
  req.set_timeout_ms(static_cast<uint32_t>(timeout_s) * 1000);
  auto c = connect(g);
  auto r = c.call(&Stub::GuestAgentCommand, req, std::chrono::seconds(timeout_s + 10));
  if (!r) return fail(r.error());
  std::cout << r->reply_json() << "\n";
  return kExitOk;
}

int ctl_events(const CtlGlobal& g, const std::string& vm, bool current) {
  auto c = connect(g);
  grpc::ClientContext ctx;
  v1::WatchEventsRequest req;
  req.set_vm(vm);
  req.set_include_current(current);
  auto reader = c.stub().WatchEvents(&ctx, req);
  v1::VmEvent ev;
  while (reader->Read(&ev)) {
    if (json(g)) {
      google::protobuf::util::JsonPrintOptions o;
      o.preserve_proto_field_names = true;
      std::string line;
      (void)google::protobuf::util::MessageToJsonString(ev, &line, o);
      std::cout << line << "\n" << std::flush;
    } else {
      std::cout << fmt::format("{} {:<24} {:<14} {}\n", ev.at_unix_ms(), ev.vm(),
                               state_name(ev.state()), ev.detail())
                << std::flush;
    }
  }
  auto st = reader->Finish();
  if (!st.ok()) return fail(wire::from_grpc_status(st));
  return kExitOk;
}

int ctl_image_list(const CtlGlobal& g) {
  auto c = connect(g);
  auto r = c.call(&Stub::ListImages, v1::ListImagesRequest{});
  return print_or_fail<v1::ListImagesResponse>(g, r, [](const v1::ListImagesResponse& l) {
    std::cout << fmt::format("{:<32} {:<6} {:>12} {:>12}\n", "NAME", "FORMAT", "VIRTUAL",
                             "ON DISK");
    for (const auto& i : l.images()) {
      std::cout << fmt::format("{:<32} {:<6} {:>12} {:>12}\n", i.name(), i.format(),
                               human_bytes(i.virtual_size()), human_bytes(i.actual_size()));
    }
  });
}

}  // namespace strata::agent::cli
