// Backup schedules and their scheduler (strata/manager/vms/backup_schedules.h).
#include "strata/manager/vms/backup_schedules.h"

#include <fmt/chrono.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <array>
#include <chrono>

#include "strata/common/log.h"
#include "strata/model/validation.h"

namespace strata::manager {

namespace {

using std::chrono::days;
using std::chrono::sys_days;
constexpr int64_t kDayMs = 86400000;
constexpr int64_t kMinuteMs = 60000;
constexpr std::array<const char*, 7> kDayNames = {"sun", "mon", "tue", "wed", "thu", "fri", "sat"};

// Days since the epoch of a unix time (floored: also right before 1970).
int64_t day_number(int64_t unix_ms) {
  return (unix_ms >= 0 ? unix_ms : unix_ms - (kDayMs - 1)) / kDayMs;
}

// 0 Sunday .. 6 Saturday of a day number (1970-01-01 was a Thursday).
unsigned weekday_of_day(int64_t day) {
  return std::chrono::weekday{sys_days{days{day}}}.c_encoding();
}

// `days` names 1 to 7 days; `full_on` 0 to 7 (the canonical form lists none as []).
Result<uint8_t> parse_days(const nlohmann::json& j, const std::string& field, bool allow_none) {
  if (!j.is_array()) return invalid_argument(field, field + " must be an array of day names");
  if ((j.empty() && !allow_none) || j.size() > 7)
    return invalid_argument(field, field + " must name 1 to 7 days (sun, mon, ... sat)");
  uint8_t mask = 0;
  for (size_t i = 0; i < j.size(); ++i) {
    std::string f = fmt::format("{}[{}]", field, i);
    if (!j[i].is_string()) return invalid_argument(f, f + " must be a day name");
    const std::string name = j[i].get<std::string>();
    int w = -1;
    for (int d = 0; d < 7; ++d)
      if (name == kDayNames[d]) w = d;
    if (w < 0) return invalid_argument(f, f + " must be one of sun, mon, tue, wed, thu, fri, sat");
    if (mask & (1u << w)) return invalid_argument(f, f + ": " + name + " is named twice");
    mask = static_cast<uint8_t>(mask | (1u << w));
  }
  return mask;
}

nlohmann::json days_json(uint8_t mask) {
  nlohmann::json out = nlohmann::json::array();
  for (int d = 0; d < 7; ++d)
    if (mask & (1u << d)) out.push_back(kDayNames[d]);
  return out;
}

Result<int64_t> keep_count(const nlohmann::json& r, const std::string& field, const char* key) {
  auto it = r.find(key);
  if (it == r.end() || it->is_null()) return int64_t{0};
  std::string f = field + "." + key;
  if (!it->is_number_integer()) return invalid_argument(f, f + " must be a non-negative integer");
  if (it->is_number_unsigned())
    return static_cast<int64_t>(std::min<uint64_t>(it->get<uint64_t>(), kMaxRetentionKeep + 1));
  return it->get<int64_t>();  // negative: validate_retention names it
}

// A retention policy object under `field` ("retention", "sync_retention"): errors name
// field.keep_daily and so on.
Result<RetentionPolicy> parse_retention(const nlohmann::json& r, const std::string& field) {
  if (!r.is_object()) return invalid_argument(field, field + " must be an object {keep_last, ...}");
  for (auto it = r.begin(); it != r.end(); ++it)
    if (it.key() != "keep_last" && it.key() != "keep_daily" && it.key() != "keep_weekly" &&
        it.key() != "keep_monthly" && it.key() != "keep_yearly") {
      std::string f = field + "." + it.key().substr(0, 64);
      return invalid_argument(f, fmt::format("unknown field '{}'", f));
    }
  RetentionPolicy p;
  for (auto [key, out] : {std::pair<const char*, int64_t*>{"keep_last", &p.keep_last},
                          {"keep_daily", &p.keep_daily},
                          {"keep_weekly", &p.keep_weekly},
                          {"keep_monthly", &p.keep_monthly},
                          {"keep_yearly", &p.keep_yearly}}) {
    auto v = keep_count(r, field, key);
    if (!v) return tl::unexpected(v.error());
    *out = *v;
  }
  if (auto st = validate_retention(p); !st) {
    Error e = st.error();
    e.field = field + "." + e.field;
    return tl::unexpected(e);
  }
  return p;
}

nlohmann::json retention_json(const std::optional<RetentionPolicy>& r) {
  if (!r) return nullptr;
  return {{"keep_last", r->keep_last},
          {"keep_daily", r->keep_daily},
          {"keep_weekly", r->keep_weekly},
          {"keep_monthly", r->keep_monthly},
          {"keep_yearly", r->keep_yearly}};
}

}  // namespace

Result<BackupScheduleSpec> parse_schedule_spec(const nlohmann::json& j) {
  if (!j.is_object()) return invalid_argument("", "a backup schedule is a JSON object");
  static const std::array<const char*, 8> kKnown = {
      "vm", "selector", "time", "days", "full_on", "retention", "sync", "sync_retention"};
  for (auto it = j.begin(); it != j.end(); ++it) {
    bool known = false;
    for (auto* k : kKnown) known = known || it.key() == k;
    std::string key = it.key().substr(0, 64);
    if (!known) return invalid_argument(key, fmt::format("unknown field '{}'", key));
  }
  BackupScheduleSpec s;
  auto vm = j.find("vm");
  auto sel = j.find("selector");
  bool has_vm = vm != j.end() && !vm->is_null();
  bool has_sel = sel != j.end() && !sel->is_null();
  if (has_vm == has_sel)
    return invalid_argument("vm", "name exactly one of vm (a VM name) or selector (labels)");
  if (has_vm) {
    if (!vm->is_string()) return invalid_argument("vm", "vm must be a string");
    s.vm = vm->get<std::string>();
    if (auto st = model::validate_name("vm", s.vm); !st) return tl::unexpected(st.error());
  } else {
    if (!sel->is_object())
      return invalid_argument("selector", "selector must be an object of labels {\"k\": \"v\"}");
    if (sel->empty()) return invalid_argument("selector", "selector needs at least one label");
    if (sel->size() > model::kMaxLabels)
      return invalid_argument("selector",
                              fmt::format("selector has more than {} labels", model::kMaxLabels));
    for (auto& [k, v] : sel->items()) {
      std::string f = "selector." + k.substr(0, 64);
      if (!v.is_string()) return invalid_argument(f, f + " must be a string");
      if (auto st = model::validate_label("selector", k, v.get<std::string>()); !st)
        return tl::unexpected(st.error());
      s.selector[k] = v.get<std::string>();
    }
  }
  auto time = j.find("time");
  if (time == j.end() || time->is_null())
    return invalid_argument("time", "time is required: HH:MM, UTC");
  const std::string t = time->is_string() ? time->get<std::string>() : std::string();
  auto digit = [&](size_t i) { return t[i] >= '0' && t[i] <= '9'; };
  if (t.size() != 5 || t[2] != ':' || !digit(0) || !digit(1) || !digit(3) || !digit(4))
    return invalid_argument("time", "time must be HH:MM (UTC, 00:00 to 23:59)");
  int hh = (t[0] - '0') * 10 + (t[1] - '0');
  int mm = (t[3] - '0') * 10 + (t[4] - '0');
  if (hh > 23 || mm > 59)
    return invalid_argument("time", "time must be HH:MM (UTC, 00:00 to 23:59)");
  s.minute_of_day = hh * 60 + mm;
  if (auto d = j.find("days"); d != j.end() && !d->is_null()) {
    auto mask = parse_days(*d, "days", false);
    if (!mask) return tl::unexpected(mask.error());
    s.days = *mask;
  }
  if (auto f = j.find("full_on"); f != j.end() && !f->is_null()) {
    auto mask = parse_days(*f, "full_on", true);
    if (!mask) return tl::unexpected(mask.error());
    for (int d = 0; d < 7; ++d)
      if ((*mask & (1u << d)) && !(s.days & (1u << d)))
        return invalid_argument("full_on", fmt::format("full_on names {}, a day the schedule "
                                                       "does not run (days)",
                                                       kDayNames[d]));
    s.full_on = *mask;
  }
  if (auto y = j.find("sync"); y != j.end() && !y->is_null()) {
    if (!y->is_boolean()) return invalid_argument("sync", "sync must be true or false");
    s.sync = y->get<bool>();
  }
  if (auto r = j.find("retention"); r != j.end() && !r->is_null()) {
    auto p = parse_retention(*r, "retention");
    if (!p) return tl::unexpected(p.error());
    s.retention = *p;
  }
  if (auto r = j.find("sync_retention"); r != j.end() && !r->is_null()) {
    if (!s.sync)
      return invalid_argument("sync_retention",
                              "sync_retention prunes the sync target after the run's sync: it "
                              "needs \"sync\": true");
    auto p = parse_retention(*r, "sync_retention");
    if (!p) return tl::unexpected(p.error());
    s.sync_retention = *p;
  }
  return s;
}

nlohmann::json schedule_spec_json(const BackupScheduleSpec& s) {
  nlohmann::json j = nlohmann::json::object();
  if (!s.vm.empty())
    j["vm"] = s.vm;
  else
    j["selector"] = s.selector;
  j["time"] = fmt::format("{:02d}:{:02d}", s.minute_of_day / 60, s.minute_of_day % 60);
  j["days"] = days_json(s.days);
  j["full_on"] = days_json(s.full_on);
  j["sync"] = s.sync;
  j["retention"] = retention_json(s.retention);
  j["sync_retention"] = retention_json(s.sync_retention);
  return j;
}

int64_t last_due_ms(const BackupScheduleSpec& s, int64_t now_ms) {
  const int64_t today = day_number(now_ms);
  for (int64_t d = today; d >= today - 7; --d) {
    int64_t slot = d * kDayMs + s.minute_of_day * kMinuteMs;
    if (slot <= now_ms && (s.days & (1u << weekday_of_day(d)))) return slot;
  }
  return 0;  // no day set (parse_schedule_spec never makes one)
}

int64_t next_due_ms(const BackupScheduleSpec& s, int64_t now_ms) {
  const int64_t today = day_number(now_ms);
  for (int64_t d = today; d <= today + 8; ++d) {
    int64_t slot = d * kDayMs + s.minute_of_day * kMinuteMs;
    if (slot > now_ms && (s.days & (1u << weekday_of_day(d)))) return slot;
  }
  return 0;
}

bool full_slot(const BackupScheduleSpec& s, int64_t slot_ms) {
  return (s.full_on & (1u << weekday_of_day(day_number(slot_ms)))) != 0;
}

// ---- the scheduler ----

namespace {

int64_t wall_ms(const Clock& c) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(c.wall().time_since_epoch()).count();
}

Result<BackupSchedule> decode(const store::BackupScheduleRecord& r) {
  auto j = nlohmann::json::parse(r.spec, nullptr, false);
  if (j.is_discarded())
    return make_error(ErrorCode::internal, "backup schedule " + r.name + ": spec is not JSON");
  auto spec = parse_schedule_spec(j);
  if (!spec) return tl::unexpected(spec.error().wrap("backup schedule " + r.name));
  return BackupSchedule{r, std::move(*spec)};
}

}  // namespace

