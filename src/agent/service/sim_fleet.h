// `strata-agent sim`: many simulated hosts in one process, for scale and fault testing of
// the manager (docs/internals/fleet.md). Each host is what `serve` makes of a real one
// (the same AgentService, enrolled with its own one-time join token through the same
// enrollment code, its own key and certificate, mutual TLS on its own loopback address
// 127.x.y.z) over the sim driver (strata/agent/sim_hypervisor.h) and a simulated inventory.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "strata/agent/inventory.h"
#include "strata/common/error.h"

namespace strata::agent::cli {

struct SimFleetOptions {
  uint32_t hosts = 1;
  std::string address_base = "127.1.0.1";  // host i (0-based) listens on base + i
  uint16_t port = 7443;                    // the same port on every address
  std::string name_prefix = "sim-";        // host i is <prefix><i+1, 5 digits>
  std::string state_dir;                   // <state_dir>/<name>: tls/, enrollment.json
  // Enrollment: one join token per host, one per line, in an owner-only file.
  std::string manager;
  std::string join_tokens_file;
  std::string ca_fingerprint;
  std::string ca_file;
  uint32_t enroll_parallel = 8;  // enrollments in flight
  // Each simulated host's inventory.
  uint32_t cpus = 32;
  uint64_t memory_mib = 128 * 1024;
  // The sim driver (SimOptions).
  std::chrono::milliseconds boot_time{2000};
  std::chrono::milliseconds shutdown_time{1000};
  double start_failure_rate = 0.0;
  std::vector<std::string> fail_start;
  uint64_t seed = 1;
  std::chrono::milliseconds tick{100};  // how often due boots and shutdowns complete
  // Each host's gRPC server (a ResourceQuota). A restart's reconcile sends one host up to
  // the manager's 16 controller workers' calls at once; above the cap they are refused and
  // backed off (docs/internals/fleet.md). Not raised by default: at 32, 1 000 hosts' burst
  // threads ran the simulator out of a 20 000 open-files limit.
  int grpc_max_threads = 4;
  // Fault injection on SIGUSR1: these hosts' links go down for `flap` (their gRPC servers
  // closed, the manager's calls and streams cut) and come back on the same address with
  // the same VMs (the driver keeps running them; the service, whose request log is in
  // memory here, starts afresh). SIGUSR2 logs a census of every host's VMs.
  std::vector<std::string> flap_hosts;
  std::chrono::milliseconds flap{10000};
  std::string log_level = "info";
};

// invalid_argument naming the flag (hosts, address-base, port, ...).
Status validate(const SimFleetOptions& options);

// The i-th (0-based) address after `base` ("127.1.0.1" + 256 = "127.1.1.1"): must stay in
// 127.0.0.0/8 and avoid addresses ending in .0 or .255 (never handed out, so every host's
// address is an ordinary one). invalid_argument("address-base") otherwise.
Result<std::string> loopback_address(const std::string& base, uint32_t index);

// A simulated host's inventory: `cpus` threads (1 socket), `memory_mib`, hostname `name`,
// accelerator kvm (reason: simulated), OS "Strata simulated host".
HostInventory simulated_inventory(const std::string& name, uint32_t cpus, uint64_t memory_mib);

// The join tokens file: one token per line (blank lines skipped), at least `needed`.
Result<std::vector<std::string>> read_join_tokens(const std::string& path, uint32_t needed);

// Runs the fleet until SIGTERM/SIGINT; returns the process exit code.
int run_sim_fleet(const SimFleetOptions& options);

}  // namespace strata::agent::cli
