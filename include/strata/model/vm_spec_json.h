// JSON (de)serialization of VmSpec. from_json rejects unknown fields and wrong types with
// an invalid_argument error naming the field, then runs validate() on the result (an empty
// uuid or mac is accepted; call complete() to fill them).
#pragma once

#include <nlohmann/json.hpp>

#include "strata/common/error.h"
#include "strata/model/vm_spec.h"

namespace strata::model {

nlohmann::json to_json(const VmSpec& spec);
Result<VmSpec> vm_spec_from_json(const nlohmann::json& j);
// The `cloud_init` member alone (the agent's proto carries it as JSON): strict parse, then
// validate_cloud_init for a VM with nic_count NICs.
nlohmann::json to_json(const CloudInit& ci);
Result<CloudInit> cloud_init_from_json(const nlohmann::json& j, size_t nic_count);

}  // namespace strata::model
