// The CLI's HTTP client for stratad: Boost.Beast, synchronous, one connection per request,
// with timeouts; https verifies the server against --ca-file or the system trust store. Transport failures become Error{unavailable}; non-2xx responses become the
// server's error envelope (see exit_codes.h). Also streams request bodies from files
// (image upload) and reads server-sent-event streams.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "strata/cli/requests.h"
#include "strata/cli/sse.h"
#include "strata/common/error.h"

namespace strata::cli {

struct Endpoint {
  std::string host;       // "127.0.0.1"
  std::string port;       // "7480"
  std::string base_path;  // "" or "/prefix" when stratad sits behind a path
  bool tls = false;       // https: the server is verified (CA chain and host name)
  std::string ca_file{};  // PEM CA(s) to verify it with; empty: the system trust store
};

// "https://host[:port][/prefix]" or "http://host[:port][/prefix]".
Result<Endpoint> parse_server_url(std::string_view url);

struct HttpResult {
  unsigned status = 0;
  std::string body;
  std::string content_type;
};

// Upload progress: bytes sent so far, total bytes.
using ProgressFn = std::function<void(uint64_t sent, uint64_t total)>;

// One piece of a streamed request body: `bytes` when `path` is empty, else `size` bytes of
// the file at `path` (read in 1 MiB chunks, never held whole).
struct BodyPart {
  std::string bytes;
  std::string path;
  uint64_t size = 0;
};

class HttpClient {
 public:
  HttpClient(Endpoint endpoint, std::string token,
             std::chrono::milliseconds timeout = std::chrono::seconds(30));

  // The raw exchange; any status is a success here.
  Result<HttpResult> send(const ApiRequest& req);
  // send() + non-2xx -> Error + body parsed as JSON (an empty body -> empty object).
  Result<nlohmann::json> call(const ApiRequest& req);
  // req.method/target with the file at `path` as an application/octet-stream body.
  Result<nlohmann::json> upload(const ApiRequest& req, const std::string& path,
                                const ProgressFn& progress);
  // The parts, in order, as one body of `content_type` (a tar the CLI writes on the fly).
  Result<nlohmann::json> upload_parts(const ApiRequest& req, const std::vector<BodyPart>& parts,
                                      const std::string& content_type, const ProgressFn& progress);
  // GET a text/event-stream; calls on_event per event until it returns false or the server
  // ends the stream. `idle_timeout` bounds the silence between bytes (the server sends
  // keep-alive comments).
  Status stream_events(const ApiRequest& req, const std::function<bool(const SseEvent&)>& on_event,
                       std::chrono::milliseconds idle_timeout = std::chrono::seconds(60));

  const Endpoint& endpoint() const { return endpoint_; }
  // Per-step deadline (connect, each write; 4x for the answer after an upload).
  void set_timeout(std::chrono::milliseconds t) { timeout_ = t; }
  const std::string& token() const { return token_; }

 private:
  Endpoint endpoint_;
  std::string token_;
  std::chrono::milliseconds timeout_;
};

}  // namespace strata::cli
