// Store contract, part 5: backup schedules (unique names, the definition kept verbatim,
// CAS of the last slot run, delete), on every backend.
#include "store_contract.h"

namespace strata::store::testing {
namespace {

TEST_P(StoreContractTest, BackupSchedulesRoundTripCasAndDelete) {
  BackupScheduleRecord s;
  s.name = "nightly";
  s.spec = R"({"vm":"web","time":"02:30"})";
  auto a = store_->create_backup_schedule(s);
  STORE_ASSERT_OK(a);
  EXPECT_EQ(a->resource_version, 1);
  EXPECT_EQ(a->last_slot_ms, 0);
  EXPECT_FALSE(a->id.empty());
  STORE_ASSERT_CODE(store_->create_backup_schedule(s), ErrorCode::already_exists);
  EXPECT_EQ(store_->create_backup_schedule(s).error().field, "name");
  BackupScheduleRecord unnamed;
  STORE_ASSERT_CODE(store_->create_backup_schedule(unnamed), ErrorCode::invalid_argument);

  BackupScheduleRecord b;
  b.name = "agile";
  b.spec = "";  // stored as {}
  STORE_ASSERT_OK(store_->create_backup_schedule(b));
  auto all = store_->list_backup_schedules();
  STORE_ASSERT_OK(all);
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ(all->front().name, "agile") << "listed by name";
  EXPECT_EQ(all->front().spec, "{}");
  EXPECT_EQ(all->back().spec, s.spec) << "kept verbatim";

  BackupScheduleRecord up = *a;
  up.last_slot_ms = 1795996800000;
  auto u = store_->update_backup_schedule(up);
  STORE_ASSERT_OK(u);
  EXPECT_EQ(u->resource_version, 2);
  EXPECT_EQ(store_->get_backup_schedule_by_name("nightly")->last_slot_ms, 1795996800000);
  // Two managers (or a restart racing a tick) claiming the same slot: one wins.
  STORE_ASSERT_CODE(store_->update_backup_schedule(up), ErrorCode::conflict);
  STORE_ASSERT_CODE(store_->get_backup_schedule_by_name("nope"), ErrorCode::not_found);
  STORE_ASSERT_CODE(store_->delete_backup_schedule(u->id, 1), ErrorCode::conflict);
  STORE_ASSERT_OK(store_->delete_backup_schedule(u->id, 2));
  STORE_ASSERT_CODE(store_->get_backup_schedule_by_name("nightly"), ErrorCode::not_found);
  EXPECT_EQ(store_->list_backup_schedules()->size(), 1u);
}

}  // namespace
}  // namespace strata::store::testing
