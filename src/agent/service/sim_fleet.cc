// `strata-agent sim` (sim_fleet.h): N simulated hosts in one process. Per host: a sim
// driver, the real AgentService, enrollment through the real join-token path, and a gRPC
// server with mutual TLS on the host's own loopback address, its threads capped by a
// ResourceQuota. One ticker thread completes the due boots and shutdowns of every host.
#include "sim_fleet.h"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/resource_quota.h>
#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <thread>

#include "enroll.h"
#include "host_inventory_proto.h"
#include "strata/agent/service/agent_cli.h"
#include "strata/agent/service/agent_service.h"
#include "strata/agent/sim_hypervisor.h"
#include "strata/common/log.h"
#include "strata/common/secret_file.h"
#include "strata/model/validation.h"
#include "strata/pki/grpc_tls.h"
#include "strata/pki/pki.h"
#include "strata/wire/server.h"

#ifndef STRATA_VERSION
#define STRATA_VERSION "0.0.0"
#endif

namespace strata::agent::cli {

namespace {

namespace fs = std::filesystem;

auto sim_log() {
  static auto l = logger("sim");
  return l;
}

struct SimHost {
  std::string name;
  std::string address;  // HOST:PORT
  std::string state_dir;
  SimHypervisorPtr hv;
  service::AgentServiceOptions svc_options;  // a flap makes a new service with them
  std::unique_ptr<service::AgentService> svc;
  std::unique_ptr<grpc::Server> server;
  // Services a flap replaced: a gRPC service registers with one server only, ever; kept
  // (shut down) because their hubs may still be handed the driver's events.
  std::vector<std::unique_ptr<service::AgentService>> retired;
  std::optional<std::chrono::steady_clock::time_point> flap_until;  // down until then
};

// Raises the soft file-descriptor limit to the hard one: every host holds a listening
// socket and the manager's connection, so thousands of hosts need thousands of fds.
void raise_fd_limit(uint32_t hosts) {
  rlimit r{};
  if (::getrlimit(RLIMIT_NOFILE, &r) != 0) return;
  if (r.rlim_cur < r.rlim_max) {
    r.rlim_cur = r.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &r);
  }
  if (r.rlim_cur < static_cast<rlim_t>(hosts) * 4 + 64)
    sim_log()->warn("open files limit {} is low for {} hosts (about 4 per host)", r.rlim_cur,
                    hosts);
}

v1::HostMetrics host_metrics(const SimHypervisor& hv, uint32_t cpus, uint64_t memory_bytes,
                             const Clock& clock) {
  auto u = hv.usage();
  v1::HostMetrics p;
  p.set_at_unix_ms(
      std::chrono::duration_cast<std::chrono::milliseconds>(clock.wall().time_since_epoch())
          .count());
  p.set_load1(u.cpus_busy);
  p.set_load5(u.cpus_busy);
  p.set_load15(u.cpus_busy);
  p.set_memory_total_bytes(memory_bytes);
  p.set_memory_available_bytes(memory_bytes - std::min(memory_bytes, u.resident_bytes));
  p.set_cpu_threads(cpus);
  p.set_cpu_busy(std::min(1.0, u.cpus_busy / cpus));
  return p;
}

Status serve_host(SimHost& h, const SimFleetOptions& o);

// Brings one host up: enrolls it (unless its state folder already is), then serves.
Status bring_up(SimHost& h, const SimFleetOptions& o, const std::string& token,
                const v1::HostInventory& inventory, const std::atomic<bool>& stop) {
  EnrollOptions eo;
  eo.manager_url = o.manager;
  eo.join_token = token;
  eo.ca_fingerprint = o.ca_fingerprint;
  eo.ca_file = o.ca_file;
  eo.name = h.name;
  eo.address = h.address;
  eo.state_dir = h.state_dir;
  eo.inventory = enrollment_inventory(inventory);
  if (auto st = enroll_until_done(eo, stop); !st) return st;
  return serve_host(h, o);
}

// Listens on the host's address with its enrolled identity (at bring-up, and after a flap).
Status serve_host(SimHost& h, const SimFleetOptions& o) {
  auto id = pki::load_identity(tls_dir(h.state_dir));
  if (!id) return tl::unexpected(id.error().wrap(h.name + ": host certificate"));
  grpc::ServerBuilder builder;
  wire::apply_server_options(builder);
  grpc::ResourceQuota quota("sim-" + h.name);
  quota.SetMaxThreads(o.grpc_max_threads);
  builder.SetResourceQuota(quota);
  builder.SetSyncServerOption(grpc::ServerBuilder::SyncServerOption::NUM_CQS, 1);
  builder.SetSyncServerOption(grpc::ServerBuilder::SyncServerOption::MIN_POLLERS, 1);
  builder.SetSyncServerOption(grpc::ServerBuilder::SyncServerOption::MAX_POLLERS, 1);
  int port = 0;
  builder.AddListeningPort(h.address, pki::server_credentials(*id), &port);
  builder.RegisterService(h.svc.get());
  h.server = builder.BuildAndStart();
  if (!h.server || port == 0)
    return make_error(ErrorCode::unavailable, "cannot listen on " + h.address);
  return {};
}

}  // namespace

