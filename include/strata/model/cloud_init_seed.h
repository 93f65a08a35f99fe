// The files of a cloud-init NoCloud seed, rendered from a VM spec. Pure: the agent writes
// them to the VM's state folder and builds the seed image (volume label "cidata") from them.
#pragma once

#include <string>

#include "strata/common/error.h"
#include "strata/model/vm_spec.h"

namespace strata::model {

struct CloudInitSeed {
  std::string meta_data;       // instance-id (= the VM's uuid) and local-hostname
  std::string user_data;       // "#cloud-config" or, with extra user_data, MIME multipart
  std::string network_config;  // network-config v2; empty when cloud_init.network is empty
};

// The spec must be completed (uuid and the MACs of configured NICs set) and carry
// cloud_init. The JSON documents are YAML (YAML is a superset of JSON), so each file is
// JSON after its header line. Deterministic: the same spec gives the same bytes.
Result<CloudInitSeed> render_cloud_init_seed(const VmSpec& spec);

}  // namespace strata::model
