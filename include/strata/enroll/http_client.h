// A small synchronous HTTP/1.1 client (Boost.Beast) for enrollment and tests that talk to
// stratad's REST API: http://, or https:// with the server verified (see tls_trust.h).
#pragma once

#include <string>

#include "strata/common/error.h"
#include "strata/enroll/tls_trust.h"

namespace strata::enroll {

struct HttpResult {
  unsigned status = 0;
  std::string body;
  std::string content_type;
};

// method: "GET", "POST", ...; base_url: "http://HOST:PORT" or "https://HOST:PORT";
// target: "/api/v1/...". `trust` decides which server certificate https accepts (the
// system trust store when empty). unavailable when the server cannot be reached or is not
// trusted; never throws.
Result<HttpResult> http_request(const std::string& base_url, const std::string& method,
                                const std::string& target, const std::string& body,
                                const std::string& bearer = {}, const TlsTrust& trust = {});

}  // namespace strata::enroll