Status validate(const SimFleetOptions& o) {
  if (o.hosts < 1 || o.hosts > 60000) return invalid_argument("hosts", "must be 1..60000");
  if (auto a = loopback_address(o.address_base, o.hosts - 1); !a) return tl::unexpected(a.error());
  if (o.port == 0) return invalid_argument("port", "must be 1..65535");
  if (o.name_prefix.empty() || o.name_prefix.size() > 40)
    return invalid_argument("name-prefix", "must be 1..40 characters");
  if (auto st = model::validate_name("name-prefix", o.name_prefix + "00001"); !st) return st;
  if (o.state_dir.empty()) return invalid_argument("state-dir", "is required");
  if (o.manager.empty()) return invalid_argument("manager", "is required (http[s]://HOST:PORT)");
  if (o.join_tokens_file.empty())
    return invalid_argument("join-tokens-file", "is required (one join token per host per line)");
  if (o.enroll_parallel < 1 || o.enroll_parallel > 256)
    return invalid_argument("enroll-parallel", "must be 1..256");
  if (o.cpus < 1 || o.cpus > 4096) return invalid_argument("cpus", "must be 1..4096");
  if (o.memory_mib < 256 || o.memory_mib > (64ull << 20))
    return invalid_argument("memory-mib", "must be 256..67108864");
  if (o.tick.count() < 1 || o.tick.count() > 60000)
    return invalid_argument("tick-ms", "must be 1..60000");
  if (o.grpc_max_threads < 2 || o.grpc_max_threads > 64)
    return invalid_argument("grpc-max-threads", "must be 2..64");
  SimOptions so;
  so.clock = system_clock();
  so.boot_time = o.boot_time;
  so.shutdown_time = o.shutdown_time;
  so.start_failure_rate = o.start_failure_rate;
  so.fail_start = {o.fail_start.begin(), o.fail_start.end()};
  if (auto st = agent::validate(so); !st) {
    // The driver names its options; the flags are spelled with dashes.
    Error e = st.error();
    if (e.field == "boot_time") e.field = "boot-ms";
    if (e.field == "shutdown_time") e.field = "shutdown-ms";
    if (e.field == "start_failure_rate") e.field = "fail-start-rate";
    if (e.field == "fail_start") e.field = "fail-vm";
    return tl::unexpected(e);
  }
  return {};
}