BackupScheduler::BackupScheduler(store::Store& store, EventLog& events, ClockPtr clock,
                                 BackupService& backups, StartBackup start)
    : store_(store),
      events_(events),
      clock_(std::move(clock)),
      backups_(backups),
      start_(std::move(start)),
      thread_(clock_, std::chrono::seconds(30), [this] { (void)tick(); }) {
  if (!start_)
    start_ = [this](const std::string& vm, bool full, const std::string& actor) {
      return backups_.create(vm, full, actor);
    };
}

BackupScheduler::~BackupScheduler() { stop(); }

void BackupScheduler::start() { thread_.start(); }
void BackupScheduler::stop() { thread_.stop(); }

Result<BackupSchedule> BackupScheduler::create(const std::string& name,
                                               const BackupScheduleSpec& spec,
                                               const std::string& actor) {
  if (auto st = model::validate_name("name", name); !st) return tl::unexpected(st.error());
  store::BackupScheduleRecord rec;
  rec.name = name;
  rec.spec = schedule_spec_json(spec).dump();
  rec.last_slot_ms = std::max<int64_t>(0, last_due_ms(spec, wall_ms(*clock_)));
  store::BackupScheduleRecord made;
  store::EventRecord audit;
  auto st = store_.transaction([&](store::Store& tx) -> Status {
    auto r = tx.create_backup_schedule(rec);
    if (!r) return tl::unexpected(r.error());
    auto ev = EventLog::append_in(tx, actor, "backup.schedule.create", "backup-schedule/" + name,
                                  "ok", rec.spec);
    if (!ev) return tl::unexpected(ev.error());
    made = *r;
    audit = *ev;
    return {};
  });
  if (!st) return tl::unexpected(st.error());
  events_.published(audit);
  return BackupSchedule{made, spec};
}

