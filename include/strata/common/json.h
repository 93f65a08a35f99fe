// The one strict JSON parser for untrusted text (REST bodies, QMP replies, files written by
// other processes): bounded nesting depth and value count, so no later recursive walk
// (dump, copy, compare) can overflow a stack; duplicate object keys rejected instead of
// silently keeping the last one. Never throws.
#pragma once

#include <cstddef>
#include <string_view>

#include <nlohmann/json.hpp>

#include "strata/common/error.h"

namespace strata {

struct JsonLimits {
  size_t max_depth = 32;        // nesting of objects and arrays; the root container is depth 1
  size_t max_values = 100000;   // every value counts: containers, keys' values, array items
};

// Parses `text` as one JSON value. Errors are invalid_argument; a duplicate key names the
// key (dotted path from the root, e.g. "disks[0].name") in Error::field.
Result<nlohmann::json> parse_json(std::string_view text, const JsonLimits& limits = {});

}  // namespace strata