Result<std::string> loopback_address(const std::string& base, uint32_t index) {
  in_addr a{};
  if (::inet_pton(AF_INET, base.c_str(), &a) != 1)
    return invalid_argument("address-base", "'" + base + "' is not an IPv4 address");
  uint32_t ip = ntohl(a.s_addr);
  uint32_t last = ip & 0xff;
  if ((ip >> 24) != 127)
    return invalid_argument("address-base", "must be a loopback address (127.x.y.z)");
  if (last == 0 || last == 255)
    return invalid_argument("address-base", "must not end in .0 or .255");
  // 254 usable addresses per /24 (.1 .. .254).
  uint64_t pos = (last - 1) + static_cast<uint64_t>(index);
  uint64_t net = (ip >> 8) + pos / 254;
  if ((net >> 16) != 127)
    return invalid_argument("address-base",
                            fmt::format("{} + {} hosts leaves 127.0.0.0/8", base, index + 1));
  uint32_t out = static_cast<uint32_t>((net << 8) | (pos % 254 + 1));
  return fmt::format("{}.{}.{}.{}", out >> 24, (out >> 16) & 0xff, (out >> 8) & 0xff, out & 0xff);
}

HostInventory simulated_inventory(const std::string& name, uint32_t cpus, uint64_t memory_mib) {
  HostInventory inv;
  inv.cpu.vendor = "StrataSim";
  inv.cpu.model_name = "Simulated CPU";
  inv.cpu.sockets = 1;
  inv.cpu.cores = cpus;
  inv.cpu.threads = cpus;
  NumaNode node;
  for (uint32_t c = 0; c < cpus; ++c) node.cpus.push_back(c);
  node.memory_total_bytes = memory_mib << 20;
  node.memory_free_bytes = memory_mib << 20;
  inv.numa_nodes.push_back(std::move(node));
  inv.memory.total_bytes = memory_mib << 20;
  inv.memory.available_bytes = memory_mib << 20;
  inv.os.pretty_name = "Strata simulated host";
  inv.os.kernel_release = "sim";
  inv.os.hostname = name;
  AccelProbeResult accel;
  accel.requested = "kvm";
  accel.accelerator = "kvm";
  accel.kvm_usable = true;
  accel.reason = "simulated host (strata-agent sim): no KVM is used";
  inv.accelerator = accel;
  return inv;
}

Result<std::vector<std::string>> read_join_tokens(const std::string& path, uint32_t needed) {
  // A token line is about 70 bytes; room for comments and long tokens, bounded.
  auto text = read_secret_file(path, "--join-tokens-file", 512 * size_t{needed} + 64 * 1024);
  if (!text) return tl::unexpected(text.error());
  std::vector<std::string> tokens;
  std::istringstream in(*text);
  std::string line;
  while (std::getline(in, line)) {
    auto b = line.find_first_not_of(" \t\r");
    if (b == std::string::npos) continue;
    auto e = line.find_last_not_of(" \t\r");
    tokens.push_back(line.substr(b, e - b + 1));
  }
  if (tokens.size() < needed)
    return invalid_argument("join-tokens-file",
                            fmt::format("{} holds {} join tokens; {} hosts need one each", path,
                                        tokens.size(), needed));
  return tokens;
}

