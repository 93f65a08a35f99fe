// Caps on long-lived responses (SSE streams and console WebSockets): per token and overall,
// and on consoles (each holds two calls to an agent and a WebSocket, no thread). A route
// takes a ticket before returning a stream and keeps it for the stream's life: the slot is
// free again when the stream ends.
#pragma once

#include <cstddef>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <variant>

#include "strata/manager/api/http.h"

namespace strata::manager {

struct StreamCaps {
  int per_token = 32;   // streams (SSE + console) one token may hold open
  int total = 1000;     // streams open on this manager
  int consoles = 64;    // console WebSockets open on this manager
};

class StreamLimiter {
 public:
  explicit StreamLimiter(StreamCaps caps = {});

  using Ticket = std::shared_ptr<void>;
  // A slot for one stream of `token_id` ("" for none). Over the per-token cap: an error
  // response with status 429; over the total or console cap: 503. Both carry Retry-After.
  std::variant<Ticket, HttpResponse> acquire(const std::string& token_id, bool console);

  size_t active() const;
  const StreamCaps& caps() const { return caps_; }

 private:
  void release(const std::string& token_id, bool console);

  StreamCaps caps_;
  mutable std::mutex mu_;
  size_t total_ = 0;
  size_t consoles_ = 0;
  std::map<std::string, size_t> per_token_;
};

}  // namespace strata::manager
