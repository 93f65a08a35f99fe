// Incremental parser for server-sent events (text/event-stream), per the WHATWG rules the
// CLI needs: "id:", "event:", "data:" (multi-line joined by \n), comments, CRLF or LF.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace strata::cli {

struct SseEvent {
  std::string id;
  std::string event = "message";
  std::string data;
};

class SseParser {
 public:
  // Feeds bytes as they arrive; returns the events completed by them.
  std::vector<SseEvent> feed(std::string_view bytes);

 private:
  void line(std::string_view l, std::vector<SseEvent>& out);
  std::string buffer_;
  SseEvent current_;
  bool has_data_ = false;
};

}  // namespace strata::cli
