// A small synchronous HTTP/1.1 client (Boost.Beast, plain http:// only) for enrollment and
// tests that talk to stratad's REST API.
#pragma once

#include <string>

#include "strata/common/error.h"

namespace strata::enroll {

struct HttpResult {
  unsigned status = 0;
  std::string body;
  std::string content_type;
};

// method: "GET", "POST", ...; base_url: "http://HOST:PORT"; target: "/api/v1/...".
// unavailable when the server cannot be reached; never throws.
Result<HttpResult> http_request(const std::string& base_url, const std::string& method,
                                const std::string& target, const std::string& body,
                                const std::string& bearer = {});

}  // namespace strata::enroll
