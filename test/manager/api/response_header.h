// The value of a response's header (first match), or "" (the API tests share it).
#pragma once

#include <string>
#include <string_view>

#include "strata/manager/api/http.h"

namespace strata::manager {

inline std::string header(const HttpResponse& r, std::string_view name) {
  for (const auto& [k, v] : r.headers)
    if (k == name) return v;
  return "";
}

}  // namespace strata::manager
