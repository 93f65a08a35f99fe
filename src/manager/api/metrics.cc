// Request counters and latency histograms in Prometheus text format.
#include "strata/manager/api/metrics.h"

#include <array>

#include <fmt/format.h>

namespace strata::manager {

namespace {
constexpr std::array<double, 10> kBuckets = {0.001, 0.005, 0.01, 0.025, 0.05,
                                             0.1,   0.25,  0.5,  1.0,   5.0};
}

std::string prom_escape(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

void HttpMetrics::record(const std::string& route, const std::string& method, unsigned status,
                         double seconds) {
  std::lock_guard lock(mu_);
  ++counts_[{route, method, status}];
  Latency& l = latency_[route];
  if (l.buckets.empty()) l.buckets.assign(kBuckets.size(), 0);
  for (size_t i = 0; i < kBuckets.size(); ++i)
    if (seconds <= kBuckets[i]) ++l.buckets[i];
  l.sum += seconds;
  ++l.count;
}

void HttpMetrics::render(std::string& out) const {
  std::lock_guard lock(mu_);
  out += "# HELP strata_http_requests_total HTTP requests by route, method and status.\n";
  out += "# TYPE strata_http_requests_total counter\n";
  for (const auto& [key, n] : counts_) {
    const auto& [route, method, status] = key;
    out += fmt::format("strata_http_requests_total{{route=\"{}\",method=\"{}\",status=\"{}\"}} {}\n",
                       prom_escape(route), method, status, n);
  }
  out += "# HELP strata_http_request_duration_seconds Request latency by route.\n";
  out += "# TYPE strata_http_request_duration_seconds histogram\n";
  for (const auto& [route, l] : latency_) {
    std::string r = prom_escape(route);
    for (size_t i = 0; i < kBuckets.size(); ++i)
      out += fmt::format("strata_http_request_duration_seconds_bucket{{route=\"{}\",le=\"{}\"}} {}\n",
                         r, kBuckets[i], l.buckets[i]);
    out += fmt::format("strata_http_request_duration_seconds_bucket{{route=\"{}\",le=\"+Inf\"}} {}\n",
                       r, l.count);
    out += fmt::format("strata_http_request_duration_seconds_sum{{route=\"{}\"}} {}\n", r, l.sum);
    out += fmt::format("strata_http_request_duration_seconds_count{{route=\"{}\"}} {}\n", r,
                       l.count);
  }
}

}  // namespace strata::manager