int run_sim_fleet(const SimFleetOptions& o) {
  if (!set_log_level(o.log_level)) {
    sim_log()->error("unknown log level {}", o.log_level);
    return kExitUsage;
  }
  if (auto st = validate(o); !st) {
    sim_log()->error("--{}: {}", st.error().field, st.error().message);
    return kExitUsage;
  }
  auto tokens = read_join_tokens(o.join_tokens_file, o.hosts);
  if (!tokens) {
    sim_log()->error("{}", tokens.error().message);
    return kExitUsage;
  }
  std::string ca_fingerprint = o.ca_fingerprint;
  if (!ca_fingerprint.empty()) {
    auto fp = pki::parse_fingerprint(ca_fingerprint, "ca-fingerprint");
    if (!fp) {
      sim_log()->error("--ca-fingerprint: {}", fp.error().message);
      return kExitUsage;
    }
    ca_fingerprint = *fp;
  }
  std::error_code ec;
  fs::create_directories(o.state_dir, ec);
  if (ec) {
    sim_log()->error("cannot create state dir {}: {}", o.state_dir, ec.message());
    return kExitError;
  }
  ::chmod(o.state_dir.c_str(), 0700);
  raise_fd_limit(o.hosts);

  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  // The fault injection's signals (flap, census), taken by the ticker loop below; blocked
  // from the start so an early one is neither fatal nor lost.
  sigset_t all_signals = stop_signals;
  sigaddset(&all_signals, SIGUSR1);
  sigaddset(&all_signals, SIGUSR2);
  pthread_sigmask(SIG_BLOCK, &all_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  auto clock = system_clock();
  SimFleetOptions opts = o;
  opts.ca_fingerprint = ca_fingerprint;
  std::vector<std::unique_ptr<SimHost>> hosts;
  std::vector<v1::HostInventory> inventories;
  hosts.reserve(o.hosts);
  for (uint32_t i = 0; i < o.hosts; ++i) {
    auto h = std::make_unique<SimHost>();
    h->name = fmt::format("{}{:05d}", o.name_prefix, i + 1);
    auto ip = loopback_address(o.address_base, i);
    if (!ip) {
      sim_log()->error("{}", ip.error().message);
      return kExitUsage;
    }
    h->address = fmt::format("{}:{}", *ip, o.port);
    h->state_dir = (fs::absolute(o.state_dir) / h->name).string();
    fs::create_directories(h->state_dir, ec);
    ::chmod(h->state_dir.c_str(), 0700);
    SimOptions so;
    so.clock = clock;
    so.boot_time = o.boot_time;
    so.shutdown_time = o.shutdown_time;
    so.start_failure_rate = o.start_failure_rate;
    so.fail_start = {o.fail_start.begin(), o.fail_start.end()};
    so.seed = o.seed + i;
    auto hv = make_sim_hypervisor(so);
    if (!hv) {
      sim_log()->error("sim driver: {}", hv.error().to_string());
      return kExitUsage;
    }
    h->hv = std::move(*hv);
    auto inv = inventory_to_proto(simulated_inventory(h->name, o.cpus, o.memory_mib), nullptr);
    inventories.push_back(inv);
    service::AgentServiceOptions ao;
    ao.agent_version = STRATA_VERSION;
    ao.hostname = h->name;
    ao.accelerator = "kvm";
    ao.clock = clock;
    ao.inventory = [inv]() -> Result<v1::HostInventory> { return inv; };
    const SimHypervisor* hvp = h->hv.get();
    const uint32_t cpus = o.cpus;
    const uint64_t mem = o.memory_mib << 20;
    ao.host_metrics = [hvp, cpus, mem, clock]() -> Result<v1::HostMetrics> {
      return host_metrics(*hvp, cpus, mem, *clock);
    };
    h->svc_options = ao;
    auto svc = service::AgentService::create(*h->hv, std::move(ao));
    if (!svc) {
      sim_log()->error("service: {}", svc.error().to_string());
      return kExitError;
    }
    h->svc = std::move(*svc);
    hosts.push_back(std::move(h));
  }

  // Enrollment and serving, `enroll_parallel` hosts at a time.
  std::atomic<bool> stop{false};
  std::atomic<uint32_t> next{0}, up{0};
  std::mutex err_mu;
  std::optional<Error> first_error;
  auto t0 = clock->now();
  auto worker = [&] {
    for (uint32_t i; (i = next.fetch_add(1)) < o.hosts && !stop.load();) {
      auto st = bring_up(*hosts[i], opts, (*tokens)[i], inventories[i], stop);
      if (!st) {
        std::lock_guard lock(err_mu);
        if (!first_error) first_error = st.error().wrap(hosts[i]->name);
        stop = true;
        return;
      }
      ++up;
    }
  };
  std::vector<std::thread> workers;
  for (uint32_t w = 0; w < std::min(o.enroll_parallel, o.hosts); ++w) workers.emplace_back(worker);
  // Meanwhile: the stop signals.
  std::atomic<bool> enrolled{false};
  std::thread joiner([&] {
    for (auto& t : workers) t.join();
    enrolled = true;
  });
  while (!enrolled.load()) {
    timespec tick{0, 200 * 1000 * 1000};
    if (sigtimedwait(&stop_signals, nullptr, &tick) > 0) stop = true;
  }
  joiner.join();
  auto shutdown_all = [&] {
    for (auto& h : hosts)
      if (h->svc) h->svc->shutdown();
    for (auto& h : hosts)
      if (h->server)
        h->server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
    for (auto& h : hosts) h->server.reset();
  };
  if (first_error) {
    sim_log()->error("{}", first_error->to_string());
    shutdown_all();
    return exit_code(first_error->code);
  }
  if (stop.load()) {
    sim_log()->info("stopped while enrolling ({} of {} hosts up)", up.load(), o.hosts);
    shutdown_all();
    return kExitOk;
  }
  auto secs = std::chrono::duration<double>(clock->now() - t0).count();
  // One line a script waits for (scripts/bench fleet).
  sim_log()->info("sim fleet serving hosts={} first={} last={} enroll_s={:.2f} pid={}", o.hosts,
                  hosts.front()->address, hosts.back()->address, secs, ::getpid());

  std::vector<SimHost*> flappers;
  for (const auto& name : o.flap_hosts) {
    auto it =
        std::find_if(hosts.begin(), hosts.end(), [&](const auto& h) { return h->name == name; });
    if (it == hosts.end())
      sim_log()->warn("--flap-host {}: no such simulated host", name);
    else
      flappers.push_back(it->get());
  }
  // The ticker: due boots and shutdowns complete, their events flow to the manager; the
  // fault injection's signals are served between ticks.
  for (;;) {
    timespec tick{static_cast<time_t>(o.tick.count() / 1000),
                  static_cast<long>(o.tick.count() % 1000) * 1000 * 1000};
    int sig = sigtimedwait(&all_signals, nullptr, &tick);
    if (sig == SIGUSR1) {
      for (SimHost* h : flappers) {
        if (h->flap_until) continue;
        sim_log()->info("flap host={} down ms={}", h->name, o.flap.count());
        h->svc->shutdown();  // ends its watch streams, so the server's shutdown completes
        if (h->server) h->server->Shutdown(std::chrono::system_clock::now());
        h->server.reset();
        h->retired.push_back(std::move(h->svc));
        h->flap_until = std::chrono::steady_clock::now() + o.flap;
      }
    } else if (sig == SIGUSR2) {
      std::map<std::string, int> seen;
      size_t vms = 0;
      for (auto& h : hosts)
        for (const auto& vm : h->hv->list()) {
          ++vms;
          ++seen[vm.spec.name];
        }
      size_t duplicates = 0;
      for (const auto& [name, n] : seen)
        if (n > 1) ++duplicates;
      // One line a test waits for (test/e2e/scale_fleet.sh).
      sim_log()->info("sim fleet census hosts={} vms={} duplicates={}", hosts.size(), vms,
                      duplicates);
    } else if (sig > 0) {
      sim_log()->info("stopping on signal {}", sig);
      break;
    }
    for (SimHost* h : flappers) {
      if (!h->flap_until || std::chrono::steady_clock::now() < *h->flap_until) continue;
      auto svc = service::AgentService::create(*h->hv, h->svc_options);
      if (!svc) {
        sim_log()->error("flap host={}: service: {}", h->name, svc.error().to_string());
        continue;  // tried again at the next tick
      }
      h->svc = std::move(*svc);
      if (auto st = serve_host(*h, opts); !st) {
        sim_log()->error("flap host={}: {}", h->name, st.error().to_string());
        h->retired.push_back(std::move(h->svc));
        continue;
      }
      h->flap_until.reset();
      sim_log()->info("flap host={} up", h->name);
    }
    for (auto& h : hosts) h->hv->tick();
  }
  shutdown_all();
  return kExitOk;
}

}  // namespace strata::agent::cli