Result<std::vector<BackupSchedule>> BackupScheduler::list() {
  auto recs = store_.list_backup_schedules();
  if (!recs) return tl::unexpected(recs.error());
  std::vector<BackupSchedule> out;
  for (auto& r : *recs) {
    auto s = decode(r);
    if (!s) return tl::unexpected(s.error());
    out.push_back(std::move(*s));
  }
  return out;
}

Result<BackupSchedule> BackupScheduler::get(const std::string& name) {
  if (auto st = model::validate_name("name", name); !st) return tl::unexpected(st.error());
  auto r = store_.get_backup_schedule_by_name(name);
  if (!r) return tl::unexpected(r.error());
  return decode(*r);
}

Status BackupScheduler::remove(const std::string& name, const std::string& actor) {
  if (auto st = model::validate_name("name", name); !st) return st;
  store::EventRecord audit;
  auto st = store_.transaction([&](store::Store& tx) -> Status {
    auto r = tx.get_backup_schedule_by_name(name);
    if (!r) return tl::unexpected(r.error());
    if (auto d = tx.delete_backup_schedule(r->id, r->resource_version); !d) return d;
    auto ev =
        EventLog::append_in(tx, actor, "backup.schedule.delete", "backup-schedule/" + name, "ok");
    if (!ev) return tl::unexpected(ev.error());
    audit = *ev;
    return {};
  });
  if (!st) return st;
  events_.published(audit);
  return {};
}

