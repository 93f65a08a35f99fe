// Backup retention (vms/backup_retention.h): Proxmox Backup Server's prune semantics on
// UTC days and ISO weeks, as a pure function.
#include "strata/manager/vms/backup_retention.h"

#include <gtest/gtest.h>

#include <chrono>

namespace strata::manager {
namespace {

using namespace std::chrono;

// Unix ms of a UTC date and time.
int64_t at(int y, unsigned m, unsigned d, int hh = 0, int mm = 0, int ss = 0) {
  sys_days day{year{y} / month{m} / d};
  return duration_cast<milliseconds>(
             (day + hours(hh) + minutes(mm) + seconds(ss)).time_since_epoch())
      .count();
}

std::vector<std::string> ids(const std::vector<RetentionDecision>& v) {
  std::vector<std::string> out;
  for (auto& d : v) out.push_back(d.id);
  return out;
}

std::vector<std::string> rules(const std::vector<RetentionDecision>& v) {
  std::vector<std::string> out;
  for (auto& d : v) out.push_back(d.rule);
  return out;
}

using S = std::vector<std::string>;

TEST(BackupRetention, DayAndIsoWeekKeysAreUtcAndIso8601) {
  EXPECT_EQ(utc_day_key(at(2026, 11, 30)), "2026-11-30");
  EXPECT_EQ(utc_day_key(at(2026, 11, 30) - 1), "2026-11-29");     // 23:59:59.999 the day before
  EXPECT_EQ(iso_week_key(at(2026, 11, 30)), "2026-W49");          // a Monday
  EXPECT_EQ(iso_week_key(at(2026, 11, 29, 23, 59)), "2026-W48");  // the Sunday before
  EXPECT_EQ(iso_week_key(at(2021, 1, 3, 12)), "2020-W53");        // early January, last year's week
  EXPECT_EQ(iso_week_key(at(2024, 12, 30)), "2025-W01");          // late December, next year's
  EXPECT_EQ(iso_week_key(at(2020, 12, 31)), "2020-W53");
}

TEST(BackupRetention, KeepLastKeepsTheNewestInAnyInputOrder) {
  std::vector<RetentionInput> in = {{"b1", at(2026, 11, 1)},
                                    {"b4", at(2026, 11, 4)},
                                    {"b2", at(2026, 11, 2)},
                                    {"b5", at(2026, 11, 5)},
                                    {"b3", at(2026, 11, 3)}};
  auto p = plan_retention(in, {3, 0, 0});
  EXPECT_EQ(ids(p.keep), (S{"b5", "b4", "b3"}));
  EXPECT_EQ(rules(p.keep), (S{"keep-last", "keep-last", "keep-last"}));
  EXPECT_EQ(ids(p.prune), (S{"b2", "b1"}));
  EXPECT_EQ(p.prune[0].rule, "");
  // More to keep than there are: nothing pruned.
  auto all = plan_retention(in, {10, 0, 0});
  EXPECT_EQ(all.keep.size(), 5u);
  EXPECT_TRUE(all.prune.empty());
  EXPECT_TRUE(plan_retention({}, {1, 1, 1}).keep.empty());
}

TEST(BackupRetention, KeepDailyKeepsTheNewestOfEachOfTheLastDaysWithBackups) {
  std::vector<RetentionInput> in = {{"d3-late", at(2026, 11, 10, 20)},
                                    {"d3-early", at(2026, 11, 10, 10)},
                                    {"d2-midnight", at(2026, 11, 9, 23, 59, 59)},
                                    // Nov 8 has none: days without backups do not count.
                                    {"d1", at(2026, 11, 7, 0, 0, 0)},
                                    {"d0", at(2026, 11, 6, 12)}};
  auto p = plan_retention(in, {0, 3, 0});
  EXPECT_EQ(ids(p.keep), (S{"d3-late", "d2-midnight", "d1"}));
  EXPECT_EQ(rules(p.keep), (S{"keep-daily", "keep-daily", "keep-daily"}));
  EXPECT_EQ(p.keep[1].period, "2026-11-09");
  EXPECT_EQ(ids(p.prune), (S{"d3-early", "d0"}));
}

// PBS: a period an earlier rule already covered does not count for a later rule, so
// keep_last 1 + keep_daily 1 keeps the newest and the newest of the day before.
TEST(BackupRetention, RulesAddUpAsInProxmox) {
  std::vector<RetentionInput> in = {{"mon-2", at(2026, 11, 30, 14)},
                                    {"mon-1", at(2026, 11, 30, 2)},
                                    {"sun", at(2026, 11, 29, 2)},
                                    {"sat", at(2026, 11, 28, 2)}};
  auto p = plan_retention(in, {1, 1, 0});
  EXPECT_EQ(ids(p.keep), (S{"mon-2", "sun"}));
  EXPECT_EQ(rules(p.keep), (S{"keep-last", "keep-daily"}));
  EXPECT_EQ(ids(p.prune), (S{"mon-1", "sat"}));
}

TEST(BackupRetention, KeepWeeklyUsesIsoWeeksAcrossTheYearEnd) {
  std::vector<RetentionInput> in = {
      {"w01-2025", at(2024, 12, 31, 3)},  // Tuesday of 2025-W01
      {"w01-2025-mon", at(2024, 12, 30, 3)}, {"w52-sun", at(2024, 12, 29, 3)},  // 2024-W52
      {"w52-mon", at(2024, 12, 23, 3)},      {"w51", at(2024, 12, 20, 3)},
      {"w50", at(2024, 12, 13, 3)},
  };
  auto p = plan_retention(in, {0, 0, 3});
  EXPECT_EQ(ids(p.keep), (S{"w01-2025", "w52-sun", "w51"}));
  EXPECT_EQ(p.keep[0].period, "2025-W01");
  EXPECT_EQ(p.keep[1].period, "2024-W52");
  EXPECT_EQ(ids(p.prune), (S{"w01-2025-mon", "w52-mon", "w50"}));

  // Daily then weekly: the weekly rule starts after the weeks the daily ones covered.
  auto dw = plan_retention(in, {0, 2, 2});
  EXPECT_EQ(ids(dw.keep), (S{"w01-2025", "w01-2025-mon", "w52-sun", "w51"}));
  EXPECT_EQ(rules(dw.keep), (S{"keep-daily", "keep-daily", "keep-weekly", "keep-weekly"}));
  EXPECT_EQ(ids(dw.prune), (S{"w52-mon", "w50"}));
}

TEST(BackupRetention, MonthAndYearKeysAreUtcCalendarPeriods) {
  EXPECT_EQ(utc_month_key(at(2026, 12, 31, 23, 59, 59)), "2026-12");
  EXPECT_EQ(utc_month_key(at(2027, 1, 1)), "2027-01");
  EXPECT_EQ(utc_month_key(at(2027, 1, 1) - 1), "2026-12");  // the last millisecond of 2026
  EXPECT_EQ(utc_month_key(at(2024, 2, 29, 12)), "2024-02");  // a leap day
  EXPECT_EQ(utc_month_key(at(2024, 3, 1) - 1), "2024-02");
  EXPECT_EQ(utc_year_key(at(2026, 12, 31, 23, 59, 59)), "2026");
  EXPECT_EQ(utc_year_key(at(2027, 1, 1)), "2027");
  EXPECT_EQ(utc_year_key(0), "1970");
  // A year's ISO week can belong to the previous year; the calendar year does not follow it.
  EXPECT_EQ(iso_week_key(at(2027, 1, 1)), "2026-W53");
  EXPECT_EQ(utc_year_key(at(2027, 1, 1)), "2027");
}

// Backups across a year boundary (2026-10 .. 2027-01) and two earlier years.
std::vector<RetentionInput> across_years() {
  return {
      {"jan05-2027", at(2027, 1, 5, 2)},     {"jan01-2027", at(2027, 1, 1, 0, 0, 0)},
      {"dec31", at(2026, 12, 31, 23, 59)},   {"dec15", at(2026, 12, 15, 2)},
      {"nov30", at(2026, 11, 30, 2)},        {"nov01", at(2026, 11, 1, 2)},
      {"oct10", at(2026, 10, 10, 2)},        {"y2025", at(2025, 6, 1, 2)},
      {"y2025-jan", at(2025, 1, 1, 2)},      {"y2024", at(2024, 12, 31, 2)},
  };
}

TEST(BackupRetention, KeepMonthlyKeepsTheNewestOfEachUtcMonthAcrossTheYear) {
  RetentionPolicy m;
  m.keep_monthly = 3;
  auto p = plan_retention(across_years(), m);
  EXPECT_EQ(ids(p.keep), (S{"jan05-2027", "dec31", "nov30"}));
  EXPECT_EQ(rules(p.keep), (S{"keep-monthly", "keep-monthly", "keep-monthly"}));
  EXPECT_EQ(p.keep[0].period, "2027-01");
  EXPECT_EQ(p.keep[1].period, "2026-12");  // 23:59 on 31 December is still December
  EXPECT_EQ(p.keep[2].period, "2026-11");
  EXPECT_EQ(ids(p.prune),
            (S{"jan01-2027", "dec15", "nov01", "oct10", "y2025", "y2025-jan", "y2024"}));
}

TEST(BackupRetention, KeepYearlyAddsUpAfterTheMonthlyRule) {
  // Monthly 1 keeps January 2027 (and marks the older January 2027 backup pruned); yearly 2
  // then starts after the year 2027 that monthly covered: 2026 and 2025.
  RetentionPolicy p1;
  p1.keep_monthly = 1;
  p1.keep_yearly = 2;
  auto p = plan_retention(across_years(), p1);
  EXPECT_EQ(ids(p.keep), (S{"jan05-2027", "dec31", "y2025"}));
  EXPECT_EQ(rules(p.keep), (S{"keep-monthly", "keep-yearly", "keep-yearly"}));
  EXPECT_EQ(p.keep[1].period, "2026");
  EXPECT_EQ(p.keep[2].period, "2025");
  EXPECT_EQ(ids(p.prune),
            (S{"jan01-2027", "dec15", "nov30", "nov01", "oct10", "y2025-jan", "y2024"}));

  // Yearly alone: the newest of each calendar year (not ISO week-year).
  RetentionPolicy y;
  y.keep_yearly = 10;
  auto py = plan_retention(across_years(), y);
  EXPECT_EQ(ids(py.keep), (S{"jan05-2027", "dec31", "y2025", "y2024"}));
  EXPECT_EQ(py.keep[3].period, "2024");
}

TEST(BackupRetention, WeeklyThenMonthlySkipsTheMonthTheWeekCovered) {
  // Weekly 1 keeps 2027-W01 (5 Jan); 1 Jan 2027 is in 2026-W53 but in the month 2027-01
  // the weekly rule covered, so monthly skips it (pruned) and keeps December and November.
  RetentionPolicy p1;
  p1.keep_weekly = 1;
  p1.keep_monthly = 2;
  auto p = plan_retention(across_years(), p1);
  EXPECT_EQ(ids(p.keep), (S{"jan05-2027", "dec31", "nov30"}));
  EXPECT_EQ(rules(p.keep), (S{"keep-weekly", "keep-monthly", "keep-monthly"}));
  EXPECT_EQ(p.keep[0].period, "2027-W01");
  EXPECT_EQ(ids(p.prune),
            (S{"jan01-2027", "dec15", "nov01", "oct10", "y2025", "y2025-jan", "y2024"}));
}

TEST(BackupRetention, AllFiveRulesTogether) {
  // last 1: jan05; daily 1: jan01 (2027-01-01); weekly 1: dec31 is in 2026-W53, which
  // daily's jan01 covered, so weekly keeps dec15 (2026-W51); monthly 1: the months 2027-01
  // and 2026-12 are covered, so nov30; yearly 1: 2027 and 2026 covered, so y2025.
  auto p = plan_retention(across_years(), {1, 1, 1, 1, 1});
  EXPECT_EQ(ids(p.keep), (S{"jan05-2027", "jan01-2027", "dec15", "nov30", "y2025"}));
  EXPECT_EQ(rules(p.keep),
            (S{"keep-last", "keep-daily", "keep-weekly", "keep-monthly", "keep-yearly"}));
  EXPECT_EQ(p.keep[2].period, "2026-W51");
  EXPECT_EQ(ids(p.prune), (S{"dec31", "nov01", "oct10", "y2025-jan", "y2024"}));
}

TEST(BackupRetention, EqualTimesAreOrderedById) {
  std::vector<RetentionInput> in = {{"a", 5000}, {"c", 5000}, {"b", 5000}};
  auto p = plan_retention(in, {1, 0, 0});
  EXPECT_EQ(ids(p.keep), (S{"c"}));
  EXPECT_EQ(ids(p.prune), (S{"b", "a"}));
}

TEST(BackupRetention, PoliciesAreValidatedNamingTheField) {
  EXPECT_TRUE(validate_retention({1, 0, 0}));
  EXPECT_TRUE(validate_retention({0, 0, 4}));
  auto neg = validate_retention({1, -1, 0});
  ASSERT_FALSE(neg);
  EXPECT_EQ(neg.error().code, ErrorCode::invalid_argument);
  EXPECT_EQ(neg.error().field, "keep_daily");
  auto big = validate_retention({0, 0, kMaxRetentionKeep + 1});
  ASSERT_FALSE(big);
  EXPECT_EQ(big.error().field, "keep_weekly");
  EXPECT_TRUE(validate_retention({0, 0, 0, 6, 0}));
  EXPECT_TRUE(validate_retention({0, 0, 0, 0, 3}));
  auto m = validate_retention({0, 0, 0, -1, 0});
  ASSERT_FALSE(m);
  EXPECT_EQ(m.error().field, "keep_monthly");
  auto yb = validate_retention({0, 0, 0, 0, kMaxRetentionKeep + 1});
  ASSERT_FALSE(yb);
  EXPECT_EQ(yb.error().field, "keep_yearly");
  auto none = validate_retention({0, 0, 0});
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().field, "keep_last");
}

}  // namespace
}  // namespace strata::manager
