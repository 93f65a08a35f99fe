// Row decoding, labels JSON, validation and UUIDv7 generation for the SQL store.
#include "store/sql/codec.h"

#include <array>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "strata/common/random.h"

namespace strata::store::sql {

std::string encode_labels(const Labels& labels) {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& [k, v] : labels) j[k] = v;
  return j.dump();
}

Result<Labels> decode_labels(const std::string& text) {
  if (text.empty()) return Labels{};
  try {
    auto j = nlohmann::json::parse(text);
    if (!j.is_object()) return internal_error("labels column is not a JSON object");
    Labels out;
    for (auto it = j.begin(); it != j.end(); ++it) {
      if (!it.value().is_string()) return internal_error("label value is not a string");
      out[it.key()] = it.value().get<std::string>();
    }
    return out;
  } catch (const nlohmann::json::exception& e) {
    return internal_error(std::string("labels column is not JSON: ") + e.what());
  }
}

bool labels_match(const Labels& labels, const Labels& selector) {
  for (const auto& [k, v] : selector) {
    auto it = labels.find(k);
    if (it == labels.end() || it->second != v) return false;
  }
  return true;
}

Result<HostRecord> decode_host(const SqlRow& r) {
  HostRecord h;
  h.id = r.text(0);
  h.resource_version = r.int64(1);
  h.created_ms = r.int64(2);
  h.updated_ms = r.int64(3);
  h.name = r.text(4);
  h.address = r.text(5);
  h.state = r.text(6);
  auto labels = decode_labels(r.text(7));
  if (!labels) return tl::unexpected(labels.error());
  h.labels = std::move(*labels);
  h.accelerator = r.text(8);
  h.inventory = r.text(9);
  h.last_heartbeat_ms = r.int64(10);
  h.cpu_threads = r.int64(11);
  h.memory_mib = r.int64(12);
  h.cert_fingerprint = r.text(13);
  h.cluster = r.text(14);
  return h;
}

Result<VmRecord> decode_vm(const SqlRow& r) {
  VmRecord v;
  v.id = r.text(0);
  v.resource_version = r.int64(1);
  v.created_ms = r.int64(2);
  v.updated_ms = r.int64(3);
  v.name = r.text(4);
  v.spec = r.text(5);
  v.desired_state = r.text(6);
  v.host_id = r.opt_text(7);
  v.status = r.text(8);
  auto labels = decode_labels(r.text(9));
  if (!labels) return tl::unexpected(labels.error());
  v.labels = std::move(*labels);
  v.deletion_requested = r.int64(10) != 0;
  v.deletion_requested_ms = r.int64(11);
  return v;
}

Result<TaskRecord> decode_task(const SqlRow& r) {
  TaskRecord t;
  t.id = r.text(0);
  t.resource_version = r.int64(1);
  t.created_ms = r.int64(2);
  t.updated_ms = r.int64(3);
  t.kind = r.text(4);
  t.target_kind = r.text(5);
  t.target_id = r.text(6);
  t.state = r.text(7);
  t.progress = static_cast<int>(r.int64(8));
  t.message = r.text(9);
  t.result = r.text(10);
  return t;
}

EventRecord decode_event(const SqlRow& r) {
  EventRecord e;
  e.seq = r.int64(0);
  e.time_ms = r.int64(1);
  e.actor = r.text(2);
  e.action = r.text(3);
  e.target = r.text(4);
  e.result = r.text(5);
  e.message = r.text(6);
  return e;
}

TokenRecord decode_token(const SqlRow& r) {
  TokenRecord t;
  t.id = r.text(0);
  t.resource_version = r.int64(1);
  t.created_ms = r.int64(2);
  t.updated_ms = r.int64(3);
  t.name = r.text(4);
  t.role = r.text(5);
  t.secret_hash = r.text(6);
  t.expires_ms = r.opt_int64(7);
  t.revoked = r.int64(8) != 0;
  return t;
}

