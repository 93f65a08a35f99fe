// Mapping between records and SQL rows: column lists, row decoding, labels as JSON
// text, and the field validation the store applies before writing.
#pragma once

#include <string>

#include "store/sql/sql_db.h"
#include "strata/store/records.h"

namespace strata::store::sql {

// Column lists; decode_* expect rows selected with exactly these, in this order.
inline constexpr const char* kHostCols =
    "id, resource_version, created_ms, updated_ms, name, address, state, labels, accelerator, "
    "inventory, last_heartbeat_ms, cpu_threads, memory_mib, cert_fingerprint, cluster";
inline constexpr const char* kVmCols =
    "id, resource_version, created_ms, updated_ms, name, spec, desired_state, host_id, status, "
    "labels, deletion_requested, deletion_requested_ms";
inline constexpr const char* kTaskCols =
    "id, resource_version, created_ms, updated_ms, kind, target_kind, target_id, state, "
    "progress, message, result";
inline constexpr const char* kEventCols = "seq, time_ms, actor, action, target, result, message";
inline constexpr const char* kTokenCols =
    "id, resource_version, created_ms, updated_ms, name, role, secret_hash, expires_ms, revoked";
inline constexpr const char* kJoinTokenCols =
    "id, created_ms, secret_hash, expires_ms, used_by_host, used_ms";
inline constexpr const char* kMetricCols = "host_id, time_ms, data";

std::string encode_labels(const Labels& labels);
Result<Labels> decode_labels(const std::string& text);
bool labels_match(const Labels& labels, const Labels& selector);

Result<HostRecord> decode_host(const SqlRow& row);
Result<VmRecord> decode_vm(const SqlRow& row);
Result<TaskRecord> decode_task(const SqlRow& row);
EventRecord decode_event(const SqlRow& row);
TokenRecord decode_token(const SqlRow& row);
JoinTokenRecord decode_join_token(const SqlRow& row);
HostMetricSample decode_metric(const SqlRow& row);

// Field checks before a write (invalid_argument with the field name).
Status validate_host(const HostRecord& h);
Status validate_host_state(const std::string& state);
Status validate_vm(const VmRecord& v);
Status validate_task(const TaskRecord& t);
Status validate_token(const TokenRecord& t);
Status validate_secret_hash(const std::string& hash);

// "" -> "{}": JSON columns always hold a JSON document.
inline std::string json_or_empty_object(const std::string& s) { return s.empty() ? "{}" : s; }

// A new UUIDv7 (time-ordered) for unix time now_ms.
std::string new_uuid_v7(int64_t now_ms);

}  // namespace strata::store::sql
