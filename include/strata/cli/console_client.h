// `strata vm console`: the WebSocket client for /api/v1/vms/{name}/console. Output frames
// go to a callback; bytes read from an input fd go to the server. Ends when the server
// closes, on the detach key (Ctrl-]), when --until text is seen, after --timeout, or (for
// --tail) after a short silence.
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "strata/cli/http_client.h"
#include "strata/cli/requests.h"
#include "strata/common/error.h"

namespace strata::cli {

inline constexpr char kDetachKey = 0x1d;  // Ctrl-]

// Finds `needle` in a byte stream that arrives in pieces (matches across piece borders).
class UntilMatcher {
 public:
  explicit UntilMatcher(std::string needle) : needle_(std::move(needle)) {}
  // True once the needle has been seen (stays true).
  bool feed(std::string_view bytes);
  bool matched() const { return matched_; }

 private:
  std::string needle_;
  std::string carry_;  // the last needle.size()-1 bytes seen
  bool matched_ = false;
};

struct ConsoleOptions {
  int input_fd = -1;        // -1: send nothing
  bool detach_key = false;  // Ctrl-] in the input ends the session (TTY mode)
  std::optional<std::string> until;
  std::optional<std::chrono::milliseconds> timeout;    // whole session
  std::optional<std::chrono::milliseconds> idle_exit;  // end after this much silence (--tail)
};

enum class ConsoleEnd { server_closed, detached, matched, idle };

// Errors: unavailable (connect/handshake), server envelopes (404, 401, ...) from a refused
// upgrade, deadline_exceeded on timeout.
Result<ConsoleEnd> run_console(const Endpoint& endpoint, const std::string& token,
                               const ApiRequest& req, const ConsoleOptions& options,
                               const std::function<void(std::string_view)>& on_output);

// Puts a TTY in raw mode for its lifetime (no echo, no line editing, no signals), so keys
// such as Ctrl-C reach the guest. Does nothing when `fd` is not a TTY.
class RawTerminal {
 public:
  explicit RawTerminal(int fd);
  ~RawTerminal();
  RawTerminal(const RawTerminal&) = delete;
  RawTerminal& operator=(const RawTerminal&) = delete;

 private:
  int fd_;
  bool active_ = false;
  struct Saved;
  std::unique_ptr<Saved> saved_;
};

}  // namespace strata::cli
