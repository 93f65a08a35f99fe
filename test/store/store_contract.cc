// Fixture plumbing for the Store contract suite.
#include "store_contract.h"

namespace strata::store::testing {

void StoreContractTest::SetUp() {
  clock_->advance(std::chrono::milliseconds(1'760'000'000'000));  // a plausible "now"
  auto url = GetParam()->fresh_url();
  if (!url) {
    if (url.error().code == ErrorCode::failed_precondition) {
      GTEST_SKIP() << GetParam()->name() << " unavailable: " << url.error().message;
    }
    FAIL() << url.error().to_string();
  }
  url_ = *url;
  store_ = reopen();
  ASSERT_NE(store_, nullptr);
}

StorePtr StoreContractTest::reopen() {
  StoreOptions opts;
  opts.clock = clock_;
  opts.pool_size = 6;
  auto s = open_store(url_, opts);
  EXPECT_TRUE(s) << (s ? "" : s.error().to_string());
  return s ? std::move(*s) : nullptr;
}

}  // namespace strata::store::testing
