// Which columns each resource list shows, and the cell formatting helpers (see output.h).
#include <ctime>

#include "strata/cli/output.h"
#include "strata/cli/parse.h"

namespace strata::cli {

using nlohmann::json;

std::string text_at(const json& j, std::string_view pointer) {
  json::json_pointer p{std::string(pointer)};
  if (!j.is_object() || !j.contains(p)) return "-";
  const json& v = j.at(p);
  if (v.is_null()) return "-";
  if (v.is_string()) return v.get<std::string>().empty() ? "-" : v.get<std::string>();
  if (v.is_object() || v.is_array()) return v.empty() ? "-" : v.dump();
  return v.dump();
}

std::string labels_text(const json& labels) {
  if (!labels.is_object() || labels.empty()) return "-";
  std::string out;
  for (auto& [k, v] : labels.items()) {
    if (!out.empty()) out += ",";
    out += k + "=" + (v.is_string() ? v.get<std::string>() : v.dump());
  }
  return out;
}

std::string time_text(const json& ms) {
  if (!ms.is_number() || ms.get<int64_t>() <= 0) return "-";
  std::time_t t = static_cast<std::time_t>(ms.get<int64_t>() / 1000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

namespace {

Column at(std::string header, std::string pointer) {
  return {std::move(header), [p = std::move(pointer)](const json& j) { return text_at(j, p); }};
}

Column mib(std::string header, std::string pointer) {
  return {std::move(header), [p = std::move(pointer)](const json& j) {
            json::json_pointer jp{p};
            if (!j.contains(jp) || !j.at(jp).is_number()) return std::string("-");
            return format_bytes(j.at(jp).get<uint64_t>() << 20);
          }};
}

Column bytes(std::string header, std::string pointer) {
  return {std::move(header), [p = std::move(pointer)](const json& j) {
            json::json_pointer jp{p};
            if (!j.contains(jp) || !j.at(jp).is_number()) return std::string("-");
            return format_bytes(j.at(jp).get<uint64_t>());
          }};
}

Column labels(std::string pointer) {
  return {"LABELS", [p = std::move(pointer)](const json& j) {
            json::json_pointer jp{p};
            return j.contains(jp) ? labels_text(j.at(jp)) : std::string("-");
          }};
}

Column time_col(std::string header, std::string pointer) {
  return {std::move(header), [p = std::move(pointer)](const json& j) {
            json::json_pointer jp{p};
            return j.contains(jp) ? time_text(j.at(jp)) : std::string("-");
          }};
}

}  // namespace

Columns host_columns() {
  return {at("NAME", "/name"),
          at("STATE", "/state"),
          at("REACHABILITY", "/reachability"),
          at("CLUSTER", "/cluster"),
          at("ACCEL", "/accelerator"),
          at("CPUS", "/cpu_threads"),
          mib("MEMORY", "/memory_mib"),
          at("AGENT", "/agent_version"),  // a rolling upgrade's progress: version and
          at("API", "/agent_api_level"),  // API level per host (docs/internals/versions.md)
          labels("/labels")};
}

Columns cluster_columns() {
  return {at("NAME", "/name"), at("HOSTS", "/hosts"), at("CPU BASELINE", "/cpu_baseline"),
          at("CPU MODEL", "/cpu_model"), at("WHY", "/cpu_reason")};
}

Columns vm_columns() {
  // A template shows as such in STATE (it never runs).
  Column state{"STATE", [](const json& j) {
                 if (j.value("template", false)) return std::string("template");
                 return text_at(j, "/status/state");
               }};
  return {at("NAME", "/name"), state, at("DESIRED", "/desired_state"),
          at("HOST", "/host"), at("VCPUS", "/spec/vcpus"),   mib("MEMORY", "/spec/memory_mib"),
          labels("/labels")};
}

Columns image_columns() {
  return {at("NAME", "/name"),
          at("KIND", "/kind"),
          at("FORMAT", "/format"),
          bytes("SIZE", "/size_bytes"),
          bytes("VIRTUAL", "/virtual_size"),
          time_col("CREATED", "/created_ms")};
}

Columns event_columns() {
  return {at("SEQ", "/seq"),        time_col("TIME", "/time_ms"), at("ACTOR", "/actor"),
          at("ACTION", "/action"),  at("TARGET", "/target"),      at("RESULT", "/result"),
          at("MESSAGE", "/message")};
}

Columns task_columns() {
  return {at("ID", "/id"),       at("KIND", "/kind"),         at("TARGET", "/target"),
          at("STATE", "/state"), at("PROGRESS", "/progress"), at("MESSAGE", "/message")};
}

Columns token_columns() {
  return {at("ID", "/id"), at("NAME", "/name"), at("ROLE", "/role"), at("REVOKED", "/revoked"),
          time_col("EXPIRES", "/expires_ms")};
}

Columns join_token_secret_columns() {
  return {at("ID", "/id"), at("TOKEN", "/token"), time_col("EXPIRES", "/expires_ms")};
}

Columns join_token_columns() {
  return {at("ID", "/id"), time_col("CREATED", "/created_ms"), time_col("EXPIRES", "/expires_ms"),
          at("USED-BY-HOST", "/used_by_host")};
}

}  // namespace strata::cli