JoinTokenRecord decode_join_token(const SqlRow& r) {
  JoinTokenRecord t;
  t.id = r.text(0);
  t.created_ms = r.int64(1);
  t.secret_hash = r.text(2);
  t.expires_ms = r.opt_int64(3);
  t.used_by_host = r.opt_text(4);
  t.used_ms = r.int64(5);
  return t;
}

HostMetricSample decode_metric(const SqlRow& r) {
  HostMetricSample m;
  m.host_id = r.text(0);
  m.time_ms = r.int64(1);
  m.data = r.text(2);
  return m;
}

namespace {
bool one_of(const std::string& v, std::initializer_list<const char*> allowed) {
  for (const char* a : allowed) {
    if (v == a) return true;
  }
  return false;
}
}  // namespace

Status validate_host_state(const std::string& state) {
  if (!one_of(state, {"up", "unreachable", "maintenance", "enrolling"})) {
    return invalid_argument("state", "host state must be up|unreachable|maintenance|enrolling");
  }
  return {};
}

Status validate_host(const HostRecord& h) {
  if (h.name.empty()) return invalid_argument("name", "host name is required");
  if (auto st = validate_host_state(h.state); !st) return st;
  if (h.cpu_threads < 0) return invalid_argument("cpu_threads", "must be >= 0");
  if (h.memory_mib < 0) return invalid_argument("memory_mib", "must be >= 0");
  if (h.cluster.empty()) return invalid_argument("cluster", "a host belongs to a cluster");
  return {};
}

Status validate_vm(const VmRecord& v) {
  if (v.name.empty()) return invalid_argument("name", "vm name is required");
  if (!one_of(v.desired_state, {"running", "stopped"})) {
    return invalid_argument("desired_state", "desired_state must be running|stopped");
  }
  if (v.host_id && v.host_id->empty()) {
    return invalid_argument("host_id", "host_id must be unset or a host id, not empty");
  }
  return {};
}

Status validate_task(const TaskRecord& t) {
  if (t.kind.empty()) return invalid_argument("kind", "task kind is required");
  if (!one_of(t.state, {"pending", "running", "succeeded", "failed"})) {
    return invalid_argument("state", "task state must be pending|running|succeeded|failed");
  }
  if (t.progress < 0 || t.progress > 100) return invalid_argument("progress", "must be 0..100");
  return {};
}

Status validate_secret_hash(const std::string& hash) {
  if (hash.size() != 64) return invalid_argument("secret_hash", "must be 64 hex characters");
  for (char c : hash) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
      return invalid_argument("secret_hash", "must be lowercase sha256 hex");
    }
  }
  return {};
}

Status validate_token(const TokenRecord& t) {
  if (t.name.empty()) return invalid_argument("name", "token name is required");
  if (!one_of(t.role, {"admin", "operator", "viewer"})) {
    return invalid_argument("role", "role must be admin|operator|viewer");
  }
  return validate_secret_hash(t.secret_hash);
}

std::string new_uuid_v7(int64_t now_ms) {
  std::array<uint8_t, 16> b{};
  uint64_t ms = static_cast<uint64_t>(now_ms);
  for (int i = 0; i < 6; ++i) b[i] = static_cast<uint8_t>(ms >> (8 * (5 - i)));
  uint64_t r1 = random_u64(), r2 = random_u64();
  for (int i = 6; i < 16; ++i) {
    b[i] = static_cast<uint8_t>(i < 11 ? r1 >> (8 * (i - 6)) : r2 >> (8 * (i - 11)));
  }
  b[6] = static_cast<uint8_t>((b[6] & 0x0f) | 0x70);  // version 7
  b[8] = static_cast<uint8_t>((b[8] & 0x3f) | 0x80);  // RFC 4122 variant
  std::string out;
  out.reserve(36);
  static constexpr char kHex[] = "0123456789abcdef";
  for (int i = 0; i < 16; ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) out.push_back('-');
    out.push_back(kHex[b[i] >> 4]);
    out.push_back(kHex[b[i] & 0x0f]);
  }
  return out;
}

}  // namespace strata::store::sql