Result<int> BackupScheduler::tick() {
  std::lock_guard lock(mu_);
  auto log = logger("manager.backup");
  finish_runs();
  auto recs = store_.list_backup_schedules();
  if (!recs) return tl::unexpected(recs.error());
  const int64_t now = wall_ms(*clock_);
  int started = 0;
  for (auto& r : *recs) {
    auto s = decode(r);
    if (!s) {
      log->warn("{}", s.error().to_string());
      continue;
    }
    int64_t slot = last_due_ms(s->spec, now);
    if (slot <= 0 || slot <= r.last_slot_ms) continue;
    auto n = run(*s, slot);
    if (!n) {
      log->warn("backup schedule {}: {}", r.name, n.error().to_string());
      continue;
    }
    started += *n;
  }
  return started;
}

Result<int> BackupScheduler::run(BackupSchedule& s, int64_t slot) {
  // Claim the slot first (compare-and-swap): whoever loses does nothing, and a restarted
  // manager finds it claimed.
  store::BackupScheduleRecord claim = s.record;
  claim.last_slot_ms = slot;
  auto claimed = store_.update_backup_schedule(claim);
  if (!claimed) {
    if (claimed.error().code == ErrorCode::conflict || claimed.error().code == ErrorCode::not_found)
      return 0;  // another pass claimed it, or the schedule is gone
    return tl::unexpected(claimed.error());
  }
  const std::string name = s.record.name;
  const std::string actor = "schedule:" + name;
  std::vector<std::string> vms;
  if (!s.spec.vm.empty()) {
    vms.push_back(s.spec.vm);
  } else {
    auto sel = backups_.select_vms(s.spec.selector);
    if (!sel) return tl::unexpected(sel.error());
    vms = std::move(*sel);
  }
  const bool full = full_slot(s.spec, slot);
  PendingRun pending;
  pending.schedule = name;
  pending.retention = s.spec.retention;
  pending.sync = s.spec.sync;
  pending.sync_retention = s.spec.sync_retention;
  std::vector<std::string> refused;
  for (auto& vm : vms) {
    auto t = start_(vm, full, actor);
    if (!t) {
      refused.push_back(vm + ": " + t.error().message);
      continue;
    }
    pending.tasks.push_back(*t);
  }
  auto slot_text = fmt::format(
      "{:%Y-%m-%d %H:%M}",
      std::chrono::sys_time<std::chrono::milliseconds>(std::chrono::milliseconds(slot)));
  std::string msg = fmt::format("slot {} UTC: {} backup(s) started{}", slot_text,
                                pending.tasks.size(), full ? " (full)" : "");
  if (!refused.empty()) msg += fmt::format("; refused: {}", fmt::join(refused, "; "));
  if (vms.empty()) msg += "; no VM matches";
  (void)events_.append(actor, "backup.schedule.run", "backup-schedule/" + name,
                       refused.empty() ? "ok" : "error", msg);
  const int n = static_cast<int>(pending.tasks.size());
  if ((s.spec.retention || s.spec.sync) && n > 0) pending_.push_back(std::move(pending));
  return n;
}

