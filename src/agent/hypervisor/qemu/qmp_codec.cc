// QMP codec (see qmp_codec.h). nlohmann exceptions are caught here, at the boundary.
#include "qmp_codec.h"

#include "strata/common/json.h"

namespace strata::agent::qemu {

using nlohmann::json;

namespace {
// QMP replies nest a handful of levels; a hostile line of 20 000 '[' must not reach any
// recursive walk of the value. The value bound covers query-qmp-schema (a few 10 000s).
constexpr JsonLimits kQmpLimits{.max_depth = 128, .max_values = 4u << 20};
}  // namespace

Result<QmpMessage> parse_qmp_message(std::string_view line) {
  auto parsed = parse_json(line, kQmpLimits);
  if (!parsed) return invalid_argument("qmp", "from QEMU: " + parsed.error().message);
  json j = std::move(*parsed);
  if (!j.is_object()) return invalid_argument("qmp", "QMP message is not an object");
  QmpMessage m;
  if (auto it = j.find("id"); it != j.end()) m.id = *it;
  if (auto it = j.find("QMP"); it != j.end()) {
    if (!it->is_object()) return invalid_argument("qmp", "greeting is not an object");
    m.kind = QmpKind::greeting;
    m.payload = *it;
    return m;
  }
  if (auto it = j.find("return"); it != j.end()) {
    m.kind = QmpKind::ret;
    m.payload = *it;
    return m;
  }
  if (auto it = j.find("error"); it != j.end()) {
    if (!it->is_object()) return invalid_argument("qmp", "error is not an object");
    auto c = it->find("class");
    auto d = it->find("desc");
    if (c == it->end() || !c->is_string() || d == it->end() || !d->is_string())
      return invalid_argument("qmp", "error without class/desc");
    m.kind = QmpKind::error;
    m.payload = *it;
    m.error_class = c->get<std::string>();
    m.error_desc = d->get<std::string>();
    return m;
  }
  if (auto it = j.find("event"); it != j.end()) {
    if (!it->is_string()) return invalid_argument("qmp", "event name is not a string");
    m.kind = QmpKind::event;
    m.event = it->get<std::string>();
    if (auto d = j.find("data"); d != j.end()) {
      if (!d->is_object()) return invalid_argument("qmp", "event data is not an object");
      m.payload = *d;
    }
    if (auto ts = j.find("timestamp"); ts != j.end() && ts->is_object()) {
      auto s = ts->find("seconds"), us = ts->find("microseconds");
      // QEMU sends seconds since the epoch; anything that does not fit int64 microseconds
      // (a hostile or broken peer) reads as 0 instead of overflowing.
      auto as_i64 = [](const json& v) -> std::optional<int64_t> {
        if (v.is_number_unsigned() && v.get<uint64_t>() > uint64_t(INT64_MAX)) return {};
        if (!v.is_number_integer()) return {};
        return v.get<int64_t>();
      };
      std::optional<int64_t> sec = s != ts->end() ? as_i64(*s) : std::nullopt;
      std::optional<int64_t> usec = us != ts->end() ? as_i64(*us) : std::nullopt;
      int64_t t = 0;
      if (sec && usec && !__builtin_mul_overflow(*sec, int64_t{1000000}, &t) &&
          !__builtin_add_overflow(t, *usec, &t))
        m.timestamp_us = t;
    }
    return m;
  }
  return invalid_argument("qmp", "unknown QMP message kind");
}

std::string encode_qmp_command(std::string_view command, const json& arguments, const json& id,
                               QmpExec how) {
  json j = json::object();
  j[how == QmpExec::oob ? "exec-oob" : "execute"] = std::string(command);
  if (!arguments.is_null() && !(arguments.is_object() && arguments.empty()))
    j["arguments"] = arguments;
  if (!id.is_null()) j["id"] = id;
  // Invalid UTF-8 in a string is replaced rather than thrown on.
  return j.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
}

Error qmp_error_to_error(const QmpMessage& m) {
  ErrorCode code = ErrorCode::failed_precondition;
  if (m.error_class == "CommandNotFound" || m.error_class == "DeviceNotFound")
    code = ErrorCode::not_found;
  else if (m.error_class == "DeviceNotActive")
    code = ErrorCode::failed_precondition;
  else if (m.error_class == "KVMMissingCap")
    code = ErrorCode::unavailable;
  return Error{code, "QMP " + m.error_class + ": " + m.error_desc, {}};
}

Status QmpFramer::feed(std::string_view bytes) {
  if (failed_) return invalid_argument("qmp", "framer already failed");
  // Drop the lines next_line() already returned, once per feed: erasing each line as it was
  // read moved the rest of the buffer every time (quadratic in the lines of one read).
  if (pos_ > 0) {
    buf_.erase(0, pos_);
    scan_ -= pos_;
    pos_ = 0;
  }
  buf_.append(bytes);
  // Only the unterminated tail is bounded: complete lines are consumed by next_line(). The
  // tail is tracked from the new bytes alone: searching the whole buffer on every feed was
  // quadratic in the length of a line that arrives in small pieces (found by fuzzing).
  size_t nl = bytes.rfind('\n');
  tail_ = nl == std::string_view::npos ? tail_ + bytes.size() : bytes.size() - nl - 1;
  if (tail_ > max_line_) {
    failed_ = true;
    tail_ = scan_ = pos_ = 0;
    buf_.clear();
    return invalid_argument("qmp", "QMP line exceeds the size limit");
  }
  return {};
}

std::optional<std::string> QmpFramer::next_line() {
  while (!failed_) {
    size_t nl = buf_.find('\n', scan_);
    if (nl == std::string::npos) {
      scan_ = buf_.size();
      return std::nullopt;
    }
    std::string line = buf_.substr(pos_, nl - pos_);
    pos_ = scan_ = nl + 1;
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
    size_t start = line.find_first_not_of(" \t\r");
    if (start == std::string::npos) continue;  // blank line
    if (line.size() > max_line_) {
      failed_ = true;
      return std::nullopt;
    }
    return line.substr(start);
  }
  return std::nullopt;
}

}  // namespace strata::agent::qemu
