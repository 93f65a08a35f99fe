// The deadline of one agent RPC, as a bound from now: the wire library's (wire/call.h),
// named here for the AgentClient files that call it unqualified.
#pragma once

#include "strata/wire/call.h"

namespace strata::manager {

using wire::set_deadline;

}  // namespace strata::manager
