// Enum <-> string round trips for VmState and NicMode.
#include "strata/model/vm_spec.h"

#include <gtest/gtest.h>

namespace strata::model {

TEST(VmState, RoundTripsEveryState) {
  for (VmState s : {VmState::defined, VmState::starting, VmState::running, VmState::paused,
                    VmState::shutting_down, VmState::stopped, VmState::crashed}) {
    auto back = vm_state_from_string(to_string(s));
    ASSERT_TRUE(back) << to_string(s);
    EXPECT_EQ(*back, s);
  }
  EXPECT_STREQ(to_string(VmState::shutting_down), "shutting_down");
}

TEST(VmState, RejectsUnknownAndCaseVariants) {
  EXPECT_FALSE(vm_state_from_string(""));
  EXPECT_FALSE(vm_state_from_string("Running"));
  EXPECT_FALSE(vm_state_from_string("running "));
  EXPECT_FALSE(vm_state_from_string("unknown"));
}

TEST(NicMode, RoundTrips) {
  EXPECT_STREQ(to_string(NicMode::user), "user");
  EXPECT_STREQ(to_string(NicMode::bridge), "bridge");
  EXPECT_EQ(nic_mode_from_string("user"), NicMode::user);
  EXPECT_EQ(nic_mode_from_string("bridge"), NicMode::bridge);
  EXPECT_FALSE(nic_mode_from_string("tap"));
  EXPECT_FALSE(nic_mode_from_string("Bridge"));
}

}  // namespace strata::model
