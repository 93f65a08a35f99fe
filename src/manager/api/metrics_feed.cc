// Live metrics samples over SSE (see metrics_feed.h).
#include "strata/manager/api/metrics_feed.h"

#include <algorithm>

#include <fmt/format.h>

namespace strata::manager {

std::string metrics_frame(int64_t time_ms, const std::string& data) {
  // data is one line of JSON (protobuf's printer, or the store's text): no newline can
  // end the SSE field early; a stray one would, so replace any.
  std::string one_line = data.empty() ? "{}" : data;
  std::replace(one_line.begin(), one_line.end(), '\n', ' ');
  std::replace(one_line.begin(), one_line.end(), '\r', ' ');
  return fmt::format("event: metrics\ndata: {{\"time_ms\":{},\"data\":{}}}\n\n", time_ms,
                     one_line);
}

void MetricsFeed::subscribe(const std::string& host_id, const std::shared_ptr<EventStream>& out) {
  std::lock_guard lock(mu_);
  subs_.push_back(Sub{host_id, out});
}

void MetricsFeed::publish(const std::string& host_id, int64_t time_ms, const std::string& data) {
  std::string frame;
  std::lock_guard lock(mu_);
  subs_.erase(std::remove_if(subs_.begin(), subs_.end(),
                             [&](const Sub& s) {
                               auto out = s.out.lock();
                               if (!out || out->closed()) return true;
                               if (s.host_id != host_id) return false;
                               if (frame.empty()) frame = metrics_frame(time_ms, data);
                               return !out->write(frame);
                             }),
              subs_.end());
}

size_t MetricsFeed::subscribers() const {
  std::lock_guard lock(mu_);
  return subs_.size();
}

}  // namespace strata::manager
