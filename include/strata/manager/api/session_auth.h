// Who made a request, for the API pipeline: the bearer token in Authorization (CLI,
// scripts: unchanged), else the web console's session cookie. A cookie-authenticated
// request with an unsafe method (anything but GET/HEAD/OPTIONS) must carry X-CSRF-Token
// equal to its session's CSRF token, and one with an Origin header must come from the
// same origin (a WebSocket upgrade included): both refused with 403 otherwise. The
// session routes (POST/GET/DELETE /api/v1/session) are in session_auth.cc too.
#pragma once

#include "strata/manager/api/api_service.h"

namespace strata::manager {

Result<Principal> authenticate_request(const ApiDeps& deps, HttpRequest& req);

void add_session_routes(ApiService& api);

}  // namespace strata::manager
