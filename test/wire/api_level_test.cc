// The agent API level and the neighbouring-versions policy (strata/wire/api_level.h).
#include "strata/wire/api_level.h"

#include <gtest/gtest.h>

namespace strata::wire {
namespace {

TEST(ApiLevel, AnAgentThatReportsNoLevelSpeaksTheFirst) {
  EXPECT_EQ(effective_api_level(0), 1u);
  EXPECT_EQ(effective_api_level(1), 1u);
  EXPECT_EQ(effective_api_level(7), 7u);
}

TEST(ApiLevel, WhatALevelReportsIsTheInverseOfTheEffectiveLevel) {
  // Level 1 predates the field: it reports nothing.
  EXPECT_EQ(reported_api_level(1), 0u);
  EXPECT_EQ(reported_api_level(2), 2u);
  for (uint32_t level = kOldestApiLevel; level <= kApiLevel + 1; ++level)
    EXPECT_EQ(effective_api_level(reported_api_level(level)), level);
}

TEST(ApiLevel, TheWindowIsOneLevelEitherSide) {
  // A manager at level 5 works with agents at 4, 5 and 6.
  EXPECT_FALSE(api_level_in_window(3, 5));
  EXPECT_TRUE(api_level_in_window(4, 5));
  EXPECT_TRUE(api_level_in_window(5, 5));
  EXPECT_TRUE(api_level_in_window(6, 5));
  EXPECT_FALSE(api_level_in_window(7, 5));
  // At level 1 nothing is older; an agent without a level is level 1.
  EXPECT_TRUE(api_level_in_window(0, 1));
  EXPECT_TRUE(api_level_in_window(2, 1));
  EXPECT_FALSE(api_level_in_window(3, 1));
  // This build: the agents one version behind (and the ones before levels) are in.
  EXPECT_TRUE(api_level_in_window(kApiLevel - 1));
  EXPECT_TRUE(api_level_in_window(kApiLevel));
  EXPECT_TRUE(api_level_in_window(kApiLevel + 1));
  EXPECT_FALSE(api_level_in_window(kApiLevel + 2));
}

TEST(ApiLevel, AnAgentOutsideTheWindowIsRefusedNamingTheFieldAndTheFix) {
  EXPECT_TRUE(check_agent_api_level(4, "api_level", 5));
  auto old = check_agent_api_level(3, "inventory.agent.api_level", 5);
  ASSERT_FALSE(old);
  EXPECT_EQ(old.error().code, ErrorCode::failed_precondition);
  EXPECT_EQ(old.error().field, "inventory.agent.api_level");
  EXPECT_NE(old.error().message.find("levels 4 to 6"), std::string::npos) << old.error().message;
  EXPECT_NE(old.error().message.find("upgrade the agent"), std::string::npos);
  auto ahead = check_agent_api_level(7, "api_level", 5);
  ASSERT_FALSE(ahead);
  EXPECT_NE(ahead.error().message.find("upgrade the manager first"), std::string::npos);
}

TEST(ApiLevel, FeaturesNameTheLevelTheyNeed) {
  const uint32_t postcopy = required_api_level(AgentFeature::postcopy_migration);
  EXPECT_EQ(postcopy, 2u);
  EXPECT_LE(postcopy, kApiLevel);
  EXPECT_EQ(to_string(AgentFeature::postcopy_migration), "post-copy migration");
  EXPECT_FALSE(supports(0, postcopy));
  EXPECT_FALSE(supports(1, postcopy));
  EXPECT_TRUE(supports(2, postcopy));
  EXPECT_TRUE(supports(3, postcopy));
  EXPECT_FALSE(supports(1, AgentFeature::postcopy_migration));
  EXPECT_TRUE(supports(2, AgentFeature::postcopy_migration));
}

TEST(ApiLevel, TheLevelFromAnInventoryDocument) {
  EXPECT_EQ(inventory_api_level(R"({"agent":{"version":"0.9.0","api_level":2}})"), 2u);
  // Before levels: no agent object, or one without the level.
  EXPECT_EQ(inventory_api_level("{}"), 1u);
  EXPECT_EQ(inventory_api_level(R"({"agent":{"version":"0.8.0"}})"), 1u);
  EXPECT_EQ(inventory_api_level(R"({"agent":"0.8.0"})"), 1u);
  // Not a level: refused, not guessed.
  EXPECT_FALSE(inventory_api_level(R"({"agent":{"api_level":0}})"));
  EXPECT_FALSE(inventory_api_level(R"({"agent":{"api_level":-2}})"));
  EXPECT_FALSE(inventory_api_level(R"({"agent":{"api_level":"2"}})"));
  EXPECT_FALSE(inventory_api_level(R"({"agent":{"api_level":1.5}})"));
  EXPECT_FALSE(inventory_api_level(R"({"agent":{"api_level":4294967296}})"));
  EXPECT_FALSE(inventory_api_level("not json"));
  EXPECT_FALSE(inventory_api_level("[1]"));
}

TEST(ApiLevel, TheHardwareProfileFromAnInventoryDocument) {
  EXPECT_EQ(inventory_hardware_profile(R"({"agent":{"version":"1","hardware_profile":3}})"), 3);
  // Agents that predate the field build up to profile 2.
  EXPECT_EQ(inventory_hardware_profile("{}"), kHardwareProfileUnreported);
  EXPECT_EQ(inventory_hardware_profile(R"({"agent":{"api_level":2}})"), 2);
  EXPECT_FALSE(inventory_hardware_profile(R"({"agent":{"hardware_profile":"3"}})"));
  EXPECT_FALSE(inventory_hardware_profile(R"({"agent":{"hardware_profile":0}})"));
  EXPECT_FALSE(inventory_hardware_profile(R"({"agent":{"hardware_profile":-1}})"));
  EXPECT_FALSE(inventory_hardware_profile("nope"));
  model::VmSpec spec;
  EXPECT_EQ(required_hardware(spec).profile, 2);
  spec.watchdog = model::Watchdog{};
  EXPECT_EQ(required_hardware(spec).profile, 3);
  EXPECT_EQ(required_hardware(spec).field, "watchdog");
  spec.nics.push_back({});
  spec.nics.back().hotplug_slot = 2;
  EXPECT_EQ(required_hardware(spec).profile, 4);
  EXPECT_EQ(required_hardware(spec).field, "hotplug_slot");
}

}  // namespace
}  // namespace strata::wire
