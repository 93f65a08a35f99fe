// strata-shim: the per-VM parent process of QEMU (see agent::run_shim). A separate, small
// binary so each running VM costs a few hundred KiB instead of a full strata-agent image;
// `strata-agent shim` does the same when this binary is absent.
#include "strata/agent/qemu_hypervisor.h"

int main(int argc, char** argv) { return strata::agent::run_shim(argc, argv); }
