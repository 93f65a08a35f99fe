// The HTTP request target (path and query) as the REST server decodes it, then routed
// against the API's route patterns, and a 404/400 rendered the way the server renders one.
// Properties: no crash or exception; rendering an error never throws whatever bytes the
// decoded path holds.
#include <fmt/format.h>

#include "fuzz_input.h"
#include "strata/manager/api/http_target.h"
#include "strata/manager/api/router.h"

using namespace strata::manager;

namespace {

Router& api_router() {
  static Router* r = [] {
    auto* router = new Router();
    for (const char* p :
         {"/healthz", "/metrics", "/api/v1/openapi.json", "/api/v1/tokens", "/api/v1/tokens/{id}",
          "/api/v1/join-tokens", "/api/v1/hosts", "/api/v1/hosts/enroll", "/api/v1/hosts/{name}",
          "/api/v1/hosts/{name}/metrics", "/api/v1/vms", "/api/v1/vms/{name}",
          "/api/v1/vms/{name}/start", "/api/v1/vms/{name}/console", "/api/v1/tasks",
          "/api/v1/tasks/{id}", "/api/v1/events", "/api/v1/images", "/api/v1/images/{name}"})
      router->add("GET", p, RouteOptions{}, [](HttpRequest&) { return HttpResponse{}; });
    return router;
  }();
  return *r;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view target = strata::fuzz::as_text(data, size);
  std::string path;
  std::map<std::string, std::string> query;
  if (!parse_target(target, &path, &query)) {
    (void)error_response(strata::Error{strata::ErrorCode::invalid_argument,
                                       fmt::format("bad request target {}", target), ""});
    return 0;
  }
  FUZZ_CHECK(path.size() <= target.size());
  for (const auto& [k, v] : query) FUZZ_CHECK(!k.empty());
  auto m = api_router().match("GET", path);
  if (!m.route) {
    // What ApiService::dispatch answers for an unknown path.
    auto r = error_response(strata::Error{strata::ErrorCode::not_found,
                                          fmt::format("no route for {}", path), ""});
    FUZZ_CHECK(r.status == 404);
    FUZZ_CHECK(!nlohmann::json::parse(r.body, nullptr, false).is_discarded());
  }
  for (const auto& [k, v] : query)
    (void)error_response(strata::Error{strata::ErrorCode::invalid_argument,
                                       fmt::format("{} must be an integer", k), k});
  return 0;
}
