// The web console's built files (web/dist: index.html + assets/ with hashed names), served
// by stratad at / next to the API. Files are read once at start into memory (the whole
// console is well under a megabyte), so a request path is only ever a key into that map:
// nothing outside the folder can be reached, whatever "..", "%2f" or symlink trick a path
// holds. Every answer carries the console's Content-Security-Policy and cache headers:
// hashed assets are immutable for a year, index.html is revalidated every time.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "strata/common/error.h"
#include "strata/manager/api/http.h"

namespace strata::manager {

// script/style/connect only from the same origin, no inline code, no framing.
std::string_view console_content_security_policy();

// True for paths the console may answer: everything but /api, /api/..., /healthz, /metrics.
bool is_console_path(std::string_view path);

// The folder stratad serves: `configured` (--web-root) when set, else the first of
// <stratad's folder>/../share/strata/web and `build_tree_default` (the source tree's
// web/dist, compiled in) that holds an index.html; nullopt when none does.
std::optional<std::string> find_web_root(const std::string& configured,
                                         const std::string& build_tree_default);

class StaticFiles {
 public:
  // Loads every regular file under `root` (which must hold index.html; at most
  // `max_total_bytes` in all).
  static Result<StaticFiles> load(const std::string& root, size_t max_total_bytes = 64u << 20);

  // A GET for a console path: the file with its type, or index.html for an application
  // route (a path with no file extension outside /assets/, so /vms/web-1 reloads into the
  // page); 404 for a missing asset or file and for a path with a "..", "." or empty
  // segment, a backslash or a NUL.
  HttpResponse serve(std::string_view path) const;

  const std::string& root() const { return root_; }
  size_t file_count() const { return files_.size(); }

 private:
  struct File {
    std::string content_type;
    std::string body;
  };
  std::string root_;
  std::map<std::string, File, std::less<>> files_;  // "index.html", "assets/index-x.js"
};

}  // namespace strata::manager
