// Strict JSON body parsing and field checks (see json_fields.h).
#include "strata/manager/api/json_fields.h"

#include <fmt/format.h>

namespace strata::manager {

std::string_view to_string(JsonType t) {
  switch (t) {
    case JsonType::string: return "a string";
    case JsonType::boolean: return "a boolean";
    case JsonType::integer: return "an integer";
    case JsonType::unsigned_integer: return "a non-negative integer";
    case JsonType::number: return "a number";
    case JsonType::object: return "an object";
    case JsonType::array: return "an array";
    case JsonType::any: return "any value";
  }
  return "?";
}

Result<nlohmann::json> parse_json_object(std::string_view body, bool allow_empty) {
  if (body.empty() && allow_empty) return nlohmann::json::object();
  // The one strict parser: bounded depth and size, duplicate keys refused (naming the key).
  auto j = parse_json(body, kRequestJsonLimits);
  if (!j) {
    Error e = j.error();
    e.message = "request body: " + e.message;
    return tl::unexpected(std::move(e));
  }
  if (!j->is_object()) return invalid_argument("", "request body must be a JSON object");
  return j;
}

namespace {

bool has_type(const nlohmann::json& v, JsonType t) {
  switch (t) {
    case JsonType::string: return v.is_string();
    case JsonType::boolean: return v.is_boolean();
    case JsonType::integer: return v.is_number_integer();
    case JsonType::unsigned_integer: return v.is_number_unsigned();
    case JsonType::number: return v.is_number();
    case JsonType::object: return v.is_object();
    case JsonType::array: return v.is_array();
    case JsonType::any: return true;
  }
  return false;
}

}  // namespace

Status check_fields(const nlohmann::json& obj, std::span<const FieldDecl> decls,
                    std::string_view prefix) {
  if (!obj.is_object())
    return invalid_argument(std::string(prefix), "must be an object");
  for (auto it = obj.begin(); it != obj.end(); ++it) {
    const FieldDecl* decl = nullptr;
    for (const auto& d : decls)
      if (d.name == it.key()) decl = &d;
    // Keys are untrusted: keep what is echoed back short.
    std::string field = fmt::format("{}{}", prefix, it.key().substr(0, 64));
    if (!decl) return invalid_argument(field, fmt::format("unknown field '{}'", field));
    if (it->is_null() && (decl->nullable || !decl->required)) continue;
    if (!has_type(*it, decl->type))
      return invalid_argument(field, fmt::format("{} must be {}", field, to_string(decl->type)));
  }
  for (const auto& d : decls) {
    if (!d.required) continue;
    auto it = obj.find(d.name);
    if (it == obj.end() || it->is_null())
      return invalid_argument(fmt::format("{}{}", prefix, d.name),
                              fmt::format("{}{} is required", prefix, d.name));
  }
  return {};
}

const nlohmann::json* optional_member(const nlohmann::json& obj, std::string_view key) {
  if (!obj.is_object()) return nullptr;
  auto it = obj.find(key);
  return it == obj.end() || it->is_null() ? nullptr : &*it;
}

std::string optional_string(const nlohmann::json& obj, std::string_view key, std::string def) {
  const auto* v = optional_member(obj, key);
  return v && v->is_string() ? v->get<std::string>() : def;
}

bool optional_bool(const nlohmann::json& obj, std::string_view key, bool def) {
  const auto* v = optional_member(obj, key);
  return v && v->is_boolean() ? v->get<bool>() : def;
}

uint64_t optional_uint(const nlohmann::json& obj, std::string_view key, uint64_t def) {
  const auto* v = optional_member(obj, key);
  return v && v->is_number_unsigned() ? v->get<uint64_t>() : def;
}

}  // namespace strata::manager
