#include "strata/common/process.h"

#include <gtest/gtest.h>

namespace strata {

TEST(Process, CapturesOutputAndExitCode) {
  auto r = run_process({"sh", "-c", "echo out; echo err >&2; exit 3"});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->exit_code, 3);
  EXPECT_EQ(r->out, "out\n");
  EXPECT_EQ(r->err, "err\n");
  EXPECT_FALSE(r->ok());
}

TEST(Process, ArgumentsAreNotInterpretedByAShell) {
  auto r = run_process({"echo", "$(id); rm -rf /"});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->out, "$(id); rm -rf /\n");
}

TEST(Process, TimeoutKills) {
  RunOptions o;
  o.timeout = std::chrono::milliseconds(200);
  auto r = run_process({"sleep", "10"}, o);
  ASSERT_TRUE(r);
  EXPECT_TRUE(r->timed_out);
}

TEST(Process, StdinIsFed) {
  RunOptions o;
  o.stdin_data = "hello";
  auto r = run_process({"cat"}, o);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->out, "hello");
}

TEST(Process, MissingExecutableIsNotFound) {
  auto r = run_process({"strata-no-such-binary"});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::not_found);
}

TEST(Process, RunCheckedReportsStderr) {
  auto r = run_checked({"sh", "-c", "echo boom >&2; exit 1"});
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("boom"), std::string::npos);
}

TEST(Process, ResourceLimitsApplyToTheChild) {
  RunOptions o;
  o.max_address_space_bytes = 512ull << 20;
  o.max_cpu_seconds = 7;
  o.stdin_data = "in";
  auto r = run_process({"sh", "-c", "ulimit -v; ulimit -t; cat; echo err >&2"}, o);
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_EQ(r->exit_code, 0);
  EXPECT_EQ(r->out, "524288\n7\nin");  // ulimit -v counts KiB
  EXPECT_EQ(r->err, "err\n");
}

TEST(Process, CpuLimitKillsASpinningChild) {
  RunOptions o;
  o.max_cpu_seconds = 1;
  o.timeout = std::chrono::seconds(30);  // backstop only
  auto r = run_process({"sh", "-c", "while :; do :; done"}, o);
  ASSERT_TRUE(r);
  EXPECT_FALSE(r->timed_out);
  EXPECT_TRUE(r->signaled);
}

TEST(Process, LimitedRunOfAMissingExecutableIsNotFound) {
  RunOptions o;
  o.max_cpu_seconds = 1;
  auto r = run_process({"strata-no-such-binary"}, o);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::not_found);
}

}  // namespace strata
