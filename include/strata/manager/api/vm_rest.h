// The REST form of a VM: the strictly validated create body of POST /api/v1/vms ->
// VmDocument, and a stored VmRecord -> the JSON every VM route answers with. API layer
// only: the VM service and the controller work on VmDocument/VmRecord.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "strata/common/error.h"
#include "strata/manager/controllers/vm_document.h"
#include "strata/store/records.h"

namespace strata::manager {

// The create body -> document (unknown fields, wrong types, names, sizes are refused;
// errors name the field). `start` is returned separately.
Result<VmDocument> vm_document_from_request(const nlohmann::json& body, bool* start);

// The REST form of a VM. host_name: name of vm.host_id ("" when unplaced).
nlohmann::json vm_to_json(const store::VmRecord& vm, const std::string& host_name);

}  // namespace strata::manager
