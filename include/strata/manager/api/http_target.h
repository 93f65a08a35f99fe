// The request target of an HTTP request ("/a%20b?x=1&y") split into a decoded path and a
// query map. Pure (no I/O, no Beast), so it is unit-tested and fuzzed on its own
// (fuzz/targets/http_target.cc).
#pragma once

#include <map>
#include <string>
#include <string_view>

namespace strata::manager {

// Splits "/a%20b?x=1&y" into a decoded path and query map ('+' is a space in the query
// only). false on bad escapes ("%zz", a '%' without two hex digits).
bool parse_target(std::string_view target, std::string* path,
                  std::map<std::string, std::string>* query);

}  // namespace strata::manager
