// main() of the `strata` CLI: wires the real terminal and environment into run_cli().
#include <unistd.h>

#include <iostream>
#include <string>
#include <vector>

#include "strata/cli/app.h"
#include "strata/cli/config.h"

int main(int argc, char** argv) {
  std::vector<std::string> args(argv, argv + argc);
  strata::cli::CliIo io(std::cout, std::cerr);
  io.stdin_tty = isatty(STDIN_FILENO) == 1;
  io.stdout_tty = isatty(STDOUT_FILENO) == 1;
  io.stderr_tty = isatty(STDERR_FILENO) == 1;
  io.stdin_fd = STDIN_FILENO;
  io.env = strata::cli::real_env;
  io.read_file = strata::cli::real_read_file;
  io.write_console = [](std::string_view data) {
    std::cout.flush();
    while (!data.empty()) {
      ssize_t n = ::write(STDOUT_FILENO, data.data(), data.size());
      if (n <= 0) return;
      data.remove_prefix(static_cast<size_t>(n));
    }
  };
  return strata::cli::run_cli(args, io);
}
