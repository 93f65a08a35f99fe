// Rendering of server objects for people (aligned tables, FIELD/VALUE lists) and for
// scripts (JSON, YAML). Pure: everything returns strings.
#pragma once

#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "strata/common/error.h"

namespace strata::cli {

enum class OutputFormat { table, json, yaml };

Result<OutputFormat> parse_output_format(std::string_view text);

// A small YAML emitter: block mappings and sequences, strings quoted (JSON-style, which
// is valid YAML) whenever a plain scalar could be misread. Ends with a newline.
std::string to_yaml(const nlohmann::json& value);

// Columns padded to the widest cell, two spaces apart, no trailing blanks.
std::string render_table(const std::vector<std::string>& headers,
                         const std::vector<std::vector<std::string>>& rows);

struct Column {
  std::string header;
  std::function<std::string(const nlohmann::json&)> cell;
};
using Columns = std::vector<Column>;

// One row per item of the array `items`.
std::string render_list(const nlohmann::json& items, const Columns& columns);

// An object as an aligned FIELD/VALUE list; nested keys flattened ("spec.vcpus",
// "spec.disks[0].name"). Empty objects/arrays shown as {} / [].
std::string render_fields(const nlohmann::json& object);

// `value` in `format`: table -> render_list(items) when `columns` is non-empty and value
// is an array, else render_fields; json -> pretty JSON; yaml -> to_yaml.
std::string render(const nlohmann::json& value, OutputFormat format, const Columns& columns = {});

// Cell helpers: the value at a JSON pointer ("/status/state") as text; "-" when missing,
// null or empty.
std::string text_at(const nlohmann::json& j, std::string_view pointer);
// {"a":"1","b":"2"} -> "a=1,b=2" ("-" when empty).
std::string labels_text(const nlohmann::json& labels);
// Milliseconds since the epoch -> "2026-11-24T10:00:00Z" (UTC); "-" for 0/missing.
std::string time_text(const nlohmann::json& ms);

// Views for the resources the CLI lists.
Columns host_columns();
Columns cluster_columns();
Columns vm_columns();
Columns image_columns();
Columns event_columns();
Columns task_columns();
Columns token_columns();
Columns join_token_columns();
// Fresh tokens with their secrets (join-token create --count).
Columns join_token_secret_columns();

}  // namespace strata::cli
