// Request counters and latency histograms on prometheus-cpp (see metrics.h).
#include "strata/manager/api/metrics.h"

#include <prometheus/text_serializer.h>

namespace strata::manager {

namespace {
const prometheus::Histogram::BucketBoundaries& buckets() {
  static const prometheus::Histogram::BucketBoundaries b = {0.001, 0.005, 0.01, 0.025, 0.05,
                                                            0.1,   0.25,  0.5,  1.0,   5.0};
  return b;
}
}  // namespace

HttpMetrics::HttpMetrics()
    : registry_(std::make_shared<prometheus::Registry>()),
      requests_(prometheus::BuildCounter()
                    .Name("strata_http_requests_total")
                    .Help("HTTP requests by route, method and status.")
                    .Register(*registry_)),
      latency_(prometheus::BuildHistogram()
                   .Name("strata_http_request_duration_seconds")
                   .Help("Request latency by route.")
                   .Register(*registry_)) {}

std::string HttpMetrics::method_label(std::string_view method) {
  for (std::string_view m : {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
    if (method == m) return std::string(m);
  return "other";
}

void HttpMetrics::record(const std::string& route, const std::string& method, unsigned status,
                         double seconds) {
  // Family::Add returns the existing series for known labels (thread-safe inside).
  requests_.Add({{"route", route}, {"method", method_label(method)}, {"status", std::to_string(status)}})
      .Increment();
  latency_.Add({{"route", route}}, buckets()).Observe(seconds);
}

void HttpMetrics::render(std::string& out) const { render_families(registry_->Collect(), out); }

prometheus::MetricFamily gauge_family(std::string name, std::string help, const std::string& label,
                                      const std::map<std::string, int>& values) {
  prometheus::MetricFamily f;
  f.name = std::move(name);
  f.help = std::move(help);
  f.type = prometheus::MetricType::Gauge;
  for (const auto& [value, n] : values) {
    prometheus::ClientMetric m;
    m.label.push_back({label, value});
    m.gauge.value = n;
    f.metric.push_back(std::move(m));
  }
  return f;
}

void render_families(const std::vector<prometheus::MetricFamily>& families, std::string& out) {
  out += prometheus::TextSerializer().Serialize(families);
}

}  // namespace strata::manager
