// stratad's scheduler flags: accepted values land in SchedulerConfig, bad ones are
// rejected with an error naming the flag (stratad then exits 2 with that message).
#include "strata/manager/scheduler_options.h"

#include <gtest/gtest.h>

namespace strata::manager {
namespace {

TEST(SchedulerOptions, AcceptedValuesLandInConfig) {
  sched::SchedulerConfig c;
  ASSERT_TRUE(set_scheduler_option(c, "--cpu-overcommit", "8"));
  ASSERT_TRUE(set_scheduler_option(c, "--memory-overcommit", "1.5"));
  ASSERT_TRUE(set_scheduler_option(c, "--placement", "pack"));
  EXPECT_DOUBLE_EQ(c.cpu_overcommit, 8.0);
  EXPECT_DOUBLE_EQ(c.mem_overcommit, 1.5);
  EXPECT_EQ(c.strategy, sched::WeightStrategy::pack);
  ASSERT_TRUE(set_scheduler_option(c, "--placement", "spread"));
  EXPECT_EQ(c.strategy, sched::WeightStrategy::spread);
  EXPECT_TRUE(is_scheduler_flag("--placement"));
  EXPECT_FALSE(is_scheduler_flag("--listen"));
}

TEST(SchedulerOptions, BadValuesAreRejectedNamingTheFlag) {
  struct Case {
    const char* flag;
    const char* value;
    const char* field;
  };
  for (const Case& k :
       {Case{"--cpu-overcommit", "0", "cpu-overcommit"},
        Case{"--cpu-overcommit", "-1", "cpu-overcommit"},
        Case{"--cpu-overcommit", "abc", "cpu-overcommit"},
        Case{"--cpu-overcommit", "4x", "cpu-overcommit"},
        Case{"--cpu-overcommit", "", "cpu-overcommit"},
        Case{"--cpu-overcommit", "nan", "cpu-overcommit"},
        Case{"--cpu-overcommit", "inf", "cpu-overcommit"},
        Case{"--cpu-overcommit", "65", "cpu-overcommit"},
        Case{"--memory-overcommit", "0.0", "memory-overcommit"},
        Case{"--memory-overcommit", "1e400", "memory-overcommit"},
        Case{"--placement", "random", "placement"}, Case{"--placement", "", "placement"}}) {
    sched::SchedulerConfig c;
    auto st = set_scheduler_option(c, k.flag, k.value);
    ASSERT_FALSE(st) << k.flag << " " << k.value;
    EXPECT_EQ(st.error().code, ErrorCode::invalid_argument);
    EXPECT_EQ(st.error().field, k.field) << k.flag << " " << k.value;
    EXPECT_NE(st.error().message.find(k.flag), std::string::npos) << st.error().message;
    // The config is untouched by a rejected value.
    EXPECT_DOUBLE_EQ(c.cpu_overcommit, sched::SchedulerConfig{}.cpu_overcommit);
    EXPECT_DOUBLE_EQ(c.mem_overcommit, sched::SchedulerConfig{}.mem_overcommit);
  }
}

}  // namespace
}  // namespace strata::manager
