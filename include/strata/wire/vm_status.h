// The agent driver's plain structs (strata/agent/hypervisor.h: VmStatus, VmStats, VmEvent;
// image_store.h: ImageInfo) <-> strata.agent.v1, beside the model's own types (wire/vm.h),
// so every model <-> proto conversion of the contract has one home. Only the agent holds
// these structs (the manager reads the messages as they are); they are data, free of I/O.
// from_proto only translates (rejecting out-of-range enum values, naming the field);
// model::validate is the caller's next step.
#pragma once

#include "strata/agent/hypervisor.h"
#include "strata/agent/image_store.h"
#include "strata/agent/v1/agent.pb.h"
#include "strata/common/error.h"
#include "strata/wire/vm.h"

namespace strata::wire {

v1::VmStatus to_proto(const agent::VmStatus& status);
Result<agent::VmStatus> from_proto(const v1::VmStatus& status);

v1::VmStats to_proto(const agent::VmStats& stats);
agent::VmStats from_proto(const v1::VmStats& stats);

v1::VmEvent to_proto(const agent::VmEvent& event);
Result<agent::VmEvent> from_proto(const v1::VmEvent& event);

v1::Image to_proto(const agent::ImageInfo& image);

}  // namespace strata::wire
