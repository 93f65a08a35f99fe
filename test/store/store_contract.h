// The Store contract suite, shared by every backend: each backend's test binary
// provides a TestBackend and instantiates StoreContractTest with it.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "strata/common/clock.h"
#include "strata/store/store.h"

namespace strata::store::testing {

class TestBackend {
 public:
  virtual ~TestBackend() = default;
  virtual std::string name() const = 0;
  // URL of a fresh, empty database; failed_precondition = skip the test with this reason.
  virtual Result<std::string> fresh_url() = 0;
};

class StoreContractTest : public ::testing::TestWithParam<TestBackend*> {
 protected:
  void SetUp() override;

  // Opens another store on the same database (second manager, or a restart).
  StorePtr reopen();

  std::shared_ptr<ManualClock> clock_ = std::make_shared<ManualClock>();
  std::string url_;
  StorePtr store_;
};

inline HostRecord host_named(const std::string& name) {
  HostRecord h;
  h.name = name;
  return h;
}
inline VmRecord vm_named(const std::string& name) {
  VmRecord v;
  v.name = name;
  return v;
}

// gtest parameter name printer.
inline std::string backend_name(const ::testing::TestParamInfo<TestBackend*>& info) {
  return info.param->name();
}

}  // namespace strata::store::testing

// Asserts a Result/Status is a value, printing the error otherwise.
#define STORE_ASSERT_OK(expr)                                            \
  do {                                                                   \
    const auto& strata_r_ = (expr);                                      \
    ASSERT_TRUE(strata_r_.has_value()) << strata_r_.error().to_string(); \
  } while (0)

// Asserts a Result/Status failed with the given ErrorCode.
#define STORE_ASSERT_CODE(expr, want)                                           \
  do {                                                                          \
    const auto& strata_r_ = (expr);                                             \
    ASSERT_FALSE(strata_r_.has_value()) << "expected an error";                 \
    ASSERT_EQ(strata_r_.error().code, (want)) << strata_r_.error().to_string(); \
  } while (0)
