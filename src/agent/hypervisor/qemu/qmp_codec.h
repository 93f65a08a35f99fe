// QMP wire codec, pure: splits the byte stream into newline-delimited JSON messages,
// classifies each (greeting, return, error, event) and encodes commands. Malformed input
// becomes an Error, never an exception or a crash.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "strata/common/error.h"

namespace strata::agent::qemu {

enum class QmpKind { greeting, ret, error, event };

struct QmpMessage {
  QmpKind kind = QmpKind::ret;
  nlohmann::json id;         // null when absent
  nlohmann::json payload;    // greeting: the "QMP" object; ret: the return value;
                             // error: {"class","desc"}; event: "data" (null when absent)
  std::string event;         // event name
  int64_t timestamp_us = 0;  // events only
  std::string error_class;   // errors only
  std::string error_desc;    // errors only
};

// Parses one line (without the terminating newline).
Result<QmpMessage> parse_qmp_message(std::string_view line);

// How a command is sent: "execute" (in-band: QEMU runs them one at a time, in order, under
// its main lock) or "exec-oob" (out-of-band, only after `qmp_capabilities` enabled "oob" and
// only for commands QEMU's schema marks allow-oob: QEMU runs it at once on the monitor's own
// thread, even while an in-band command is stuck; its reply may overtake in-band replies).
enum class QmpExec { in_band, oob };

// {"execute" | "exec-oob": cmd, "arguments": args (omitted when null/empty), "id": id} + "\n".
std::string encode_qmp_command(std::string_view command, const nlohmann::json& arguments,
                               const nlohmann::json& id, QmpExec how = QmpExec::in_band);

// Maps a QMP error class to our error code (CommandNotFound -> not_found, ...).
Error qmp_error_to_error(const QmpMessage& m);

// Accumulates bytes and yields complete lines. A line longer than `max_line` is an error
// (a broken or hostile peer must not make us buffer without bound); after an error the
// framer stays failed.
class QmpFramer {
 public:
  explicit QmpFramer(size_t max_line = 16u << 20) : max_line_(max_line) {}
  Status feed(std::string_view bytes);
  // Next complete line (CR/LF stripped, blank lines skipped), or nullopt when none yet.
  std::optional<std::string> next_line();
  bool failed() const { return failed_; }

 private:
  std::string buf_;
  size_t pos_ = 0;   // start of the first line not yet returned by next_line()
  size_t scan_ = 0;  // bytes of buf_ already known to hold no newline (scan_ >= pos_)
  size_t tail_ = 0;  // bytes of buf_ after its last newline
  size_t max_line_;
  bool failed_ = false;
};

}  // namespace strata::agent::qemu
