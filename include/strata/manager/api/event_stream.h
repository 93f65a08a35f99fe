// The response of GET /api/v1/events/stream: takes a stream slot (or answers the limiter's
// 429/503), then streams every event after `after` from the one event fan-out.
#pragma once

#include <cstdint>
#include <string>

#include "strata/manager/api/http.h"
#include "strata/manager/api/stream_limits.h"
#include "strata/manager/events/event_fanout.h"

namespace strata::manager {

HttpResponse event_stream_response(EventFanout& fanout, StreamLimiter& limiter,
                                   const std::string& token_id, int64_t after);

}  // namespace strata::manager
