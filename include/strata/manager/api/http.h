// Transport-neutral HTTP request/response values. Handlers and the router see only these;
// the Beast server (http_server.h) converts to and from the wire. Long-lived responses
// (server-sent events, WebSocket) carry a callback the server runs on a dedicated thread.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "strata/common/error.h"

namespace strata::manager {

// Roles, ordered: each role may do everything the ones before it may.
enum class Role : uint8_t { viewer = 0, operator_ = 1, admin = 2 };
std::string_view to_string(Role r);
std::optional<Role> role_from_string(std::string_view s);

// Who made a request (filled by the authenticator).
struct Principal {
  std::string token_id;
  std::string name;  // the token's name: the actor in the audit log
  Role role = Role::viewer;
};

struct HttpRequest {
  std::string method;  // "GET", "POST", ...
  std::string path;    // decoded path without the query
  std::map<std::string, std::string> query;    // decoded; last value wins
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
  // Routes that stream their body (HttpServerConfig::streams_body): the temp file holding
  // it; `body` stays empty. The server removes the file after the response unless the
  // handler moved it away.
  std::string body_file;
  std::map<std::string, std::string> params;   // path parameters from the route pattern
  std::string route;                            // the matched pattern (for metrics)
  std::optional<Principal> principal;

  std::string header(const std::string& lower_name) const;
  std::string param(const std::string& name) const;
};

// Server side of a WebSocket connection (the server performs the upgrade).
class WebSocket {
 public:
  virtual ~WebSocket() = default;
  virtual bool send(std::string_view data, bool binary) = 0;  // false once closed
  // Blocks for the next message; nullopt when the peer closed or the socket failed.
  virtual std::optional<std::string> receive() = 0;
  virtual void close() = 0;
};

// A text/event-stream being written to a client.
class EventStream {
 public:
  virtual ~EventStream() = default;
  // Writes raw bytes (already SSE-framed); false once the client is gone.
  virtual bool write(std::string_view data) = 0;
};

struct HttpResponse {
  unsigned status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
  // Exactly one of these may be set for long-lived responses; body is then ignored.
  std::function<void(WebSocket&)> websocket;
  std::function<void(EventStream&)> event_stream;
  // For the audit log: the target when the route has no {name}/{id} ("vm/web-1").
  std::string audit_target;

  static HttpResponse json(unsigned status, const nlohmann::json& j);
  static HttpResponse text(unsigned status, std::string body, std::string content_type);
};

// The single mapping from the shared error codes to HTTP statuses.
unsigned http_status(ErrorCode code);

// The error envelope: {"error":{"code","message","field"?}} with the mapped status.
HttpResponse error_response(const Error& e);

}  // namespace strata::manager
