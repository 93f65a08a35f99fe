// The reconcile loop's pure decisions: desired vs observed -> one agent action, the retry
// backoff, adoption of VMs an agent already runs when a manager (re)connects, and when a
// change of the guest's facts is worth an event.
#include "strata/manager/controllers/vm_decision.h"

#include <gtest/gtest.h>

namespace strata::manager {
namespace {

using std::chrono::milliseconds;

struct Intent {
  std::string desired = "running";
  bool paused = false;
  bool force = false;
  int64_t generation = 3;
  int64_t reboot_generation = 0;
  int64_t applied = 0;  // status.applied_generation
};

VmAction decide(const Intent& i, const std::string& agent_state) {
  VmDocument doc;
  doc.control.generation = i.generation;
  doc.control.paused = i.paused;
  doc.control.stop_force = i.force;
  doc.control.reboot_generation = i.reboot_generation;
  VmStatusDoc st;
  st.applied_generation = i.applied;
  return decide_vm_action(i.desired, doc, st, agent_state);
}

// A device newer than a host's agent (which would ignore it) is refused before the define,
// naming the device and the fix; VMs without it go anywhere.
TEST(VmDecision, AWatchdogNeedsAnAgentThatBuildsHardwareProfile3) {
  model::VmSpec spec;
  spec.name = "wd";
  store::HostRecord old_agent;
  old_agent.name = "h1";
  old_agent.inventory = R"({"agent":{"version":"0.9","api_level":2}})";
  store::HostRecord new_agent = old_agent;
  new_agent.inventory = R"({"agent":{"version":"1.0","api_level":2,"hardware_profile":3}})";
  EXPECT_TRUE(check_host_hardware(spec, old_agent));
  spec.watchdog = model::Watchdog{};
  auto e = check_host_hardware(spec, old_agent);
  ASSERT_FALSE(e);
  EXPECT_EQ(e.error().code, ErrorCode::failed_precondition);
  EXPECT_EQ(e.error().field, "watchdog");
  EXPECT_NE(e.error().message.find("host h1's agent builds VM hardware up to profile 2"),
            std::string::npos)
      << e.error().message;
  EXPECT_TRUE(check_host_hardware(spec, new_agent));
}

// Disks and NICs on hot-plug slots need profile 4 (an older agent would place them on the
// root bus, another PCI layout: a live migration's device state would not load).
TEST(VmDecision, DevicesOnHotplugSlotsNeedHardwareProfile4) {
  model::VmSpec spec;
  spec.name = "hp";
  spec.disks.push_back({"data1", "", 1 << 30, false, false, "", "", 2});
  store::HostRecord v3;
  v3.name = "h3";
  v3.inventory = R"({"agent":{"version":"1.0","api_level":2,"hardware_profile":3}})";
  store::HostRecord v4 = v3;
  v4.inventory = R"({"agent":{"version":"1.1","api_level":2,"hardware_profile":4}})";
  auto e = check_host_hardware(spec, v3);
  ASSERT_FALSE(e);
  EXPECT_EQ(e.error().field, "hotplug_slot");
  EXPECT_NE(e.error().message.find("need profile 4"), std::string::npos) << e.error().message;
  EXPECT_TRUE(check_host_hardware(spec, v4));
}

TEST(VmDecision, RunningIntentStartsWhatIsNotRunning) {
  EXPECT_EQ(decide({}, "defined"), VmAction::start);
  EXPECT_EQ(decide({}, "stopped"), VmAction::start);
  EXPECT_EQ(decide({}, "crashed"), VmAction::start);
  EXPECT_EQ(decide({}, "running"), VmAction::none);
  EXPECT_EQ(decide({}, "starting"), VmAction::none);
}

TEST(VmDecision, NoRestartPolicyOnceTheIntentWasApplied) {
  Intent applied;
  applied.applied = 3;  // this generation's start already happened
  EXPECT_EQ(decide(applied, "stopped"), VmAction::none);  // guest powered itself off
  EXPECT_EQ(decide(applied, "crashed"), VmAction::none);
  // Never started at all (still "defined"): start, whatever the status claims.
  EXPECT_EQ(decide(applied, "defined"), VmAction::start);
  // A new intent (generation 4) starts it again.
  Intent next = applied;
  next.generation = 4;
  EXPECT_EQ(decide(next, "stopped"), VmAction::start);
}

TEST(VmDecision, PauseAndResume) {
  Intent pause;
  pause.paused = true;
  EXPECT_EQ(decide(pause, "running"), VmAction::pause);
  EXPECT_EQ(decide(pause, "paused"), VmAction::none);
  EXPECT_EQ(decide(pause, "stopped"), VmAction::start);  // start first, the pass pauses after
  EXPECT_EQ(decide({}, "paused"), VmAction::resume);
}

TEST(VmDecision, RebootOnlyOnceForItsGeneration) {
  Intent reboot;
  reboot.reboot_generation = 3;
  EXPECT_EQ(decide(reboot, "running"), VmAction::reboot);
  reboot.applied = 3;
  EXPECT_EQ(decide(reboot, "running"), VmAction::none);
  Intent stale;  // a reboot of an older generation is not repeated
  stale.reboot_generation = 2;
  EXPECT_EQ(decide(stale, "running"), VmAction::none);
  Intent paused_reboot = reboot;
  paused_reboot.applied = 0;
  EXPECT_EQ(decide(paused_reboot, "paused"), VmAction::resume);  // resume wins over reboot
}

TEST(VmDecision, StoppedIntent) {
  Intent stop;
  stop.desired = "stopped";
  for (const char* s : {"running", "paused", "starting", "shutting_down"})
    EXPECT_EQ(decide(stop, s), VmAction::shutdown) << s;
  for (const char* s : {"defined", "stopped", "crashed"})
    EXPECT_EQ(decide(stop, s), VmAction::none) << s;
  stop.force = true;
  EXPECT_EQ(decide(stop, "running"), VmAction::force_off);
  EXPECT_EQ(decide(stop, "stopped"), VmAction::none);
}

TEST(VmDecision, RetryDelayDoublesAndIsCapped) {
  const milliseconds base{1000}, max{30000};
  EXPECT_EQ(retry_delay(1, base, max), milliseconds(1000));
  EXPECT_EQ(retry_delay(2, base, max), milliseconds(2000));
  EXPECT_EQ(retry_delay(3, base, max), milliseconds(4000));
  EXPECT_EQ(retry_delay(5, base, max), milliseconds(16000));
  EXPECT_EQ(retry_delay(6, base, max), milliseconds(30000));               // 32 s capped at max
  EXPECT_EQ(retry_delay(1000, base, max), milliseconds(30000));            // no overflow
  EXPECT_EQ(retry_delay(1000, milliseconds(10), max), milliseconds(320));  // 32 x base
  EXPECT_EQ(retry_delay(0, base, max), milliseconds(1000));
}

TEST(VmDecision, AdoptionOfVmsAnAgentAlreadyRuns) {
  store::VmRecord unplaced;
  unplaced.id = "vm-1";
  unplaced.name = "web";
  EXPECT_EQ(decide_adoption(unplaced, "web"), Adoption::adopt);
  store::VmRecord placed = unplaced;
  placed.host_id = "h1";
  EXPECT_EQ(decide_adoption(placed, "web"), Adoption::known);
  // The label pointed at a record of another name (reused id, renamed): not ours.
  EXPECT_EQ(decide_adoption(unplaced, "db"), Adoption::ignore);
  EXPECT_EQ(decide_adoption(std::nullopt, "web"), Adoption::ignore);  // unknown to the store
}

TEST(VmDecision, GuestFactsChangeIgnoresTheReadTime) {
  model::GuestFacts g;
  g.hostname = "web-1";
  g.os_name = "Debian GNU/Linux 12 (bookworm)";
  g.interfaces = {{"eth0", "52:54:00:12:34:56", {"10.0.2.15/24", "fec0::5054:ff:fe12:3456/64"}}};
  g.updated_unix_ms = 1000;
  // None before and none now: nothing to say. First facts: said, with what they are.
  EXPECT_EQ(guest_facts_change(std::nullopt, std::nullopt), std::nullopt);
  EXPECT_EQ(guest_facts_change(std::nullopt, g),
            "host name web-1, OS Debian GNU/Linux 12 (bookworm), addresses 10.0.2.15/24 "
            "fec0::5054:ff:fe12:3456/64");
  // Read again 30 s later, the same: no event (the poller would make one every 30 s).
  model::GuestFacts later = g;
  later.updated_unix_ms = 31000;
  EXPECT_EQ(guest_facts_change(g, later), std::nullopt);
  // A new address, or a new host name: said.
  model::GuestFacts moved = later;
  moved.interfaces[0].addresses = {"10.0.2.16/24"};
  EXPECT_EQ(guest_facts_change(g, moved),
            "host name web-1, OS Debian GNU/Linux 12 (bookworm), addresses 10.0.2.16/24");
  model::GuestFacts renamed = later;
  renamed.hostname = "db-1";
  EXPECT_TRUE(guest_facts_change(g, renamed).has_value());
  // The VM stopped: the facts are gone. Facts with nothing in them yet: dashes.
  EXPECT_EQ(guest_facts_change(g, std::nullopt), "gone");
  EXPECT_EQ(guest_facts_change(std::nullopt, model::GuestFacts{}),
            "host name -, OS -, addresses -");
}

// The periodic resync leaves a VM alone only when its host's copy and its record agree and
// nothing is pending; each difference sends it to a full reconcile pass.
TEST(VmDecision, ConvergedOnlyWhenTheHostAgreesAndNothingIsPending) {
  store::VmRecord vm;
  vm.id = "vm-1";
  vm.desired_state = "running";
  VmDocument doc;
  doc.control.generation = 3;
  VmStatusDoc st;
  st.state = st.agent_state = "running";
  st.applied_generation = 3;
  st.cpu_model = "qemu64";
  model::GuestFacts facts;
  facts.hostname = "web";
  facts.updated_unix_ms = 1000;
  st.guest = facts;
  AgentVmView agent{"running", "vm-1", facts, "qemu64"};
  agent.guest->updated_unix_ms = 9000;  // read again since: the same facts
  EXPECT_TRUE(vm_converged(vm, doc, st, agent));

  auto differs = [&](auto change) {
    store::VmRecord v = vm;
    VmDocument d = doc;
    VmStatusDoc s = st;
    AgentVmView a = agent;
    change(v, d, s, a);
    return !vm_converged(v, d, s, a);
  };
  EXPECT_TRUE(differs([](auto& v, auto&, auto&, auto&) { v.deletion_requested = true; }));
  EXPECT_TRUE(differs([](auto&, auto& d, auto&, auto&) { d.migration.target_host_id = "h2"; }))
      << "a migration in progress";
  EXPECT_TRUE(differs([](auto&, auto& d, auto&, auto&) { d.clone_of.pending = true; }));
  EXPECT_TRUE(differs([](auto&, auto&, auto&, auto& a) { a.vm_id_label = "vm-2"; }))
      << "another record's VM of that name";
  EXPECT_TRUE(differs([](auto&, auto&, auto&, auto& a) { a.state = "crashed"; }))
      << "the guest crashed without an event reaching the manager";
  EXPECT_TRUE(differs([](auto&, auto&, auto& s, auto&) { s.agent_state = "starting"; }));
  EXPECT_TRUE(differs([](auto&, auto&, auto& s, auto&) { s.last_error = "host unreachable"; }));
  EXPECT_TRUE(differs([](auto&, auto& d, auto&, auto&) { d.control.generation = 4; }))
      << "a new intent";
  EXPECT_TRUE(differs([](auto& v, auto&, auto&, auto&) { v.desired_state = "stopped"; }))
      << "an action to take";
  EXPECT_TRUE(differs([](auto&, auto&, auto&, auto& a) { a.guest->hostname = "db"; }));
  EXPECT_TRUE(differs([](auto&, auto&, auto&, auto& a) { a.guest.reset(); }));
  EXPECT_TRUE(differs([](auto&, auto&, auto&, auto& a) { a.cpu_model = "Skylake-Server"; }));
  // A VM made before labels (none on the host) is matched by its name.
  EXPECT_FALSE(differs([](auto&, auto&, auto&, auto& a) { a.vm_id_label.clear(); }));
}

}  // namespace
}  // namespace strata::manager
