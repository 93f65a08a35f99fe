// Routes "METHOD /pattern/{param}" to handlers. A route also says which role it needs
// (nullopt: no bearer token, e.g. /healthz or host enrollment) and how large its body may
// be. Matching is by path segments; literal segments win over parameters.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "strata/manager/api/http.h"

namespace strata::manager {

class RateLimiter;

using Handler = std::function<HttpResponse(HttpRequest&)>;

inline constexpr size_t kDefaultBodyLimit = 1024 * 1024;  // 1 MiB

struct RouteOptions {
  std::optional<Role> role = Role::viewer;  // nullopt: unauthenticated route
  size_t max_body = kDefaultBodyLimit;
  std::string action;  // non-empty: a mutating route, audited as this action ("vm.create")
  // The body is streamed to a temp file (HttpRequest::body_file), not held in memory;
  // max_body is then that route's own cap.
  bool stream_body = false;
  // Streamed routes: checks on the header alone (query, names taken) before the body is
  // read; a response it returns is sent instead (and audited). Null: none.
  std::function<std::optional<HttpResponse>(HttpRequest& head)> precheck;
  // The handler is slow (runs a process, hashes a large file, calls hosts): it runs on the
  // API's worker pool, never on an HTTP I/O thread; 503 with Retry-After when the pool's
  // queue is full.
  bool offload = false;
  // Requests per client address (HttpRequest::remote_address), checked on the header
  // before anything else; 429 with Retry-After when refused. Null: none.
  RateLimiter* rate_limit = nullptr;
};

struct Route {
  std::string method;
  std::string pattern;
  RouteOptions options;
  Handler handler;
  std::vector<std::string> segments;
};

struct RouteMatch {
  const Route* route = nullptr;                // null: see status
  std::map<std::string, std::string> params;
  unsigned status = 200;                       // 404 (no path) or 405 (path, other method)
};

class Router {
 public:
  void add(std::string method, std::string pattern, RouteOptions options, Handler handler);
  RouteMatch match(std::string_view method, std::string_view path) const;
  const std::vector<std::unique_ptr<Route>>& routes() const { return routes_; }

 private:
  std::vector<std::unique_ptr<Route>> routes_;
};

// Splits "/a/b/c" into {"a","b","c"} (empty segments dropped).
std::vector<std::string> split_path(std::string_view path);

}  // namespace strata::manager
