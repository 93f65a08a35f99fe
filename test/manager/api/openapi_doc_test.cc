// docs/openapi.json as linters (Redocly, Spectral) and the web console's generated client
// need it: every operation has a unique operationId and at least one declared tag.
#include <gtest/gtest.h>

#include <set>

#include <nlohmann/json.hpp>

#include "strata/manager/api/api_service.h"

namespace strata::manager {
namespace {

TEST(OpenApiDocument, EveryOperationHasAUniqueIdAndDeclaredTags) {
  auto doc = nlohmann::json::parse(openapi_document());
  std::set<std::string> declared;
  for (const auto& t : doc["tags"]) declared.insert(t["name"].get<std::string>());
  std::set<std::string> ids;
  size_t operations = 0;
  for (const auto& [path, item] : doc["paths"].items()) {
    for (const auto& [method, op] : item.items()) {
      if (method != "get" && method != "post" && method != "put" && method != "patch" &&
          method != "delete")
        continue;
      ++operations;
      ASSERT_TRUE(op.contains("operationId")) << method << " " << path;
      std::string id = op["operationId"];
      EXPECT_TRUE(ids.insert(id).second) << "operationId " << id << " is used twice";
      ASSERT_TRUE(op.contains("tags") && !op["tags"].empty()) << method << " " << path;
      for (const auto& t : op["tags"])
        EXPECT_TRUE(declared.count(t.get<std::string>()))
            << method << " " << path << ": tag " << t << " is not in the top-level tags";
    }
  }
  EXPECT_GT(operations, 30u);
}

}  // namespace
}  // namespace strata::manager
