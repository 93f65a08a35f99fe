// The REST form of a VM: the strictly validated create body of POST /api/v1/vms ->
// VmDocument, and a stored VmRecord -> the JSON every VM route answers with. API layer
// only: the VM service and the controller work on VmDocument/VmRecord.
#pragma once

#include <map>
#include <string>

#include <nlohmann/json.hpp>

#include "strata/common/error.h"
#include "strata/manager/api/request_bodies.h"
#include "strata/manager/controllers/vm_document.h"
#include "strata/store/records.h"

namespace strata::manager {

// The create body -> document (unknown fields, wrong types, names, sizes are refused;
// errors name the field). `start` is returned separately. (Labels and the node selector
// are read with label_map, request_bodies.h.)

Result<VmDocument> vm_document_from_request(const nlohmann::json& body, bool* start);
// One disk or NIC object of the REST VM ({"name", "image", "size_bytes", "boot", "readonly",
// "datastore"}; {"mode", "bridge", "mac"}), as in a create body or a hot-plug request;
// errors name the field after `prefix` ("disks[0].", "disk.").
Result<model::DiskSpec> disk_from_rest(const nlohmann::json& body, const std::string& prefix);
Result<model::NicSpec> nic_from_rest(const nlohmann::json& body, const std::string& prefix);

// The REST form of a VM's cloud_init: as the model's JSON, except that no secret is shown
// again: each user's password_hash becomes "password_set": true|false, and user_data
// becomes "user_data_bytes" (its size).
nlohmann::json cloud_init_to_rest(const model::CloudInit& ci);

// The REST form of a VM. host_name: name of vm.host_id ("" when unplaced).
nlohmann::json vm_to_json(const store::VmRecord& vm, const std::string& host_name);

// One VM's entry in a host metrics sample (the agent's GetMetricsResponse as JSON:
// {"host": {...}, "vms": [{"name", "state", "stats": {"cpu_time_ns": "123", ...}}]}) as
// numbers: {"cpu_time_ns", "rss_bytes", "disk_read_bytes", "disk_write_bytes",
// "net_rx_bytes", "net_tx_bytes"}; null when the sample has no such VM (not running).
nlohmann::json vm_metrics_of(const nlohmann::json& sample, const std::string& vm);

}  // namespace strata::manager
