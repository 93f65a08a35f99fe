// Remembers the outcome of recent mutating requests by their caller-chosen request id, so
// a repeated request (a manager retry after a timeout, a reconnect) gets the original
// answer instead of acting twice. Bounded LRU; persisted as an append-only JSON-lines file
// in the agent's state folder (compacted when it grows), so an agent restart keeps it.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>

#include "strata/common/error.h"

namespace strata::agent::service {

// What a request produced: a gRPC status code (0 = OK), its message and binary details,
// and the serialized response message.
struct RequestOutcome {
  int status_code = 0;
  std::string message;
  std::string details;
  std::string response;

  bool operator==(const RequestOutcome&) const = default;
};

// The remembered entry: which request it was (method + fingerprint of its content) and
// what it produced.
struct RequestRecord {
  std::string method;
  std::string fingerprint;
  RequestOutcome outcome;
};

// 1..128 characters of [A-Za-z0-9._:-].
Status validate_request_id(std::string_view id);

// Stable 64-bit FNV-1a of the bytes, as 16 hex digits (persisted, so never std::hash).
std::string fingerprint(std::string_view bytes);

class RequestLog {
 public:
  // `path` empty keeps the log in memory only. Loads the file if present; a corrupt line
  // (torn last write) is skipped.
  static Result<std::unique_ptr<RequestLog>> open(std::string path, size_t capacity = 4096);
  ~RequestLog();

  // Looks the id up. If it is known, returns its record (the caller checks that method
  // and fingerprint match). If another thread is executing the same id right now, waits
  // for it to finish. Otherwise marks it in flight and returns nullopt: the caller runs
  // the request and must call finish() (or abandon()).
  std::optional<RequestRecord> begin(const std::string& id);
  // Stores the outcome (persisting it) and releases waiters.
  Status finish(const std::string& id, RequestRecord record);
  // Releases the id without remembering anything (retryable failure).
  void abandon(const std::string& id);

  size_t size() const;
  std::optional<RequestRecord> peek(const std::string& id) const;

  // Prefer open(), which also loads the file.
  RequestLog(std::string path, size_t capacity);

 private:
  Status load();
  Status append_line(const std::string& id, const RequestRecord& record);
  Status compact_locked();
  void insert_locked(const std::string& id, RequestRecord record);

  std::string path_;
  size_t capacity_;
  int fd_ = -1;
  size_t lines_in_file_ = 0;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::set<std::string> in_flight_;
  // LRU: most recent at the front.
  std::list<std::pair<std::string, RequestRecord>> order_;
  std::unordered_map<std::string, std::list<std::pair<std::string, RequestRecord>>::iterator>
      index_;
};
using RequestLogPtr = std::unique_ptr<RequestLog>;

}  // namespace strata::agent::service
