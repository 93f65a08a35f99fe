// Path-segment router with {param} captures and 404/405 distinction.
#include "strata/manager/api/router.h"

namespace strata::manager {

std::vector<std::string> split_path(std::string_view path) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i <= path.size()) {
    size_t j = path.find('/', i);
    if (j == std::string_view::npos) j = path.size();
    if (j > i) out.emplace_back(path.substr(i, j - i));
    i = j + 1;
  }
  return out;
}

void Router::add(std::string method, std::string pattern, RouteOptions options,
                 Handler handler) {
  auto r = std::make_unique<Route>();
  r->method = std::move(method);
  r->segments = split_path(pattern);
  r->pattern = std::move(pattern);
  r->options = options;
  r->handler = std::move(handler);
  routes_.push_back(std::move(r));
}

namespace {

// Number of literal segments matched, or -1 when the pattern does not match.
int match_segments(const Route& r, const std::vector<std::string>& segs,
                   std::map<std::string, std::string>* params) {
  if (r.segments.size() != segs.size()) return -1;
  int literals = 0;
  for (size_t i = 0; i < segs.size(); ++i) {
    const std::string& p = r.segments[i];
    if (p.size() >= 2 && p.front() == '{' && p.back() == '}') {
      if (params) (*params)[p.substr(1, p.size() - 2)] = segs[i];
    } else if (p == segs[i]) {
      ++literals;
    } else {
      return -1;
    }
  }
  return literals;
}

}  // namespace

RouteMatch Router::match(std::string_view method, std::string_view path) const {
  RouteMatch m;
  m.status = 404;
  auto segs = split_path(path);
  int best = -1;
  bool path_matched = false;
  for (const auto& r : routes_) {
    int score = match_segments(*r, segs, nullptr);
    if (score < 0) continue;
    path_matched = true;
    if (r->method != method || score <= best) continue;
    best = score;
    m.route = r.get();
  }
  if (m.route) {
    m.status = 200;
    match_segments(*m.route, segs, &m.params);
  } else if (path_matched) {
    m.status = 405;
  }
  return m;
}

}  // namespace strata::manager
