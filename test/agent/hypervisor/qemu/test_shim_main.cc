// Test-only stand-in for strata-agent's main: dispatches `shim ...` to run_shim, the same
// entry point the agent's main uses.
#include <cstring>

#include "strata/agent/qemu_hypervisor.h"

int main(int argc, char** argv) {
  if (argc > 1 && std::strcmp(argv[1], "shim") == 0) return strata::agent::run_shim(argc, argv);
  return 2;
}
