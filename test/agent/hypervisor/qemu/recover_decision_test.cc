// decide_recover: only the QEMU process says whether a VM is alive; QMP failures never do.
#include "recover_decision.h"

#include <gtest/gtest.h>

namespace strata::agent::qemu {
namespace {

using model::VmState;

RecoverFacts facts(VmState recorded, bool alive, bool qmp,
                   std::optional<VmState> qmp_state = std::nullopt) {
  RecoverFacts f;
  f.recorded = recorded;
  f.qemu_alive = alive;
  f.qmp_connected = qmp;
  f.qmp_state = qmp_state;
  return f;
}

// The bug of issue 9: a second agent could not get the QMP socket (QEMU serves one
// client) and declared running VMs crashed; the manager then started them again.
TEST(RecoverDecision, LiveQemuWithBusyQmpStaysActiveAndIsRetried) {
  for (VmState s : {VmState::running, VmState::paused, VmState::shutting_down}) {
    auto d = decide_recover(facts(s, /*alive=*/true, /*qmp=*/false));
    EXPECT_EQ(d.action, RecoverAction::attach_later) << model::to_string(s);
    EXPECT_EQ(d.state, s) << model::to_string(s);
  }
  auto starting = decide_recover(facts(VmState::starting, true, false));
  EXPECT_EQ(starting.action, RecoverAction::attach_later);
  EXPECT_NE(starting.state, VmState::crashed);
  EXPECT_NE(starting.state, VmState::stopped);
}

TEST(RecoverDecision, LiveQemuWithQmpTakesQemusWord) {
  auto d = decide_recover(facts(VmState::running, true, true, VmState::paused));
  EXPECT_EQ(d.action, RecoverAction::reattach);
  EXPECT_EQ(d.state, VmState::paused);
  // query-status did not answer: the recorded state, not a guess of death.
  auto quiet = decide_recover(facts(VmState::paused, true, true));
  EXPECT_EQ(quiet.action, RecoverAction::reattach);
  EXPECT_EQ(quiet.state, VmState::paused);
  auto started = decide_recover(facts(VmState::starting, true, true));
  EXPECT_EQ(started.state, VmState::running);
}

TEST(RecoverDecision, OnlyAGoneProcessEndsTheVm) {
  for (VmState s : {VmState::running, VmState::paused, VmState::starting,
                    VmState::shutting_down}) {
    EXPECT_EQ(decide_recover(facts(s, false, false)).action, RecoverAction::finalize)
        << model::to_string(s);
  }
}

TEST(RecoverDecision, InactiveVmsAreKept) {
  for (VmState s : {VmState::defined, VmState::stopped, VmState::crashed}) {
    auto d = decide_recover(facts(s, false, false));
    EXPECT_EQ(d.action, RecoverAction::keep);
    EXPECT_EQ(d.state, s);
  }
}

TEST(RecoverDecision, QueryStatusMapping) {
  EXPECT_EQ(state_from_query_status("running"), VmState::running);
  EXPECT_EQ(state_from_query_status("paused"), VmState::paused);
  EXPECT_EQ(state_from_query_status("shutdown"), VmState::shutting_down);
  EXPECT_EQ(state_from_query_status("guest-panicked"), VmState::crashed);
  EXPECT_EQ(state_from_query_status("prelaunch"), VmState::paused);
}

}  // namespace
}  // namespace strata::agent::qemu