void BackupScheduler::finish_runs() {
  auto log = logger("manager.backup");
  for (auto it = pending_.begin(); it != pending_.end();) {
    bool ended = true;
    std::vector<std::string> succeeded;
    for (auto& t : it->tasks) {
      auto rec = store_.get_task(t.task.id);
      if (!rec) {
        ended = rec.error().code == ErrorCode::not_found && ended;  // gone: count as ended
        continue;
      }
      if (rec->state == "succeeded")
        succeeded.push_back(t.vm);
      else if (rec->state != "failed")
        ended = false;
    }
    if (!ended) {
      ++it;
      continue;
    }
    if (succeeded.empty()) {
      it = pending_.erase(it);
      continue;
    }
    const std::string actor = "schedule:" + it->schedule;
    if (it->retention && !it->pruned) {
      auto r = backups_.prune(succeeded, {}, *it->retention, false, actor);
      if (!r && r.error().code == ErrorCode::conflict) {
        ++it;  // a backup holds the repository: the next pass tries again
        continue;
      }
      if (!r) {
        log->warn("backup schedule {}: retention: {}", it->schedule, r.error().to_string());
        (void)events_.append(actor, "backup.prune", "backup-schedule/" + it->schedule, "error",
                             r.error().to_string());
      }
      it->pruned = true;
    }
    if (it->sync && it->sync_task.empty()) {
      // Never removes from the target: an off-site copy keeps what the primary pruned
      // unless someone asks (POST /backups/sync {"remove_vanished": true}); its own
      // retention is sync_retention, below.
      auto t = backups_.sync(false, false, actor);
      if (!t && t.error().code == ErrorCode::conflict) {
        ++it;  // another sync runs: the next pass tries again
        continue;
      }
      if (!t) {  // no sync target configured: said once, the run is done
        log->warn("backup schedule {}: sync: {}", it->schedule, t.error().to_string());
        (void)events_.append(actor, "backup.sync", "backup-schedule/" + it->schedule, "error",
                             t.error().to_string());
      } else if (it->sync_retention) {
        it->sync_task = t->id;  // the target is pruned once this sync has ended
        ++it;
        continue;
      }
    }
    if (!it->sync_task.empty() && !finish_sync_retention(*it, succeeded, actor)) {
      ++it;
      continue;
    }
    it = pending_.erase(it);
  }
}

// The target's own retention once the run's sync has ended: false while the sync runs or a
// sync or gc holds the target (the next pass tries again); true once done or given up (a
// failed sync prunes nothing: the copies it lacks must not make older ones go).
bool BackupScheduler::finish_sync_retention(const PendingRun& run,
                                            const std::vector<std::string>& vms,
                                            const std::string& actor) {
  auto rec = store_.get_task(run.sync_task);
  if (!rec) return rec.error().code == ErrorCode::not_found;
  if (rec->state != "succeeded" && rec->state != "failed") return false;
  const std::string target = "backup-schedule/" + run.schedule;
  if (rec->state == "failed") {
    (void)events_.append(actor, "backup.prune", target, "error",
                         "the sync failed: the sync target is not pruned this run");
    return true;
  }
  auto r = backups_.prune(vms, {}, *run.sync_retention, false, actor, /*on_sync_target=*/true);
  if (!r && r.error().code == ErrorCode::conflict) return false;
  if (!r) {
    logger("manager.backup")
        ->warn("backup schedule {}: sync target retention: {}", run.schedule,
               r.error().to_string());
    (void)events_.append(actor, "backup.prune", target, "error",
                         "sync target: " + r.error().to_string());
  }
  return true;
}

}  // namespace strata::manager
