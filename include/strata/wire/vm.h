// The agent's wire messages (strata.agent.v1) <-> the model's VM types, for both ends of
// the contract: the agent service, the manager's agent client and `strata-agent ctl` all
// convert here (one spec -> proto path). from_proto only translates (rejecting
// out-of-range enum values, naming the field); model::validate is the caller's next step.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "strata/agent/v1/agent.pb.h"
#include "strata/common/error.h"
#include "strata/model/guest_facts.h"
#include "strata/model/vm_spec.h"

namespace strata::wire {

namespace v1 = strata::agent::v1;

v1::VmState to_proto(model::VmState state);
// VM_STATE_UNSPECIFIED and unknown values are invalid_argument.
Result<model::VmState> from_proto(v1::VmState state);
// "running", "stopped", ... ("unknown" for unspecified or unknown values).
std::string state_name(v1::VmState state);

v1::VmSpec to_proto(const model::VmSpec& spec);
// Zero/empty scalars take the model defaults (vcpus 1, memory 256 MiB, machine "q35",
// vnc true). `field` prefixes error fields ("spec" -> "spec.nics[0].mode"). cloud_init
// travels as JSON text (cloud_init_json), parsed and validated here for the spec's NICs
// (errors name "<field>.cloud_init....").
Result<model::VmSpec> from_proto(const v1::VmSpec& spec, std::string_view field = "spec");
// One disk or NIC (hot-plug); the VmSpec converters use these. `field` names a NIC's mode
// in errors.
v1::DiskSpec to_proto(const model::DiskSpec& disk);
model::DiskSpec from_proto(const v1::DiskSpec& disk);
v1::NicSpec to_proto(const model::NicSpec& nic);
Result<model::NicSpec> from_proto(const v1::NicSpec& nic, std::string_view field);

v1::GuestFacts to_proto(const model::GuestFacts& guest);
// Checked as model::guest_facts_from_json (strings, sizes, addresses).
Result<model::GuestFacts> from_proto(const v1::GuestFacts& guest);
// A VM status's guest facts; nullopt when it has none or they fail the checks (an agent is
// trusted, but not blindly).
std::optional<model::GuestFacts> guest_facts_of(const v1::VmStatus& status);

}  // namespace strata::wire
