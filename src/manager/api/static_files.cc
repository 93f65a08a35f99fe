// The web console's files (see static_files.h).
#include "strata/manager/api/static_files.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

namespace strata::manager {

namespace fs = std::filesystem;

namespace {

std::string_view content_type_for(std::string_view name) {
  auto dot = name.rfind('.');
  std::string_view ext = dot == std::string_view::npos ? "" : name.substr(dot + 1);
  if (ext == "html") return "text/html; charset=utf-8";
  if (ext == "js" || ext == "mjs") return "text/javascript; charset=utf-8";
  if (ext == "css") return "text/css; charset=utf-8";
  if (ext == "json" || ext == "map") return "application/json";
  if (ext == "svg") return "image/svg+xml";
  if (ext == "png") return "image/png";
  if (ext == "ico") return "image/x-icon";
  if (ext == "woff2") return "font/woff2";
  if (ext == "wasm") return "application/wasm";
  if (ext == "txt") return "text/plain; charset=utf-8";
  return "application/octet-stream";
}

HttpResponse not_found(std::string_view path) {
  return error_response(Error{ErrorCode::not_found,
                              fmt::format("no such file in the web console: {}",
                                          path.substr(0, 200)),
                              ""});
}

void add_security_headers(HttpResponse& r) {
  r.headers.emplace_back("Content-Security-Policy", std::string(console_content_security_policy()));
  r.headers.emplace_back("X-Content-Type-Options", "nosniff");
  r.headers.emplace_back("X-Frame-Options", "DENY");
  r.headers.emplace_back("Referrer-Policy", "no-referrer");
}

// The path relative to the root ("assets/x.js"), or nullopt for a path that is not a plain
// sequence of names.
std::optional<std::string> relative_name(std::string_view path) {
  if (path.empty() || path.front() != '/') return std::nullopt;
  if (path.find('\0') != std::string_view::npos || path.find('\\') != std::string_view::npos)
    return std::nullopt;
  std::string_view rest = path.substr(1);
  if (rest.empty()) return std::string("index.html");
  size_t start = 0;
  while (start <= rest.size()) {
    size_t slash = rest.find('/', start);
    std::string_view seg =
        rest.substr(start, slash == std::string_view::npos ? std::string_view::npos : slash - start);
    if (seg.empty()) {
      if (slash == std::string_view::npos) break;  // one trailing slash: /vms/ is /vms
      return std::nullopt;
    }
    if (seg == "." || seg == "..") return std::nullopt;
    if (slash == std::string_view::npos) break;
    start = slash + 1;
  }
  std::string name(rest);
  if (!name.empty() && name.back() == '/') name.pop_back();
  return name;
}

}  // namespace

std::string_view console_content_security_policy() {
  return "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
         "font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; "
         "form-action 'self'; frame-ancestors 'none'";
}

bool is_console_path(std::string_view path) {
  if (path == "/api" || path.rfind("/api/", 0) == 0) return false;
  return path != "/healthz" && path != "/metrics";
}

std::optional<std::string> find_web_root(const std::string& configured,
                                         const std::string& build_tree_default) {
  std::error_code ec;
  if (!configured.empty()) return configured;
  std::vector<fs::path> candidates;
  auto self = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) candidates.push_back(self.parent_path().parent_path() / "share/strata/web");
  if (!build_tree_default.empty()) candidates.emplace_back(build_tree_default);
  for (const auto& c : candidates)
    if (fs::is_regular_file(c / "index.html", ec)) return c.string();
  return std::nullopt;
}

Result<StaticFiles> StaticFiles::load(const std::string& root, size_t max_total_bytes) {
  std::error_code ec;
  if (!fs::is_regular_file(fs::path(root) / "index.html", ec))
    return invalid_argument("web_root",
                            fmt::format("{} holds no index.html (build the console: cd web && "
                                        "npm ci && npm run build)",
                                        root));
  StaticFiles out;
  out.root_ = root;
  size_t total = 0;
  fs::recursive_directory_iterator it(root, ec), end;
  if (ec) return internal_error(fmt::format("cannot read {}: {}", root, ec.message()));
  for (; it != end; it.increment(ec)) {
    if (ec) return internal_error(fmt::format("cannot read {}: {}", root, ec.message()));
    // Symlinks are never served (nor followed into folders): only files of the folder itself.
    if (it->is_symlink(ec) || !it->is_regular_file(ec)) continue;
    std::string rel = fs::relative(it->path(), root, ec).generic_string();
    if (ec || rel.empty() || rel.rfind("..", 0) == 0) continue;
    std::ifstream in(it->path(), std::ios::binary);
    std::ostringstream body;
    body << in.rdbuf();
    if (!in && !in.eof()) return internal_error(fmt::format("cannot read {}", it->path().string()));
    File f{std::string(content_type_for(rel)), std::move(body).str()};
    total += f.body.size();
    if (total > max_total_bytes)
      return invalid_argument("web_root", fmt::format("{} holds more than {} bytes", root,
                                                      max_total_bytes));
    out.files_.emplace(std::move(rel), std::move(f));
  }
  return out;
}

HttpResponse StaticFiles::serve(std::string_view path) const {
  auto name = relative_name(path);
  HttpResponse r;
  if (!name) {
    r = not_found(path);
  } else if (auto it = files_.find(*name); it != files_.end()) {
    r = HttpResponse::text(200, it->second.body, it->second.content_type);
    bool hashed = name->rfind("assets/", 0) == 0;
    r.headers.emplace_back("Cache-Control",
                           hashed ? "public, max-age=31536000, immutable" : "no-cache");
  } else {
    auto last_slash = name->rfind('/');
    std::string_view last = last_slash == std::string::npos ? std::string_view(*name)
                                                            : std::string_view(*name).substr(last_slash + 1);
    bool app_route = name->rfind("assets/", 0) != 0 && last.find('.') == std::string_view::npos;
    if (app_route) {
      const File& index = files_.at("index.html");
      r = HttpResponse::text(200, index.body, index.content_type);
      r.headers.emplace_back("Cache-Control", "no-cache");
    } else {
      r = not_found(path);
    }
  }
  add_security_headers(r);
  return r;
}

}  // namespace strata::manager
