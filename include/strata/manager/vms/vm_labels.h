// Changing a VM's labels (PATCH /api/v1/vms/{name} {"labels": {"k": "v" | null}}): set or
// remove keys, bounded like a create (model::validate_labels), in ONE store transaction
// with its audit event ("vm.update"). Labels are the manager's (list filters, the web
// console's bulk "add label"); the agent and the scheduler do not use them, so nothing
// else is told and no task is made.
#pragma once

#include <map>
#include <optional>
#include <string>

#include "strata/common/error.h"
#include "strata/manager/events/event_log.h"
#include "strata/store/store.h"

namespace strata::manager {

// nullopt value: remove that key. not_found, failed_precondition (being deleted),
// conflict (expected_version), invalid_argument (labels.KEY: the merged map out of bounds).
Result<store::VmRecord> relabel_vm(store::Store& store, EventLog& events, const std::string& name,
                                   const std::map<std::string, std::optional<std::string>>& patch,
                                   std::optional<int64_t> expected_version,
                                   const std::string& actor);

}  // namespace strata::manager
