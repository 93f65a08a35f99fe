// Backup retention (strata/manager/vms/backup_retention.h).
#include "strata/manager/vms/backup_retention.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <map>
#include <set>

namespace strata::manager {

namespace {

using std::chrono::days;
using std::chrono::sys_days;

sys_days day_of(int64_t unix_ms) {
  return std::chrono::floor<days>(
      std::chrono::sys_time<std::chrono::milliseconds>(std::chrono::milliseconds(unix_ms)));
}

// Marks, newest first, the newest backup of each of the next `keep` periods `key` gives
// that no earlier rule covered; older backups of a period this rule kept are marked pruned
// (so a later rule does not keep them either), as PBS's mark_selections.
void mark(std::vector<RetentionDecision>& list, std::vector<int>& state, int64_t keep,
          const char* rule, const std::function<std::string(int64_t)>& key) {
  if (keep <= 0) return;
  // state: 0 unmarked, 1 kept, 2 pruned.
  std::set<std::string> covered;  // periods of backups earlier rules kept
  for (size_t i = 0; i < list.size(); ++i)
    if (state[i] == 1) covered.insert(key(list[i].created_unix_ms));
  std::set<std::string> kept;
  for (size_t i = 0; i < list.size(); ++i) {
    if (state[i] != 0) continue;
    std::string k = key(list[i].created_unix_ms);
    if (covered.count(k)) continue;
    if (!kept.count(k)) {
      if (static_cast<int64_t>(kept.size()) >= keep) break;
      kept.insert(k);
      state[i] = 1;
      list[i].rule = rule;
      list[i].period = k;
    } else {
      state[i] = 2;
    }
  }
}

}  // namespace

Status validate_retention(const RetentionPolicy& p) {
  for (auto [field, v] : {std::pair<const char*, int64_t>{"keep_last", p.keep_last},
                          {"keep_daily", p.keep_daily},
                          {"keep_weekly", p.keep_weekly},
                          {"keep_monthly", p.keep_monthly},
                          {"keep_yearly", p.keep_yearly}}) {
    if (v < 0) return invalid_argument(field, fmt::format("{} must not be negative", field));
    if (v > kMaxRetentionKeep)
      return invalid_argument(field,
                              fmt::format("{} must be at most {}", field, kMaxRetentionKeep));
  }
  if (p.keep_last == 0 && p.keep_daily == 0 && p.keep_weekly == 0 && p.keep_monthly == 0 &&
      p.keep_yearly == 0)
    return invalid_argument("keep_last",
                            "at least one of keep_last, keep_daily, keep_weekly, keep_monthly, "
                            "keep_yearly must be positive (a policy that keeps nothing would "
                            "prune every backup)");
  return {};
}

std::string utc_day_key(int64_t unix_ms) {
  std::chrono::year_month_day ymd{day_of(unix_ms)};
  return fmt::format("{:04d}-{:02d}-{:02d}", static_cast<int>(ymd.year()),
                     static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()));
}

std::string iso_week_key(int64_t unix_ms) {
  sys_days d = day_of(unix_ms);
  // ISO weekday: Monday 1 .. Sunday 7. The ISO week's year is the year of its Thursday.
  unsigned wd = std::chrono::weekday{d}.iso_encoding();
  sys_days thursday = d - days(wd - 1) + days(3);
  std::chrono::year_month_day t{thursday};
  sys_days jan1 = sys_days{t.year() / std::chrono::January / 1};
  int64_t week = (thursday - jan1).count() / 7 + 1;
  return fmt::format("{:04d}-W{:02d}", static_cast<int>(t.year()), week);
}

std::string utc_month_key(int64_t unix_ms) {
  std::chrono::year_month_day ymd{day_of(unix_ms)};
  return fmt::format("{:04d}-{:02d}", static_cast<int>(ymd.year()),
                     static_cast<unsigned>(ymd.month()));
}

std::string utc_year_key(int64_t unix_ms) {
  std::chrono::year_month_day ymd{day_of(unix_ms)};
  return fmt::format("{:04d}", static_cast<int>(ymd.year()));
}

RetentionPlan plan_retention(std::vector<RetentionInput> backups, const RetentionPolicy& policy) {
  std::sort(backups.begin(), backups.end(), [](const RetentionInput& a, const RetentionInput& b) {
    return a.created_unix_ms != b.created_unix_ms ? a.created_unix_ms > b.created_unix_ms
                                                  : a.id > b.id;
  });
  std::vector<RetentionDecision> list;
  list.reserve(backups.size());
  for (auto& b : backups) list.push_back(RetentionDecision{b.id, b.created_unix_ms, "", ""});
  std::vector<int> state(list.size(), 0);
  // keep_last: the N newest (every backup is a period of its own; it runs first).
  for (size_t i = 0; i < list.size() && static_cast<int64_t>(i) < policy.keep_last; ++i) {
    state[i] = 1;
    list[i].rule = "keep-last";
  }
  mark(list, state, policy.keep_daily, "keep-daily", utc_day_key);
  mark(list, state, policy.keep_weekly, "keep-weekly", iso_week_key);
  mark(list, state, policy.keep_monthly, "keep-monthly", utc_month_key);
  mark(list, state, policy.keep_yearly, "keep-yearly", utc_year_key);
  RetentionPlan plan;
  for (size_t i = 0; i < list.size(); ++i)
    (state[i] == 1 ? plan.keep : plan.prune).push_back(std::move(list[i]));
  return plan;
}

}  // namespace strata::manager
