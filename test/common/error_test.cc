#include "strata/common/error.h"

#include <gtest/gtest.h>

namespace strata {

TEST(Error, InvalidArgumentCarriesField) {
  Result<int> r = invalid_argument("spec.name", "must not be empty");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::invalid_argument);
  EXPECT_EQ(r.error().field, "spec.name");
  EXPECT_EQ(r.error().to_string(), "invalid_argument [spec.name]: must not be empty");
}

TEST(Error, WrapPrefixesContext) {
  Error e{ErrorCode::unavailable, "socket closed", ""};
  EXPECT_EQ(e.wrap("qmp").message, "qmp: socket closed");
}

}  // namespace strata
