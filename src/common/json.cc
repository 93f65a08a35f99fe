// Strict JSON parsing (see json.h): nlohmann's parser is iterative, so a SAX handler that
// builds the document itself can refuse depth, size and duplicate keys before anything
// recursive ever touches the value.
#include "strata/common/json.h"

#include <optional>
#include <string>
#include <vector>

#include <fmt/format.h>

namespace strata {

namespace {

using json = nlohmann::json;

class StrictBuilder final : public nlohmann::json_sax<json> {
 public:
  explicit StrictBuilder(const JsonLimits& limits) : limits_(limits) {}

  bool null() override { return value(json(nullptr)); }
  bool boolean(bool v) override { return value(json(v)); }
  bool number_integer(number_integer_t v) override { return value(json(v)); }
  bool number_unsigned(number_unsigned_t v) override { return value(json(v)); }
  bool number_float(number_float_t v, const string_t&) override { return value(json(v)); }
  bool string(string_t& v) override { return value(json(std::move(v))); }
  bool binary(binary_t&) override { return fail("", "binary values are not JSON"); }

  bool start_object(std::size_t) override { return open(json::object()); }
  bool start_array(std::size_t) override { return open(json::array()); }
  bool end_object() override { return close(); }
  bool end_array() override { return close(); }

  bool key(string_t& k) override {
    json* obj = stack_.back().value;
    if (obj->contains(k)) {
      std::string field = path(k);
      return fail(field, fmt::format("duplicate key '{}'", field));
    }
    stack_.back().key = k;
    slot_ = &(*obj)[k];
    return true;
  }

  bool parse_error(std::size_t position, const std::string&,
                   const nlohmann::detail::exception& e) override {
    if (!error_) {
      // nlohmann's message repeats the position; keep the part after "parse error".
      std::string what = e.what();
      auto colon = what.rfind(": ");
      error_ = Error{ErrorCode::invalid_argument,
                     fmt::format("malformed JSON at byte {}: {}", position,
                                 colon == std::string::npos ? what : what.substr(colon + 2)),
                     ""};
    }
    return false;
  }

  Result<json> take() {
    if (error_) return tl::unexpected(*error_);
    return std::move(root_);
  }

 private:
  struct Frame {
    json* value;
    std::string key;  // last key seen in an object (for error paths)
  };

  bool count() {
    if (++values_ > limits_.max_values)
      return fail("", fmt::format("JSON holds more than {} values", limits_.max_values));
    return true;
  }

  json* place(json v) {
    if (stack_.empty()) {
      root_ = std::move(v);
      return &root_;
    }
    json* top = stack_.back().value;
    if (top->is_array()) {
      top->push_back(std::move(v));
      return &top->back();
    }
    *slot_ = std::move(v);
    return slot_;
  }

  bool value(json v) {
    if (!count()) return false;
    place(std::move(v));
    return true;
  }

  bool open(json container) {
    if (!count()) return false;
    if (stack_.size() + 1 > limits_.max_depth)
      return fail("", fmt::format("JSON nests deeper than {} levels", limits_.max_depth));
    stack_.push_back(Frame{place(std::move(container)), {}});
    return true;
  }

  bool close() {
    stack_.pop_back();
    return true;
  }

  // "a.b[2].c" for the key `k` about to be added to the innermost object.
  std::string path(const std::string& k) const {
    std::string out;
    for (size_t i = 0; i + 1 < stack_.size(); ++i) {
      const Frame& f = stack_[i];
      if (f.value->is_array()) {
        out += fmt::format("[{}]", f.value->size() - 1);
      } else {
        if (!out.empty()) out += '.';
        out += f.key.substr(0, 64);
      }
    }
    if (!out.empty()) out += '.';
    out += k.substr(0, 64);
    return out;
  }

  bool fail(std::string field, std::string message) {
    if (!error_) error_ = Error{ErrorCode::invalid_argument, std::move(message), std::move(field)};
    return false;
  }

  JsonLimits limits_;
  json root_;
  std::vector<Frame> stack_;
  json* slot_ = nullptr;
  size_t values_ = 0;
  std::optional<Error> error_;
};

}  // namespace

Result<nlohmann::json> parse_json(std::string_view text, const JsonLimits& limits) {
  StrictBuilder builder(limits);
  bool ok = json::sax_parse(text.begin(), text.end(), &builder, nlohmann::detail::input_format_t::json,
                            /*strict=*/true);
  auto result = builder.take();
  if (!ok && result) return invalid_argument("", "malformed JSON");
  return result;
}

}  // namespace strata
