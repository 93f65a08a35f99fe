// The cloud-init NoCloud seed of a VM: rendered from its spec (model/cloud_init_seed.h),
// written into the VM's state folder and packed by Debian's cloud-localds (an ISO 9660
// image with volume label "cidata"), which QEMU attaches read-only.
#pragma once

#include <string>

#include "strata/common/error.h"
#include "strata/model/vm_spec.h"

namespace strata::agent::qemu {

// File name of the seed image inside the VM folder.
inline constexpr const char* kCloudInitSeedFile = "cidata.iso";

// (Re)builds <vm_dir>/cidata.iso for `spec` (which must carry cloud_init and be completed)
// and returns its path. Built at every start, so it always matches the spec: a clone (new
// uuid, new instance-id) or a migration target (same spec) gets the right seed.
// `tool` is the cloud-localds executable.
Result<std::string> build_cloud_init_seed(const std::string& vm_dir, const model::VmSpec& spec,
                                          const std::string& tool = "cloud-localds");

}  // namespace strata::agent::qemu
