// Stand-in for strata-agent's main when the agent binary is not part of the build: runs
// `shim ...` through run_shim, the same entry point strata-agent uses.
#include <cstring>

#include "strata/agent/qemu_hypervisor.h"

int main(int argc, char** argv) {
  if (argc > 1 && std::strcmp(argv[1], "shim") == 0) return strata::agent::run_shim(argc, argv);
  return 2;
}
