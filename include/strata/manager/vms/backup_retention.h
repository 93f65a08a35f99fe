// Retention of backups (issue 12): which of a VM's backups a policy keeps and which it
// prunes, with the rule that kept each. Pure: no I/O, times are the manifests' creation
// times (UTC). Semantics of Proxmox Backup Server's prune (pbs-datastore prune.rs): the
// backups are taken newest first and the rules run in order keep_last, keep_daily,
// keep_weekly, keep_monthly, keep_yearly; each rule keeps the newest backup of each of its
// next N periods (a backup for keep_last, a UTC day, an ISO week, a UTC calendar month, a
// UTC calendar year) that no earlier rule already covered, so the
// rules add up instead of overlapping (keep_last 1 + keep_daily 1 keeps two backups when
// there are two days). A backup a rule has kept is kept whatever the later rules say; an
// older backup of a period a rule has covered is pruned.
//
// Every backup restores alone (an incremental's index lists every chunk: backup.md), so
// pruning a parent never breaks a child; and the newest backup, which the next
// incremental extends, is always kept when any rule is positive.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "strata/common/error.h"

namespace strata::manager {

struct RetentionPolicy {
  int64_t keep_last = 0;
  int64_t keep_daily = 0;
  int64_t keep_weekly = 0;
  int64_t keep_monthly = 0;
  int64_t keep_yearly = 0;
};

// The largest count a rule accepts (a generous bound on what a request can ask).
inline constexpr int64_t kMaxRetentionKeep = 100000;

// invalid_argument naming the field: a negative or too large count, or every count 0 (a
// policy that keeps nothing would prune every backup: refused, field "keep_last").
Status validate_retention(const RetentionPolicy& p);

struct RetentionInput {
  std::string id;
  int64_t created_unix_ms = 0;
};

struct RetentionDecision {
  std::string id;
  int64_t created_unix_ms = 0;
  // "keep-last", "keep-daily", "keep-weekly", "keep-monthly" or "keep-yearly" for a kept
  // backup; "" for a pruned one.
  std::string rule;
  // The period the rule kept it for ("2026-11-30", "2026-W48", "2026-11", "2026"; "" for
  // keep-last).
  std::string period;
};

struct RetentionPlan {
  std::vector<RetentionDecision> keep;   // newest first
  std::vector<RetentionDecision> prune;  // newest first
};

// One VM's complete backups, in any order (ties on the time are broken by id, the larger
// id counting as newer).
RetentionPlan plan_retention(std::vector<RetentionInput> backups, const RetentionPolicy& policy);

// UTC day "YYYY-MM-DD", ISO 8601 week "GGGG-Www", UTC month "YYYY-MM" and UTC year "YYYY"
// of a unix time in milliseconds.
std::string utc_day_key(int64_t unix_ms);
std::string iso_week_key(int64_t unix_ms);
std::string utc_month_key(int64_t unix_ms);
std::string utc_year_key(int64_t unix_ms);

}  // namespace strata::manager
