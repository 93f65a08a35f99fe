// Prometheus exposition for the API, on prometheus-cpp (core: registry, metric families,
// text serializer): request counts by route/method/status and latency histograms by route.
// Gauges (VMs/hosts by state) are built by the /metrics handler from the store at scrape
// time (gauge_family) and serialized with the same serializer. Every label value comes
// from a bounded set: routes are patterns (or "unmatched"), methods the standard ones (or
// "other"), statuses what handlers return.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/histogram.h>
#include <prometheus/metric_family.h>
#include <prometheus/registry.h>

namespace strata::manager {

class HttpMetrics {
 public:
  HttpMetrics();
  HttpMetrics(const HttpMetrics&) = delete;
  HttpMetrics& operator=(const HttpMetrics&) = delete;

  void record(const std::string& route, const std::string& method, unsigned status,
              double seconds);
  // Appends the request metrics in Prometheus text format (version 0.0.4).
  void render(std::string& out) const;
  // The method as a label value: a standard HTTP method, else "other" (a client can send
  // any token as a method; one series each would grow without bound).
  static std::string method_label(std::string_view method);

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Counter>& requests_;
  prometheus::Family<prometheus::Histogram>& latency_;
};

// A gauge family computed at scrape time: one series per map entry, labelled `label`.
prometheus::MetricFamily gauge_family(std::string name, std::string help, const std::string& label,
                                      const std::map<std::string, int>& values);
// Appends families in Prometheus text format.
void render_families(const std::vector<prometheus::MetricFamily>& families, std::string& out);

}  // namespace strata::manager
