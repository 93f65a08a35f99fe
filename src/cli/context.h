// Shared state of one CLI invocation (internal to strata_cli): global options, the chosen
// command's action, and helpers every command uses to call the server and print results.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>

#include "strata/cli/app.h"
#include "strata/cli/exit_codes.h"
#include "strata/cli/http_client.h"
#include "strata/cli/output.h"
#include "strata/cli/progress.h"
#include "strata/cli/requests.h"

namespace strata::cli {

struct Context {
  explicit Context(CliIo& io_) : io(io_) {}

  CliIo& io;
  // Global options.
  std::string server_flag, token_flag, output = "table";
  CLI::Option* server_opt = nullptr;
  std::string ca_file_flag;
  CLI::Option* ca_file_opt = nullptr;
  CLI::Option* token_opt = nullptr;
  bool dry_run = false;
  // Set by the chosen subcommand's callback; run after parsing.
  std::function<int()> action;

  OutputFormat format() const;
  // Server URL + token from flags/env/config; prints and returns the error on failure.
  Result<HttpClient> client();

  int fail(const Error& e);         // prints "error: ...", returns its exit code
  int usage_error(const Error& e);  // prints, returns 2

  // --dry-run: prints the request instead of sending it. True when it did.
  bool dry(const ApiRequest& req);

  // GET-style: send, render the JSON at `items_key` (or the whole body) with `columns`.
  int show(const ApiRequest& req, const Columns& columns = {}, const std::string& items_key = {});
  // An action answered with {task, ...}: print a summary, optionally wait for the task.
  int act(const ApiRequest& req, const std::string& what, bool wait,
          std::chrono::milliseconds wait_timeout);
  // Waits for a task with a progress view on stderr.
  Result<nlohmann::json> wait(HttpClient& c, const std::string& task_id,
                              std::chrono::milliseconds timeout);
};

// Adds the command groups (defined in cmd_*.cc).
void add_vm_commands(CLI::App& root, Context& ctx);
void add_vm_snapshot_commands(CLI::App& vm, Context& ctx);  // cmd_snapshot.cc
void add_vm_clone_commands(CLI::App& vm, Context& ctx);     // cmd_clone.cc
void add_vm_import_command(CLI::App& vm, Context& ctx);     // cmd_import.cc
void add_console_command(CLI::App& vm, Context& ctx);
void add_host_image_commands(CLI::App& root, Context& ctx);
void add_backup_commands(CLI::App& root, Context& ctx);  // cmd_backup.cc
void add_misc_commands(CLI::App& root, Context& ctx);

// Builds the full command tree (used by run_cli and the completion generator).
void build_app(CLI::App& root, Context& ctx);

// Wait timeout flag value ("10m") -> milliseconds; usage error on garbage.
Result<std::chrono::milliseconds> parse_wait_timeout(const std::string& text,
                                                     const std::string& flag);

}  // namespace strata::cli
