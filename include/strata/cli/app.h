// The `strata` command line: CLI11 command tree, global options, and the dispatch that
// turns a parsed command into requests, output and an exit code. run_cli() is the whole
// program minus process setup, so tests drive it with argument vectors.
#pragma once

#include <functional>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

namespace strata::cli {

struct CliIo {
  CliIo(std::ostream& o, std::ostream& e) : out(o), err(e) {}
  std::ostream& out;
  std::ostream& err;
  bool stdin_tty = false;
  bool stdout_tty = false;
  bool stderr_tty = false;
  int stdin_fd = 0;  // console input
  std::function<std::optional<std::string>(const std::string&)> env;
  std::function<std::optional<std::string>(const std::string&)> read_file;
  // Console output, written as it arrives (unbuffered). Defaults to `out` when empty.
  std::function<void(std::string_view)> write_console;
};

// args[0] is the program name. Returns the process exit code (see exit_codes.h).
int run_cli(const std::vector<std::string>& args, CliIo& io);

// The bash completion script for the command tree.
std::string bash_completion_script();

}  // namespace strata::cli
