// The strata-agent command tree (CLI11): serve, shim, ctl ..., image ...
#include "strata/agent/service/agent_cli.h"

#include <CLI/CLI.hpp>
#include <filesystem>
#include <iostream>

#include "ctl.h"
#include "ctl_format.h"
#include "sim_fleet.h"
#include "strata/agent/image_store.h"
#include "strata/agent/qemu_hypervisor.h"
#include "strata/common/log.h"
#include "strata/model/validation.h"
#include "strata/wire/runtime.h"

namespace strata::agent::cli {

int exit_code(ErrorCode code) {
  switch (code) {
    case ErrorCode::invalid_argument:
    case ErrorCode::payload_too_large:
      return kExitUsage;
    case ErrorCode::not_found:
      return kExitNotFound;
    case ErrorCode::already_exists:
    case ErrorCode::conflict:
      return kExitExists;
    case ErrorCode::failed_precondition:
      return kExitPrecondition;
    case ErrorCode::unavailable:
    case ErrorCode::deadline_exceeded:
      return kExitUnavailable;
    default:
      return kExitError;
  }
}

namespace {

constexpr const char* kExitCodesHelp =
    "Exit codes: 0 ok, 1 error, 2 usage/invalid argument, 3 not found, 4 already exists,\n"
    "5 wrong state (failed precondition), 6 agent unavailable/timeout,\n"
    "7 (serve) another agent already serves this state folder or socket.";

int image_import(const std::string& images_dir, const std::string& name, const std::string& path,
                 const std::string& kind) {
  if (auto st = model::validate_image_name("NAME", name); !st) {
    std::cerr << "error: " << st.error().to_string() << "\n";
    return kExitUsage;
  }
  std::error_code ec;
  std::filesystem::create_directories(images_dir, ec);  // the store makes only its own root
  auto store = make_image_store(images_dir);
  if (!store) {
    std::cerr << "error: " << store.error().to_string() << "\n";
    return exit_code(store.error().code);
  }
  auto info = (*store)->import_image(name, path, kind);
  if (!info) {
    std::cerr << "error: " << info.error().to_string() << "\n";
    return exit_code(info.error().code);
  }
  std::cout << "imported " << info->name << " (" << info->format << ", "
            << human_bytes(info->virtual_size) << ") -> " << info->path << "\n";
  return kExitOk;
}

int image_list_offline(const std::string& images_dir) {
  auto store = make_image_store(images_dir);
  if (!store) {
    std::cerr << "error: " << store.error().to_string() << "\n";
    return exit_code(store.error().code);
  }
  for (const auto& i : (*store)->list_images()) {
    std::cout << i.name << "\t" << i.format << "\t" << i.virtual_size << "\n";
  }
  return kExitOk;
}

}  // namespace

int agent_main(int argc, char** argv) {
  // The shim is exec'd by the QEMU driver with its own argv contract: bypass CLI11.
  if (argc >= 2 && std::string(argv[1]) == "shim") {
    return run_shim(argc, argv);  // it skips argv[1] == "shim" itself
  }

  wire::configure_grpc_runtime();
  CLI::App app{"strata-agent: the Strata host agent (runs QEMU VMs, serves gRPC)"};
  app.require_subcommand(1);
  app.footer(kExitCodesHelp);
  int rc = kExitOk;

  // ---- serve
  ServeOptions so;
  auto* serve =
      app.add_subcommand("serve", "Run the agent daemon (until SIGTERM; VMs keep running)");
  serve->add_option("--state-dir", so.state_dir, "State folder (VMs, sockets, request ids)")
      ->capture_default_str();
  serve->add_option("--images", so.images_dir, "Image store folder (default <state-dir>/images)");
  serve->add_option("--listen", so.listen,
                    "gRPC address, unix:PATH (default unix:<state-dir>/agent.sock)");
  serve->add_option("--listen-tcp", so.listen_tcp,
                    "Also listen on HOST:PORT, mutual TLS: the host certificate from enrollment "
                    "(<state-dir>/tls), clients must hold a certificate of the manager's CA");
  serve->add_flag("--insecure", so.insecure,
                  "Serve --listen-tcp in plaintext (no TLS, no client check): for tests and "
                  "debugging only; a manager always dials agents with TLS");
  serve->add_option("--accel", so.accel, "Accelerator: auto (probe), kvm or tcg")
      ->check(CLI::IsMember({"auto", "kvm", "tcg"}))
      ->capture_default_str();
  serve->add_option("--qemu", so.qemu, "QEMU system emulator binary")->capture_default_str();
  serve->add_option("--qemu-img", so.qemu_img, "qemu-img binary")->capture_default_str();
  std::string qemu_user;
  auto* qemu_user_opt = serve->add_option("--qemu-user", qemu_user,
                    "User QEMU runs as (the shim drops to it before exec; QEMU also runs under "
                    "its seccomp -sandbox). Default: strata-qemu when that user exists and the "
                    "agent is root, else the agent's own user; `root` keeps QEMU as root");
  serve->add_option("--log-level", so.log_level, "trace|debug|info|warn|error|off")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "critical", "off"}))
      ->capture_default_str();
  serve->add_option("--manager", so.manager,
                    "Enroll with this manager: https://HOST:PORT (http:// only where stratad "
                    "serves plain HTTP); the server is verified with --ca-fingerprint, "
                    "--ca-file or the system trust store");
  auto* jt_opt = serve->add_option(
      "--join-token", so.join_token,
      "One-time join token (from the manager's POST /api/v1/join-tokens); visible to every "
      "local user in ps: prefer --join-token-file");
  serve->add_option("--join-token-file", so.join_token_file,
                    "File holding the join token (must not be readable by group or others)")
      ->excludes(jt_opt);
  serve->add_option("--ca-fingerprint", so.ca_fingerprint,
                    "sha256:... of the manager's CA (shown by `strata join-token create`): "
                    "enrollment fails unless the manager's CA matches (over https, the "
                    "manager must present that CA)");
  serve->add_option("--ca-file", so.ca_file,
                    "PEM CA certificate(s) that verify an https manager (instead of the "
                    "fingerprint or the system trust store)");
  serve->add_option("--advertise", so.advertise,
                    "HOST:PORT the manager reaches this agent at (default: --listen-tcp)");
  serve->add_option("--name", so.name, "Host name to enroll as (default: hostname)");
  serve->add_option("--datastore", so.datastores,
                    "Shared storage for VM disks, NAME=PATH: a folder every host of the pool "
                    "mounts (NFS, cluster file system); repeatable");
  serve
      ->add_option("--api-level", so.api_level,
                   "Agent API level to serve, this build's or older: behaves as an agent of "
                   "that level does (later fields ignored, later RPCs unimplemented). For "
                   "testing a manager with agents one version behind")
      ->check(CLI::Range(wire::kOldestApiLevel, wire::kApiLevel))
      ->capture_default_str();
  serve->callback([&] {
    if (qemu_user_opt->count() > 0) so.qemu_user = qemu_user;
    rc = run_serve(so);
  });

  // ---- sim (simulated hosts, docs/internals/fleet.md)
  SimFleetOptions sim_o;
  int64_t boot_ms = sim_o.boot_time.count(), shutdown_ms = sim_o.shutdown_time.count(),
          tick_ms = sim_o.tick.count();
  uint32_t port = sim_o.port;
  auto* sim = app.add_subcommand(
      "sim",
      "Run N simulated hosts in this process (scale and fault testing of a manager only): "
      "each enrolls with its own join token and serves the agent API with mutual TLS on its "
      "own loopback address, over the sim driver (VMs are records in memory)");
  sim->add_option("--hosts", sim_o.hosts, "Number of simulated hosts")
      ->check(CLI::Range(1, 60000))
      ->capture_default_str();
  sim->add_option("--address-base", sim_o.address_base,
                  "Loopback address of the first host (127.x.y.z); the next hosts take the "
                  "following addresses, skipping .0 and .255")
      ->capture_default_str();
  sim->add_option("--port", port, "gRPC port, the same on every host's address")
      ->check(CLI::Range(1, 65535))
      ->capture_default_str();
  sim->add_option("--name-prefix", sim_o.name_prefix, "Host names: PREFIX00001, PREFIX00002, ...")
      ->capture_default_str();
  sim->add_option("--state-dir", sim_o.state_dir,
                  "Folder of the hosts' keys, certificates and enrollment records "
                  "(one subfolder per host)")
      ->required();
  sim->add_option("--manager", sim_o.manager, "The manager to enroll with (as for serve)")
      ->required();
  sim->add_option("--join-tokens-file", sim_o.join_tokens_file,
                  "Owner-only file of one-time join tokens, one per line, one per host")
      ->required();
  sim->add_option("--ca-fingerprint", sim_o.ca_fingerprint, "sha256:... of the manager's CA");
  sim->add_option("--ca-file", sim_o.ca_file, "PEM CA that verifies an https manager");
  sim->add_option("--enroll-parallel", sim_o.enroll_parallel, "Enrollments in flight")
      ->check(CLI::Range(1, 256))
      ->capture_default_str();
  sim->add_option("--cpus", sim_o.cpus, "CPU threads of each simulated host")
      ->check(CLI::Range(1, 4096))
      ->capture_default_str();
  sim->add_option("--memory-mib", sim_o.memory_mib, "Memory of each simulated host, MiB")
      ->check(CLI::Range(uint64_t{256}, uint64_t{64} << 20))
      ->capture_default_str();
  sim->add_option("--boot-ms", boot_ms, "Time a simulated VM takes from start to running")
      ->check(CLI::Range(int64_t{0}, int64_t{3600000}))
      ->capture_default_str();
  sim->add_option("--shutdown-ms", shutdown_ms, "Time a simulated guest takes to power off")
      ->check(CLI::Range(int64_t{0}, int64_t{3600000}))
      ->capture_default_str();
  sim->add_option("--fail-start-rate", sim_o.start_failure_rate,
                  "Probability (0..1) that a start fails (injected; the VM is crashed)")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  sim->add_option("--fail-vm", sim_o.fail_start, "A VM of this name never starts; repeatable");
  sim->add_option("--seed", sim_o.seed, "Seed of the failure draws")->capture_default_str();
  sim->add_option("--tick-ms", tick_ms, "How often due boots and shutdowns complete")
      ->check(CLI::Range(int64_t{1}, int64_t{60000}))
      ->capture_default_str();
  sim->add_option("--grpc-max-threads", sim_o.grpc_max_threads,
                  "Threads each host's gRPC server may use (a ResourceQuota)")
      ->check(CLI::Range(2, 64))
      ->capture_default_str();
  int64_t flap_ms = sim_o.flap.count();
  sim->add_option("--flap-host", sim_o.flap_hosts,
                  "On SIGUSR1 this host's link goes down for --flap-ms, then back; repeatable");
  sim->add_option("--flap-ms", flap_ms, "How long a flapping host stays unreachable")
      ->check(CLI::Range(int64_t{100}, int64_t{3600000}))
      ->capture_default_str();
  sim->add_option("--log-level", sim_o.log_level, "trace|debug|info|warn|error|off")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "critical", "off"}))
      ->capture_default_str();
  sim->callback([&] {
    sim_o.port = static_cast<uint16_t>(port);
    sim_o.boot_time = std::chrono::milliseconds(boot_ms);
    sim_o.shutdown_time = std::chrono::milliseconds(shutdown_ms);
    sim_o.tick = std::chrono::milliseconds(tick_ms);
    sim_o.flap = std::chrono::milliseconds(flap_ms);
    rc = run_sim_fleet(sim_o);
  });

  app.add_subcommand("shim", "Internal: parent process of one QEMU (started by the agent)");

  // ---- image (offline, operator)
  auto* image =
      app.add_subcommand("image", "Image store commands run on the host (no agent needed)");
  image->require_subcommand(1);
  std::string images_dir = "/var/lib/strata-agent/images", img_name, img_path, img_kind;
  auto* imp = image->add_subcommand("import", "Copy a host file into the image store");
  imp->add_option("NAME", img_name, "Image name ([A-Za-z0-9][A-Za-z0-9._-]*)")->required();
  imp->add_option("PATH", img_path, "Host file to import (kernel, initrd, qcow2, raw)")
      ->required()
      ->check(CLI::ExistingFile);
  imp->add_option("--images", images_dir, "Image store folder")->capture_default_str();
  imp->add_option("--kind", img_kind,
                  "disk, kernel, initrd or iso: recorded with the image, so a VM cannot use "
                  "it for another purpose (default: unknown, any use)")
      ->check(CLI::IsMember({"disk", "kernel", "initrd", "iso"}));
  imp->callback([&] { rc = image_import(images_dir, img_name, img_path, img_kind); });
  auto* ils = image->add_subcommand("ls", "List the image store's images");
  ils->add_option("--images", images_dir, "Image store folder")->capture_default_str();
  ils->callback([&] { rc = image_list_offline(images_dir); });

  // ---- ctl (gRPC client)
  CtlGlobal g;
  auto* ctl = app.add_subcommand("ctl", "Debug client for a running agent (gRPC)");
  ctl->require_subcommand(1);
  ctl->footer(kExitCodesHelp);
  auto* sock = ctl->add_option("--socket", g.socket, "Agent UNIX socket")->capture_default_str();
  ctl->add_option("--address", g.address,
                  "Agent TCP address HOST:PORT (plaintext: only agents serving with "
                  "--insecure answer; on the host use --socket)")
      ->excludes(sock);
  ctl->add_option("-o,--output", g.output, "Output format")
      ->check(CLI::IsMember({"table", "json"}))
      ->capture_default_str();
  ctl->add_option("--timeout", g.timeout_s, "Per-call timeout in seconds")->capture_default_str();
  ctl->add_option("--request-id", g.request_id,
                  "Idempotency key for mutating calls (default: random)");

  ctl->add_subcommand("health", "Agent liveness and identity")->callback([&] {
    rc = ctl_health(g);
  });
  ctl->add_subcommand("inventory", "Host inventory (-o json: the full document)")->callback([&] {
    rc = ctl_inventory(g);
  });
  ctl->add_subcommand("metrics", "Host and per-VM metrics")->callback([&] { rc = ctl_metrics(g); });
  auto* events = ctl->add_subcommand("events", "Stream VM state changes (until interrupted)");
  std::string ev_vm;
  bool ev_current = false;
  events->add_option("--vm", ev_vm, "Only this VM");
  events->add_flag("--current", ev_current, "First print every VM's current state");
  events->callback([&] { rc = ctl_events(g, ev_vm, ev_current); });

  auto* cimage = ctl->add_subcommand("image", "Images known to the agent");
  cimage->require_subcommand(1);
  cimage->add_subcommand("list", "List base images")->callback([&] { rc = ctl_image_list(g); });

  auto* vm = ctl->add_subcommand("vm", "VM commands");
  vm->require_subcommand(1);
  std::vector<std::string> list_labels;
  auto* vlist = vm->add_subcommand("list", "List VMs");
  vlist->add_option("--label", list_labels, "Only VMs with label key=value (repeatable)")
      ->allow_extra_args(false);
  vlist->callback([&] { rc = ctl_vm_list(g, list_labels); });

  std::string name;
  auto* show = vm->add_subcommand("show", "Show one VM");
  show->add_option("NAME", name, "VM name")->required();
  show->callback([&] { rc = ctl_vm_show(g, name); });

  DefineFlags df;
  auto* define = vm->add_subcommand("define", "Define a VM from a JSON spec or from flags");
  auto* spec_opt =
      define->add_option("--spec", df.spec_file, "VmSpec JSON file")->check(CLI::ExistingFile);
  auto* name_opt = define->add_option("--name", df.name, "VM name (DNS label)");
  define->add_option("--uuid", df.uuid, "UUID (generated when absent)");
  define->add_option("--vcpus", df.vcpus, "Virtual CPUs (default 1)");
  define->add_option("--memory", df.memory, "Memory: MiB, or with suffix (512M, 2G); default 256");
  define->add_option("--machine", df.machine, "QEMU machine (default q35)");
  define->add_option("--kernel", df.kernel, "Kernel image name (direct kernel boot)");
  define->add_option("--initrd", df.initrd, "Initrd image name");
  define->add_option("--cmdline", df.cmdline, "Kernel command line");
  define
      ->add_option("--disk", df.disks,
                   "name=NAME[,base=IMAGE][,size=SIZE][,boot][,ro] (repeatable)")
      ->allow_extra_args(false);
  define->add_option("--nic", df.nics, "user | bridge=BR [,mac=MAC] [,vlan=1..4094] (repeatable)")
      ->allow_extra_args(false);
  define->add_option("--label", df.labels, "key=value (repeatable)")->allow_extra_args(false);
  define->add_flag("--no-vnc", df.no_vnc, "No VNC display");
  define->add_flag("--start", df.start, "Start the VM after defining it");
  spec_opt->excludes(name_opt);
  define->callback([&] {
    if (df.spec_file.empty() && df.name.empty()) {
      std::cerr << "error: vm define needs --spec FILE or --name\n";
      rc = kExitUsage;
      return;
    }
    rc = ctl_vm_define(g, df);
  });

  int action_timeout = 60;
  for (const char* action :
       {"start", "shutdown", "force-off", "reboot", "pause", "resume", "undefine"}) {
    static const std::map<std::string, std::string> help = {
        {"start", "Start a VM (OK if running)"},
        {"shutdown", "ACPI shutdown; forced off after --timeout"},
        {"force-off", "Stop QEMU at once"},
        {"reboot", "Reset the guest"},
        {"pause", "Freeze the vCPUs"},
        {"resume", "Thaw the vCPUs"},
        {"undefine", "Delete a stopped VM and its disks"}};
    auto* sub = vm->add_subcommand(action, help.at(action));
    sub->add_option("NAME", name, "VM name")->required();
    if (std::string(action) == "shutdown") {
      sub->add_option("--timeout", action_timeout, "Seconds before forcing off")
          ->capture_default_str();
    }
    std::string a = action;
    sub->callback([&, a] { rc = ctl_vm_action(g, a, name, action_timeout); });
  }

  bool follow = false;
  std::string write_text;
  uint32_t bytes = 65536;
  auto* console =
      vm->add_subcommand("console", "Print (or follow) the serial console; write to it");
  console->add_option("NAME", name, "VM name")->required();
  console->add_flag("-f,--follow", follow, "Keep printing output as it arrives");
  auto* write_opt =
      console->add_option("--write", write_text, "Send TEXT and a newline to the console");
  console->add_option("--bytes", bytes, "How much of the log tail to print")->capture_default_str();
  console->callback(
      [&] { rc = ctl_vm_console(g, name, follow, write_text, write_opt->count() > 0, bytes); });

  std::string ga_json;
  int ga_timeout = 10;
  auto* ga = vm->add_subcommand("guest-agent", "Run one qemu-guest-agent command");
  ga->add_option("NAME", name, "VM name")->required();
  ga->add_option("JSON", ga_json, "Command, e.g. '{\"execute\":\"guest-ping\"}'")->required();
  ga->add_option("--timeout", ga_timeout, "Seconds")->capture_default_str();
  ga->callback([&] { rc = ctl_vm_guest_agent(g, name, ga_json, ga_timeout); });

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int code = app.exit(e);
    return code == 0 ? kExitOk : kExitUsage;
  }
  return rc;
}

}  // namespace strata::agent::cli
