// The recorded QMP transcripts the inventory tests replay (fixtures/qmp/NAME).
#pragma once

#include <string>

#include "common/test_util.h"

namespace strata::agent {

inline std::string transcript(const std::string& name) {
  return test::slurp(std::string(STRATA_INVENTORY_FIXTURES) + "/qmp/" + name);
}

}  // namespace strata::agent
