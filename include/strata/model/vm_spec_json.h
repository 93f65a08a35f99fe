// JSON (de)serialization of VmSpec. from_json rejects unknown fields and wrong types with
// an invalid_argument error naming the field, then runs validate() on the result (an empty
// uuid or mac is accepted; call complete() to fill them).
#pragma once

#include <string_view>

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
// The same from JSON text (the agent proto's VmSpec.cloud_init_json): at most
// kMaxCloudInitJsonBytes, parsed by the strict parser (bounded depth, no duplicate keys).
inline constexpr size_t kMaxCloudInitJsonBytes = 1 << 20;
Result<CloudInit> cloud_init_from_json_text(std::string_view text, size_t nic_count);

// The `watchdog` member alone: {"model": "i6300esb", "action": "reset"}, both optional
// (those are the defaults); errors name "watchdog.model" / "watchdog.action".
nlohmann::json to_json(const Watchdog& w);
Result<Watchdog> watchdog_from_json(const nlohmann::json& j);

}  // namespace strata::model
