// Live metrics samples to browsers: GET /api/v1/hosts/{name}/metrics/stream is an SSE
// stream of that host's samples as the manager records them (every heartbeat interval),
// so charts move without polling. Samples are not events (they would flood the event log
// and its retention), so they have a fan-out of their own: in memory, no replay (the page
// reads the history from GET .../metrics first), one frame per sample:
//   event: metrics\ndata: {"time_ms":...,"data":{...the sample...}}\n\n
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "strata/manager/api/http.h"

namespace strata::manager {

class MetricsFeed {
 public:
  // Follows host_id's samples until the stream closes.
  void subscribe(const std::string& host_id, const std::shared_ptr<EventStream>& out);
  // A sample was recorded (data: the sample's JSON text). Writes it to the host's streams
  // and forgets closed ones. Never blocks on a client (EventStream::write queues).
  void publish(const std::string& host_id, int64_t time_ms, const std::string& data);
  size_t subscribers() const;

 private:
  struct Sub {
    std::string host_id;
    std::weak_ptr<EventStream> out;
  };
  mutable std::mutex mu_;
  std::vector<Sub> subs_;
};

// The SSE frame of one sample.
std::string metrics_frame(int64_t time_ms, const std::string& data);

}  // namespace strata::manager
