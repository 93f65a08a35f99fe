// Conversion between the agent's wire messages (strata.agent.v1) and the model/driver
// structs. from_proto only translates (rejecting out-of-range enum values, naming the
// field); model::validate is the caller's next step.
#pragma once

#include "strata/agent/hypervisor.h"
#include "strata/agent/image_store.h"
#include "strata/agent/v1/agent.pb.h"
#include "strata/common/error.h"
#include "strata/model/vm_spec.h"

namespace strata::agent::service {

v1::VmState to_proto(model::VmState state);
// VM_STATE_UNSPECIFIED and unknown values are invalid_argument.
Result<model::VmState> from_proto(v1::VmState state);

v1::VmSpec to_proto(const model::VmSpec& spec);
// Zero/empty scalars take the model defaults (vcpus 1, memory 256 MiB, machine "q35",
// vnc true). `field` prefixes error fields ("spec" -> "spec.nics[0].mode").
Result<model::VmSpec> from_proto(const v1::VmSpec& spec, std::string_view field = "spec");

// cloud_init travels as JSON text (cloud_init_json); from_proto parses and validates it
// for the spec's NICs (errors name "<field>.cloud_init....").

v1::GuestFacts to_proto(const model::GuestFacts& guest);
// Checked as model::guest_facts_from_json (strings, sizes, addresses).
Result<model::GuestFacts> from_proto(const v1::GuestFacts& guest);

v1::VmStatus to_proto(const VmStatus& status);
Result<VmStatus> from_proto(const v1::VmStatus& status);

v1::VmStats to_proto(const VmStats& stats);
VmStats from_proto(const v1::VmStats& stats);

v1::VmEvent to_proto(const VmEvent& event);
Result<VmEvent> from_proto(const v1::VmEvent& event);

v1::Image to_proto(const ImageInfo& image);

}  // namespace strata::agent::service
