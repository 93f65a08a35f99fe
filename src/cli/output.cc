// Tables, FIELD/VALUE lists, JSON and a small YAML emitter (see output.h).
#include "strata/cli/output.h"

#include <algorithm>
#include <cctype>

namespace strata::cli {

using nlohmann::json;

Result<OutputFormat> parse_output_format(std::string_view text) {
  if (text == "table") return OutputFormat::table;
  if (text == "json") return OutputFormat::json;
  if (text == "yaml") return OutputFormat::yaml;
  return invalid_argument(
      "output", "-o/--output must be table, json or yaml, not '" + std::string(text) + "'");
}

namespace {

bool plain_yaml_ok(const std::string& s) {
  if (s.empty()) return false;
  static const char* kReserved[] = {"true", "false", "yes",  "no",   "on",   "off",
                                    "null", "~",     "y",    "n",    "True", "False",
                                    "Null", "NULL",  "TRUE", "FALSE"};
  for (const char* r : kReserved)
    if (s == r) return false;
  // Anything that YAML could read as a number.
  if (std::isdigit(static_cast<unsigned char>(s[0])) || s[0] == '-' || s[0] == '+' || s[0] == '.')
    return false;
  if (std::string_view("!&*[]{}|>'\"%@`#,?:").find(s[0]) != std::string_view::npos) return false;
  if (s.front() == ' ' || s.back() == ' ') return false;
  for (size_t i = 0; i < s.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x20 || c == 0x7f) return false;
    if (c == ':' && (i + 1 == s.size() || s[i + 1] == ' ')) return false;
    if (c == '#' && i > 0 && s[i - 1] == ' ') return false;
  }
  return true;
}

std::string yaml_scalar(const json& v) {
  if (v.is_null()) return "null";
  if (v.is_string()) {
    const auto& s = v.get_ref<const std::string&>();
    return plain_yaml_ok(s) ? s : json(s).dump();
  }
  return v.dump();  // numbers, booleans
}

bool is_empty_container(const json& v) { return (v.is_object() || v.is_array()) && v.empty(); }

void yaml_node(const json& v, int indent, std::string& out);

void yaml_value_after_key(const json& v, int indent, std::string& out) {
  if (is_empty_container(v)) {
    out += v.is_object() ? " {}\n" : " []\n";
  } else if (v.is_object()) {
    out += "\n";
    yaml_node(v, indent + 2, out);
  } else if (v.is_array()) {
    out += "\n";
    yaml_node(v, indent, out);  // sequences under a key may sit at the key's indent
  } else {
    out += " " + yaml_scalar(v) + "\n";
  }
}

void yaml_node(const json& v, int indent, std::string& out) {
  std::string pad(static_cast<size_t>(indent), ' ');
  if (v.is_object()) {
    for (auto& [k, child] : v.items()) {
      out += pad + yaml_scalar(json(k)) + ":";
      yaml_value_after_key(child, indent, out);
    }
  } else if (v.is_array()) {
    for (const auto& item : v) {
      if (item.is_object() && !item.empty()) {
        // "- key: value" then the other keys aligned under the first.
        std::string inner;
        yaml_node(item, indent + 2, inner);
        out += pad + "- " + inner.substr(static_cast<size_t>(indent) + 2);
      } else if (item.is_array() && !item.empty()) {
        std::string inner;
        yaml_node(item, indent + 2, inner);
        out += pad + "- " + inner.substr(static_cast<size_t>(indent) + 2);
      } else if (is_empty_container(item)) {
        out += pad + (item.is_object() ? "- {}\n" : "- []\n");
      } else {
        out += pad + "- " + yaml_scalar(item) + "\n";
      }
    }
  } else {
    out += pad + yaml_scalar(v) + "\n";
  }
}

void flatten(const json& v, const std::string& prefix,
             std::vector<std::vector<std::string>>& rows) {
  if (v.is_object() && !v.empty()) {
    for (auto& [k, child] : v.items()) flatten(child, prefix.empty() ? k : prefix + "." + k, rows);
  } else if (v.is_array() && !v.empty()) {
    for (size_t i = 0; i < v.size(); ++i)
      flatten(v[i], prefix + "[" + std::to_string(i) + "]", rows);
  } else if (v.is_object()) {
    rows.push_back({prefix, "{}"});
  } else if (v.is_array()) {
    rows.push_back({prefix, "[]"});
  } else if (v.is_string()) {
    rows.push_back({prefix, v.get<std::string>()});
  } else {
    rows.push_back({prefix, v.dump()});
  }
}

}  // namespace

std::string to_yaml(const json& value) {
  if (is_empty_container(value)) return value.is_object() ? "{}\n" : "[]\n";
  std::string out;
  yaml_node(value, 0, out);
  return out;
}

std::string render_table(const std::vector<std::string>& headers,
                         const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> width(headers.size(), 0);
  for (size_t i = 0; i < headers.size(); ++i) width[i] = headers[i].size();
  for (const auto& r : rows)
    for (size_t i = 0; i < r.size() && i < width.size(); ++i)
      width[i] = std::max(width[i], r[i].size());
  auto line = [&](const std::vector<std::string>& cells) {
    std::string out;
    for (size_t i = 0; i < width.size(); ++i) {
      std::string c = i < cells.size() ? cells[i] : "";
      out += c;
      if (i + 1 < width.size()) out += std::string(width[i] - c.size() + 2, ' ');
    }
    while (!out.empty() && out.back() == ' ') out.pop_back();
    return out + "\n";
  };
  std::string out = line(headers);
  for (const auto& r : rows) out += line(r);
  return out;
}

std::string render_list(const json& items, const Columns& columns) {
  std::vector<std::string> headers;
  for (const auto& c : columns) headers.push_back(c.header);
  std::vector<std::vector<std::string>> rows;
  if (items.is_array())
    for (const auto& item : items) {
      std::vector<std::string> row;
      for (const auto& c : columns) row.push_back(c.cell(item));
      rows.push_back(std::move(row));
    }
  return render_table(headers, rows);
}

std::string render_fields(const json& object) {
  std::vector<std::vector<std::string>> rows;
  flatten(object, "", rows);
  return render_table({"FIELD", "VALUE"}, rows);
}

std::string render(const json& value, OutputFormat format, const Columns& columns) {
  switch (format) {
    case OutputFormat::json:
      return value.dump(2) + "\n";
    case OutputFormat::yaml:
      return to_yaml(value);
    case OutputFormat::table:
      if (!columns.empty() && value.is_array()) return render_list(value, columns);
      return render_fields(value);
  }
  return {};
}

}  // namespace strata::cli
