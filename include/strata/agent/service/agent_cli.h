// The `strata-agent` command line: `serve` (the daemon), `shim` (QEMU's parent, internal),
// `ctl ...` (a debug client talking gRPC to a running agent) and `image ...` (offline
// operator commands on the image store). src/exe/strata_agent.cc only calls agent_main.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "strata/common/error.h"
#include "strata/wire/api_level.h"

namespace strata::agent::cli {

// Process exit codes, mapped from ErrorCode in one place (exit_code()).
enum ExitCode : int {
  kExitOk = 0,
  kExitError = 1,  // internal and anything not listed below
  kExitUsage = 2,  // bad command line, or invalid_argument from the agent
  kExitNotFound = 3,
  kExitExists = 4,        // already_exists, conflict
  kExitPrecondition = 5,  // failed_precondition (wrong state)
  kExitUnavailable = 6,   // agent unreachable, unavailable, deadline_exceeded
  kExitLocked = 7,        // serve: another agent holds the state folder's lock (or socket)
};

// The lock file in the state folder that one serving agent holds for its whole life
// (strata/common/dir_lock.h); it contains the holder's pid.
inline constexpr const char* kAgentLockFile = "agent.lock";
int exit_code(ErrorCode code);

struct ServeOptions {
  std::string state_dir = "/var/lib/strata-agent";
  std::string images_dir;      // default <state_dir>/images
  std::string listen;          // default unix:<state_dir>/agent.sock
  std::string listen_tcp;      // HOST:PORT, empty for none; mutual TLS with the
                               // certificates from enrollment (<state_dir>/tls)
  bool insecure = false;       // plaintext TCP instead (no manager dials that; ctl/dev only)
  std::string accel = "auto";  // auto | kvm | tcg
  std::string qemu = "qemu-system-x86_64";
  std::string qemu_img = "qemu-img";
  // --qemu-user: nullopt when not given (see decide_qemu_user for the default).
  std::optional<std::string> qemu_user;
  std::string log_level = "info";
  // Enrollment with a manager (all three together; enrolled once, kept in the state dir).
  std::string manager;     // https://HOST:PORT (http:// where the manager serves plain HTTP)
  std::string join_token;  // one-time join token (visible in ps: prefer join_token_file)
  std::string join_token_file;  // file holding it, owner-only (mode 0600)
  std::string ca_fingerprint;  // sha256:... of the manager's CA (pins it at enrollment)
  std::string ca_file;         // CA file that verifies an https manager (else pin or system)
  std::string advertise;   // HOST:PORT the manager dials (default: listen_tcp)
  std::string name;        // host name (default: hostname)
  std::vector<std::string> datastores;  // --datastore NAME=PATH (shared storage), repeatable
  // --api-level: the agent API level served (strata/wire/api_level.h); lower than this
  // build's only to behave as an older agent in tests of mixed versions.
  uint32_t api_level = wire::kApiLevel;
};
// Runs the agent until SIGTERM/SIGINT. VMs keep running when it exits.
int run_serve(const ServeOptions& options);

int agent_main(int argc, char** argv);

}  // namespace strata::agent::cli
