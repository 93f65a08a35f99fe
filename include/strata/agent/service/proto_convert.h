// Conversion between the agent's wire messages (strata.agent.v1) and the driver's structs
// (VmStatus, VmStats, VmEvent, images); the model's own types convert in wire/vm.h.
// from_proto only translates (rejecting out-of-range enum values, naming the field);
// model::validate is the caller's next step.
#pragma once

#include "strata/agent/hypervisor.h"
#include "strata/agent/image_store.h"
#include "strata/agent/v1/agent.pb.h"
#include "strata/common/error.h"
#include "strata/model/vm_spec.h"
#include "strata/wire/vm.h"

namespace strata::agent::service {

// The model's VM types convert in the wire library (one home for both ends).
using wire::from_proto;
using wire::to_proto;

v1::VmStatus to_proto(const VmStatus& status);
Result<VmStatus> from_proto(const v1::VmStatus& status);

v1::VmStats to_proto(const VmStats& stats);
VmStats from_proto(const v1::VmStats& stats);

v1::VmEvent to_proto(const VmEvent& event);
Result<VmEvent> from_proto(const v1::VmEvent& event);

v1::Image to_proto(const ImageInfo& image);

}  // namespace strata::agent::service
