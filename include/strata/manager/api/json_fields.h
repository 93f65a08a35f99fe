// Strict JSON request bodies: parse (400 on malformed input), then check an object's
// fields against a small declaration: unknown fields rejected, wrong types and missing
// required fields reported as invalid_argument naming the field ("disks[0].size_bytes").
#pragma once

#include <initializer_list>
#include <span>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "strata/common/error.h"
#include "strata/common/json.h"

namespace strata::manager {

enum class JsonType { string, boolean, integer, unsigned_integer, number, object, array, any };

struct FieldDecl {
  std::string_view name;
  JsonType type;
  bool required = false;
  bool nullable = false;
};

// Limits for every REST body: request documents are shallow (a VM spec nests 3 levels);
// the value count bounds memory well below the body cap.
inline constexpr JsonLimits kRequestJsonLimits{.max_depth = 16, .max_values = 20000};

// Parses a body that must be a JSON object; an empty body is {} when allow_empty. Strict:
// duplicate keys, nesting past kRequestJsonLimits.max_depth and too many values are 400s.
Result<nlohmann::json> parse_json_object(std::string_view body, bool allow_empty = false);

// `prefix` is prepended to field names in errors ("disks[0]." or "").
Status check_fields(const nlohmann::json& obj, std::span<const FieldDecl> decls,
                    std::string_view prefix = {});
inline Status check_fields(const nlohmann::json& obj, std::initializer_list<FieldDecl> decls,
                           std::string_view prefix = {}) {
  return check_fields(obj, std::span<const FieldDecl>(decls.begin(), decls.size()), prefix);
}

std::string_view to_string(JsonType t);

// Optional members, read after check_fields has checked their type. check_fields lets null
// through for an optional field, meaning "absent": read such fields with these, never with
// nlohmann's value() or get(), which throw on null. A member of another type also gives
// nullptr / `def`.
const nlohmann::json* optional_member(const nlohmann::json& obj, std::string_view key);
std::string optional_string(const nlohmann::json& obj, std::string_view key,
                            std::string def = {});
bool optional_bool(const nlohmann::json& obj, std::string_view key, bool def);
uint64_t optional_uint(const nlohmann::json& obj, std::string_view key, uint64_t def);

}  // namespace strata::manager
