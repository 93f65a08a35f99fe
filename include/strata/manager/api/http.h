// Transport-neutral HTTP request/response values. Handlers and the router see only these;
// the Beast server (http_server.h) converts to and from the wire. Long-lived responses
// (server-sent events, WebSocket) carry a callback the server runs when the stream starts.
#pragma once

#include <functional>
#include <map>
#include <memory>
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
  // Set by ApiService::admit once it authenticated and authorized this request on its
  // header: dispatch then uses that principal instead of looking the token up again (one
  // store read per request, not two).
  bool admitted = false;
  // The client's IP address (text), and whether it connected from this machine (a
  // loopback address or the server's own). Empty/false when not from a socket.
  std::string remote_address;
  bool peer_is_local = false;

  std::string header(const std::string& lower_name) const;
  std::string param(const std::string& name) const;
};

// Who made a request, as audit events name it: "token:<name>", or "anonymous".
inline std::string audit_actor(const HttpRequest& r) {
  return r.principal ? "token:" + r.principal->name : "anonymous";
}

// Server side of a WebSocket session, all asynchronous on the server's I/O threads (the
// upgrade, a message size limit, an idle timeout with pings, a bounded write queue): no
// thread per session. Thread-safe and never blocking; callbacks run on an I/O thread (on
// the stopping thread when the server stops; at once, on the caller's, for a receive() on
// a session already over) and must not block either.
class WebSocket {
 public:
  virtual ~WebSocket() = default;
  // Queues one message; false once closed. A client that does not read, so that the queue
  // goes over its bound, is disconnected (false). When send gave true, `written` (optional)
  // is called once: true when the message went out, false when the session ended first.
  // A producer that waits for it before sending more holds at most one message queued.
  virtual bool send(std::string data, bool binary,
                    std::function<void(bool written)> written = {}) = 0;
  // Asks for the client's next message: `fn` is called once with it, or with nullopt when
  // the session ended (the peer closed, the socket failed, the idle timeout passed, the
  // message was too large, the server is stopping). One receive at a time: the client is
  // not read while none is pending, so what the server buffers is bounded by one message.
  virtual void receive(std::function<void(std::optional<std::string>)> fn) = 0;
  // The closing handshake, once the queued messages are written; a pending receive then
  // gets nullopt.
  virtual void close() = 0;
};

// A text/event-stream being written to a client, asynchronously, by the server. Thread-safe
// and never blocking: write() queues the bytes (already SSE-framed); false once the stream
// is closed (client gone, server stopping, or its queue went over the bound: a client that
// does not read is disconnected).
class EventStream {
 public:
  virtual ~EventStream() = default;
  virtual bool write(std::string data) = 0;
  virtual bool closed() const = 0;
  // Bytes queued and not yet written to the socket.
  virtual size_t queued_bytes() const = 0;
  // Called from an I/O thread whenever the queue empties and once when the stream closes
  // (producers that pace themselves wait for it). Set it before the first write.
  virtual void on_drain(std::function<void()> fn) = 0;
  virtual void close() = 0;
};

struct HttpResponse {
  unsigned status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
  // Exactly one of these may be set for long-lived responses; body is then ignored. The
  // server keeps the function (and what it captures) until the stream ends.
  // websocket: called once on an I/O thread after the upgrade; must not block. Keep the
  // pointer for the session's life: the server waits for every handler to let go of its
  // WebSocket when it stops.
  std::function<void(std::shared_ptr<WebSocket>)> websocket;
  // event_stream: called once on an I/O thread after the response head is sent; must not
  // block. Keep the pointer to write events later.
  std::function<void(std::shared_ptr<EventStream>)> event_stream;
  // For the audit log: the target when the route has no {name}/{id} ("vm/web-1").
  std::string audit_target;
  // The handler already wrote this request's audit event (in the transaction of the
  // change it reports, e.g. the VM service's): the pipeline does not write a second.
  bool audit_written = false;
  // A response that is finished later, off the I/O thread (slow work: qemu-img, hashing,
  // calls to hosts): the server calls `deferred` once, right away, with `complete`, and
  // sends what `complete` is given (from any thread, exactly once). Everything else in
  // this response is ignored. A streamed upload's temp file stays until then.
  using Completion = std::function<void(HttpResponse)>;
  std::function<void(Completion complete)> deferred;

  static HttpResponse json(unsigned status, const nlohmann::json& j);
  // json() for a change whose audit event the handler's service already wrote (in the
  // change's own transaction): audit_target set, audit_written true.
  static HttpResponse audited_json(unsigned status, const nlohmann::json& j, std::string target);
  static HttpResponse text(unsigned status, std::string body, std::string content_type);
};

// The single mapping from the shared error codes to HTTP statuses.
unsigned http_status(ErrorCode code);

// The error envelope: {"error":{"code","message","field"?}} with the mapped status.
HttpResponse error_response(const Error& e);

// Bytes free for unprivileged writers in the file system holding `dir` (statvfs);
// nullopt when it cannot be read.
std::optional<uint64_t> free_bytes(const std::string& dir);

// 507 Insufficient Storage (code resource_exhausted): a request body does not fit in the
// folder `dir`. The message names the free space there and, when known, the size needed.
HttpResponse insufficient_storage(const std::string& dir, std::optional<uint64_t> needed);

}  // namespace strata::manager
