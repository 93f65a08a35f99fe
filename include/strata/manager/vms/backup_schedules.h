// Backup schedules (issue 12; docs/internals/backup.md "Schedules"): a named definition
// in the store — one VM or a label selector, a UTC time of day, optionally the days of the
// week it runs and the days whose run is a full backup, optionally a retention policy
// applied after each run — and the scheduler that starts the backups when one is due.
//
// The scheduler runs on the injected clock (a pass every 30 s of clock time; a tick() is
// one pass). A due time ("slot") is claimed in the store before anything starts: the
// schedule's last_slot_ms is moved to it with a compare-and-swap, so a slot is started
// at most once — after a manager restart, or by a second manager on the same database,
// the slot is already claimed. A manager that was down over a slot starts the newest
// missed slot once when it comes back (never the older ones). A crash between the claim
// and the backups' tasks loses that slot's run (at most once, never twice).
//
// Each VM gets one "backup.create" task through BackupService::create (incremental when
// possible; full on the `full_on` days). When every task of a run has ended, the
// schedule's retention policy, if any, is applied to the VMs whose backup succeeded
// (BackupService::prune); while another backup holds the repository the prune waits for
// the next pass. Pending prunes live in memory: after a restart the next run prunes.
#pragma once

#include <cstdint>
#include <functional>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "strata/common/clock.h"
#include "strata/common/error.h"
#include "strata/common/periodic.h"
#include "strata/manager/events/event_log.h"
#include "strata/manager/vms/backup_retention.h"
#include "strata/manager/vms/backup_service.h"
#include "strata/store/store.h"

namespace strata::manager {

struct BackupScheduleSpec {
  std::string vm;          // one VM by name, or
  store::Labels selector;  // the VMs whose labels match (exactly one of the two is set)
  int minute_of_day = 0;   // the UTC time of day, 0..1439 ("HH:MM")
  uint8_t days = 0x7f;     // bit w: runs on weekday w (0 Sunday .. 6 Saturday)
  uint8_t full_on = 0;     // bit w: the run on weekday w is a full backup
  std::optional<RetentionPolicy> retention;
  // After the run's backups have ended (and retention, if any), a repository sync to the
  // manager's sync target (BackupService::sync) when at least one succeeded.
  bool sync = false;
  // Once that sync has succeeded, this policy over the sync target's backups of the VMs
  // whose backup succeeded (BackupService::prune on the target): the off-site copy's own
  // retention, usually longer than the repository's. Needs sync.
  std::optional<RetentionPolicy> sync_retention;
};

// The definition's JSON (the request body minus "name", and the store's spec text):
// {"vm": NAME | "selector": {k: v}, "time": "HH:MM", "days"?: ["mon", ...],
//  "full_on"?: ["sun", ...], "retention"?: {"keep_last"?, "keep_daily"?, "keep_weekly"?,
//  "keep_monthly"?, "keep_yearly"?}, "sync"?: false, "sync_retention"?: {same as retention}}.
// invalid_argument naming the field (time, days[i], full_on[i], selector.KEY,
// retention.keep_daily, ...).
Result<BackupScheduleSpec> parse_schedule_spec(const nlohmann::json& j);
nlohmann::json schedule_spec_json(const BackupScheduleSpec& s);

// The newest due time at or before `now_ms` (unix ms), and the first one after it.
int64_t last_due_ms(const BackupScheduleSpec& s, int64_t now_ms);
int64_t next_due_ms(const BackupScheduleSpec& s, int64_t now_ms);
// Whether the run of the slot at `slot_ms` is a full backup (its UTC weekday is full_on).
bool full_slot(const BackupScheduleSpec& s, int64_t slot_ms);

struct BackupSchedule {
  store::BackupScheduleRecord record;
  BackupScheduleSpec spec;
};

class BackupScheduler {
 public:
  // How a run starts one VM's backup: BackupService::create unless given (tests).
  using StartBackup =
      std::function<Result<BackupTask>(const std::string& vm, bool full, const std::string& actor)>;
  BackupScheduler(store::Store& store, EventLog& events, ClockPtr clock, BackupService& backups,
                  StartBackup start = {});
  ~BackupScheduler();
  BackupScheduler(const BackupScheduler&) = delete;
  BackupScheduler& operator=(const BackupScheduler&) = delete;

  // CRUD (the API's). create: the body's "name" (a DNS-label-like name) and the spec; the
  // newest slot before now counts as done (a schedule made at 10:00 for 02:30 first runs
  // tomorrow). already_exists (field name). Each writes its audit event
  // ("backup.schedule.create" / ".delete", target backup-schedule/NAME).
  Result<BackupSchedule> create(const std::string& name, const BackupScheduleSpec& spec,
                                const std::string& actor);
  Result<std::vector<BackupSchedule>> list();
  Result<BackupSchedule> get(const std::string& name);
  Status remove(const std::string& name, const std::string& actor);

  // One pass: starts the schedules that are due, and applies the retention of runs whose
  // tasks have all ended. Returns how many backups it started.
  Result<int> tick();

  // A thread that calls tick() every 30 s of clock time until stop().
  void start();
  void stop();

 private:
  struct PendingRun {
    std::string schedule;
    std::optional<RetentionPolicy> retention;
    bool sync = false;
    bool pruned = false;  // retention done (a sync refused for now is retried alone)
    std::vector<BackupTask> tasks;
    std::optional<RetentionPolicy> sync_retention;
    std::string sync_task;  // the run's sync, once started (when sync_retention is set)
  };
  Result<int> run(BackupSchedule& s, int64_t slot);
  void finish_runs();
  bool finish_sync_retention(const PendingRun& run, const std::vector<std::string>& vms,
                             const std::string& actor);

  store::Store& store_;
  EventLog& events_;
  ClockPtr clock_;
  BackupService& backups_;
  StartBackup start_;
  std::mutex mu_;  // one pass at a time (the thread, a test's tick())
  std::vector<PendingRun> pending_;

  // Declared last: stopped before the members its passes use are destroyed.
  PeriodicThread thread_;
};

}  // namespace strata::manager
