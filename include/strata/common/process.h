// Starting processes without a shell: argv vectors only (posix_spawn), output captured,
// optional timeout. Nothing here ever goes through /bin/sh.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "strata/common/error.h"

namespace strata {

struct ProcessResult {
  int exit_code = -1;     // valid when !signaled
  int term_signal = 0;    // valid when signaled
  bool signaled = false;
  bool timed_out = false; // killed by us after the timeout
  std::string out;        // captured stdout
  std::string err;        // captured stderr
  bool ok() const { return !signaled && !timed_out && exit_code == 0; }
};

struct RunOptions {
  std::optional<std::chrono::milliseconds> timeout;
  std::optional<std::string> stdin_data;
  size_t max_output_bytes = 16 * 1024 * 1024;  // per stream; excess is dropped
  std::vector<std::string> extra_env;          // "KEY=VALUE" added to the environment
  // Resource limits set in the child before exec (setrlimit, soft = hard): a tool that
  // parses input of a user's choosing (qemu-img on an upload) cannot take the host's
  // memory or CPU. Unset: the parent's limits. Either one makes the runner fork+exec
  // instead of posix_spawn (posix_spawn cannot set limits).
  std::optional<uint64_t> max_address_space_bytes;  // RLIMIT_AS
  std::optional<uint64_t> max_cpu_seconds;          // RLIMIT_CPU (killed at the limit)
  // Called on the caller's thread with each chunk read from stdout as it arrives (before
  // the max_output_bytes cut; the capture is unchanged): a tool's progress output.
  std::function<void(std::string_view)> on_stdout;
};

// Runs argv[0] (looked up in PATH if it has no '/') and waits for it.
// Returns an error only if the process could not be started.
Result<ProcessResult> run_process(const std::vector<std::string>& argv,
                                  const RunOptions& options = {});

// Like run_process but a non-zero exit becomes an error carrying stderr.
Result<std::string> run_checked(const std::vector<std::string>& argv,
                                const RunOptions& options = {});

// Finds an executable in PATH; empty if absent.
std::string find_executable(const std::string& name);

}  // namespace strata
