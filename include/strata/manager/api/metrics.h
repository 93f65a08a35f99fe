// Prometheus text exposition for the API: request counts by route/method/status and
// latency (sum, count, histogram buckets) by route. Gauges (VMs/hosts by state) are added
// by the /metrics handler from the store at scrape time.
#pragma once

#include <map>
#include <mutex>
#include <string>
#include <tuple>
#include <vector>

namespace strata::manager {

class HttpMetrics {
 public:
  void record(const std::string& route, const std::string& method, unsigned status,
              double seconds);
  // Appends the request metrics in Prometheus text format.
  void render(std::string& out) const;

 private:
  struct Latency {
    std::vector<uint64_t> buckets;
    double sum = 0;
    uint64_t count = 0;
  };
  mutable std::mutex mu_;
  std::map<std::tuple<std::string, std::string, unsigned>, uint64_t> counts_;
  std::map<std::string, Latency> latency_;
};

// Escapes a Prometheus label value.
std::string prom_escape(const std::string& v);

}  // namespace strata::manager
