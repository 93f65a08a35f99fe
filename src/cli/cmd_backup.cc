// `strata backup create VM [--full] | list [--vm VM] | show ID | verify ID |
// restore ID --vm VM|--new-vm NAME [--datastore DS] | delete ID | prune [VM] [--selector k=v]
// --keep-last N
// --keep-daily N --keep-weekly N --keep-monthly N --keep-yearly N [--plan] | sync [--verify]
// | schedule create|list|show|delete`: backups in the manager's repository
// (docs/internals/backup.md). create/verify/restore answer with a task; --wait follows it
// with progress.
#include <fmt/format.h>

#include <optional>

#include "context.h"
#include "strata/cli/output.h"
#include "strata/cli/parse.h"
#include "strata/cli/requests.h"

namespace strata::cli {

namespace {

std::string mib_of(const nlohmann::json& j, const char* key) {
  if (!j.contains(key) || !j[key].is_number_unsigned()) return "-";
  return fmt::format("{:.1f} MiB", j[key].get<uint64_t>() / 1048576.0);
}

Columns backup_columns() {
  auto at = [](std::string header, std::string pointer) {
    return Column{std::move(header),
                  [p = std::move(pointer)](const nlohmann::json& j) { return text_at(j, p); }};
  };
  return {at("ID", "/id"),
          at("VM", "/vm"),
          at("KIND", "/kind"),
          at("PARENT", "/parent"),
          Column{"FROZEN",
                 [](const nlohmann::json& j) {
                   return j.value("frozen", false) ? std::string("yes") : std::string("no");
                 }},
          Column{"SIZE", [](const nlohmann::json& j) { return mib_of(j, "size_bytes"); }},
          Column{"READ", [](const nlohmann::json& j) { return mib_of(j, "bytes_read"); }},
          Column{"STORED", [](const nlohmann::json& j) { return mib_of(j, "bytes_new"); }},
          Column{"CREATED", [](const nlohmann::json& j) {
                   return j.contains("created_unix_ms") ? time_text(j["created_unix_ms"])
                                                        : std::string("-");
                 }}};
}

std::string backup_path(const std::string& id) { return "/api/v1/backups/" + url_escape(id); }

// The prune answer as one table: what is kept (and by which rule), then what is pruned.
std::string prune_table(const nlohmann::json& res) {
  std::vector<std::vector<std::string>> rows;
  for (const char* action : {"keep", "prune"}) {
    if (!res.contains(action) || !res[action].is_array()) continue;
    for (const auto& b : res[action]) {
      std::string rule = text_at(b, "/rule");
      std::string period = text_at(b, "/period");
      if (!period.empty() && period != "-") rule += " " + period;
      rows.push_back({action, text_at(b, "/id"), text_at(b, "/vm"),
                      b.contains("created_unix_ms") ? time_text(b["created_unix_ms"]) : "-",
                      std::string(action) == "keep" ? rule : "-"});
    }
  }
  return render_table({"ACTION", "ID", "VM", "CREATED", "RULE"}, rows);
}

Columns schedule_columns() {
  auto at = [](std::string header, std::string pointer) {
    return Column{std::move(header),
                  [p = std::move(pointer)](const nlohmann::json& j) { return text_at(j, p); }};
  };
  auto days = [](const nlohmann::json& j, const char* key) {
    if (!j.contains(key) || !j[key].is_array() || j[key].empty()) return std::string("-");
    if (j[key].size() == 7) return std::string("every day");
    std::string out;
    for (const auto& d : j[key]) out += (out.empty() ? "" : ",") + d.get<std::string>();
    return out;
  };
  return {at("NAME", "/name"),
          Column{"TARGET",
                 [](const nlohmann::json& j) {
                   if (j.contains("vm") && j["vm"].is_string()) return j["vm"].get<std::string>();
                   std::string out;
                   if (j.contains("selector") && j["selector"].is_object())
                     for (auto& [k, v] : j["selector"].items())
                       out += (out.empty() ? "" : ",") + k + "=" + v.get<std::string>();
                   return out.empty() ? std::string("-") : out;
                 }},
          Column{"TIME (UTC)", [](const nlohmann::json& j) { return text_at(j, "/time"); }},
          Column{"DAYS", [days](const nlohmann::json& j) { return days(j, "days"); }},
          Column{"FULL ON", [days](const nlohmann::json& j) { return days(j, "full_on"); }},
          Column{"RETENTION",
                 [](const nlohmann::json& j) {
                   if (!j.contains("retention") || !j["retention"].is_object())
                     return std::string("-");
                   const auto& r = j["retention"];
                   return fmt::format("last {} daily {} weekly {} monthly {} yearly {}",
                                      r.value("keep_last", 0), r.value("keep_daily", 0),
                                      r.value("keep_weekly", 0), r.value("keep_monthly", 0),
                                      r.value("keep_yearly", 0));
                 }},
          Column{"NEXT RUN", [](const nlohmann::json& j) {
                   return j.contains("next_run_unix_ms") ? time_text(j["next_run_unix_ms"])
                                                         : std::string("-");
                 }}};
}

// "mon,tue" (or repeated flags) -> ["mon", "tue"]; the server checks the names.
nlohmann::json day_list(const std::vector<std::string>& flags) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& f : flags) {
    size_t at = 0;
    while (at <= f.size()) {
      size_t comma = f.find(',', at);
      std::string d = f.substr(at, comma == std::string::npos ? std::string::npos : comma - at);
      if (!d.empty()) out.push_back(d);
      if (comma == std::string::npos) break;
      at = comma + 1;
    }
  }
  return out;
}

// A retention policy's counts, as flags give them; the JSON object of the set ones, or
// nothing when none is set (negative counts are sent: the server names the field).
struct KeepCounts {
  int64_t last = 0, daily = 0, weekly = 0, monthly = 0, yearly = 0;
  std::optional<nlohmann::json> body() const {
    if (!last && !daily && !weekly && !monthly && !yearly) return std::nullopt;
    nlohmann::json r = nlohmann::json::object();
    if (last) r["keep_last"] = last;
    if (daily) r["keep_daily"] = daily;
    if (weekly) r["keep_weekly"] = weekly;
    if (monthly) r["keep_monthly"] = monthly;
    if (yearly) r["keep_yearly"] = yearly;
    return r;
  }
};

void add_schedule_commands(CLI::App& b, Context& ctx) {
  CLI::App* sc = b.add_subcommand(
      "schedule",
      "Backup schedules: one VM or the VMs matching a label selector, daily (or on some days) "
      "at a UTC time, with an optional retention policy applied after each run");
  sc->require_subcommand(1);

  struct CreateArgs {
    std::string name, vm, time;
    std::vector<std::string> selectors, days, full_on;
    KeepCounts keep, sync_keep;
    bool sync = false;
  };
  auto create = std::make_shared<CreateArgs>();
  CLI::App* c = sc->add_subcommand("create", "Create a backup schedule");
  c->add_option("name", create->name, "Schedule name")->required();
  c->add_option("--vm", create->vm, "Back up this VM");
  c->add_option("--selector", create->selectors,
                "Back up the VMs with label k=v at each run (repeatable: all must match)");
  c->add_option("--at", create->time, "Time of day, UTC (HH:MM)")->required();
  c->add_option("--days", create->days, "Only on these days (mon,tue,...; default every day)");
  c->add_option("--full-on", create->full_on,
                "Full backups on these days (e.g. sun); other runs are incremental when "
                "possible");
  c->add_option("--keep-last", create->keep.last, "Retention after each run: the N newest");
  c->add_option("--keep-daily", create->keep.daily, "Retention: the newest of N days");
  c->add_option("--keep-weekly", create->keep.weekly, "Retention: the newest of N ISO weeks");
  c->add_option("--keep-monthly", create->keep.monthly,
                "Retention: the newest of N calendar months (UTC)");
  c->add_option("--keep-yearly", create->keep.yearly,
                "Retention: the newest of N calendar years (UTC)");
  c->add_flag("--sync", create->sync,
              "After each run (and its retention): copy the repository to the manager's sync "
              "target (stratad --backup-sync-repo)");
  c->add_option("--sync-keep-last", create->sync_keep.last,
                "With --sync: once the copy is done, the sync target's own retention: the N "
                "newest (usually longer than the repository's)");
  c->add_option("--sync-keep-daily", create->sync_keep.daily, "Sync target: N days");
  c->add_option("--sync-keep-weekly", create->sync_keep.weekly, "Sync target: N ISO weeks");
  c->add_option("--sync-keep-monthly", create->sync_keep.monthly, "Sync target: N months");
  c->add_option("--sync-keep-yearly", create->sync_keep.yearly, "Sync target: N years");
  c->callback([&ctx, create] {
    ctx.action = [&ctx, create] {
      if (create->vm.empty() == create->selectors.empty())
        return ctx.usage_error(
            invalid_argument("--vm", "give --vm VM or --selector k=v (not both)").value());
      nlohmann::json body = {{"name", create->name}, {"time", create->time}};
      if (!create->vm.empty()) body["vm"] = create->vm;
      if (!create->selectors.empty()) {
        auto sel = parse_key_values(create->selectors, "--selector");
        if (!sel) return ctx.usage_error(sel.error());
        body["selector"] = *sel;
      }
      if (!create->days.empty()) body["days"] = day_list(create->days);
      if (!create->full_on.empty()) body["full_on"] = day_list(create->full_on);
      if (auto r = create->keep.body()) body["retention"] = *r;
      if (create->sync) body["sync"] = true;
      if (auto r = create->sync_keep.body()) body["sync_retention"] = *r;
      return ctx.show(ApiRequest{"POST", "/api/v1/backup-schedules", body});
    };
  });

  CLI::App* l = sc->add_subcommand("list", "List backup schedules");
  l->alias("ls");
  l->callback([&ctx] {
    ctx.action = [&ctx] {
      return ctx.show(ApiRequest{"GET", "/api/v1/backup-schedules", std::nullopt},
                      schedule_columns(), "schedules");
    };
  });

  auto show = std::make_shared<std::string>();
  CLI::App* s = sc->add_subcommand("show", "Show one backup schedule");
  s->add_option("name", *show, "Schedule name")->required();
  s->callback([&ctx, show] {
    ctx.action = [&ctx, show] {
      return ctx.show(
          ApiRequest{"GET", "/api/v1/backup-schedules/" + url_escape(*show), std::nullopt});
    };
  });

  auto del = std::make_shared<std::string>();
  CLI::App* d = sc->add_subcommand("delete", "Delete a backup schedule (its backups stay)");
  d->add_option("name", *del, "Schedule name")->required();
  d->callback([&ctx, del] {
    ctx.action = [&ctx, del] {
      return ctx.show(
          ApiRequest{"DELETE", "/api/v1/backup-schedules/" + url_escape(*del), std::nullopt});
    };
  });
}

}  // namespace

void add_backup_commands(CLI::App& root, Context& ctx) {
  CLI::App* b = root.add_subcommand(
      "backup",
      "Backups of VMs into the manager's repository (stratad --backup-repo): incremental "
      "with QEMU dirty bitmaps, deduplicated chunks, verify, restore");
  b->require_subcommand(1);

  struct Args {
    std::string target, vm, new_vm;
    std::optional<std::string> datastore;  // restore --new-vm --datastore
    bool full = false, wait = false, verify = false, remove_vanished = false;
    std::string wait_timeout = "1h";
  };
  auto waiting = [](CLI::App* c, Args& a) {
    c->add_flag("--wait", a.wait, "Wait until the task ends, showing progress");
    c->add_option("--wait-timeout", a.wait_timeout, "Give up waiting after this long (1h)");
  };

  auto create = std::make_shared<Args>();
  CLI::App* c = b->add_subcommand("create",
                                  "Back up a VM: a running one while it runs, a stopped one "
                                  "offline (incremental when possible)");
  c->add_option("vm", create->target, "VM name")->required();
  c->add_flag("--full", create->full, "A full backup even when an incremental is possible");
  waiting(c, *create);
  c->callback([&ctx, create] {
    ctx.action = [&ctx, create] {
      auto timeout = parse_wait_timeout(create->wait_timeout, "--wait-timeout");
      if (!timeout) return ctx.usage_error(timeout.error());
      nlohmann::json body = nlohmann::json::object();
      if (create->full) body["full"] = true;
      ApiRequest req{"POST", "/api/v1/vms/" + url_escape(create->target) + "/backups", body};
      return ctx.act(req, "vm " + create->target + ": backup requested", create->wait, *timeout);
    };
  });

  auto list = std::make_shared<Args>();
  CLI::App* l = b->add_subcommand("list", "List backups, oldest first");
  l->alias("ls");
  l->add_option("--vm", list->vm, "Only this VM's backups");
  l->callback([&ctx, list] {
    ctx.action = [&ctx, list] {
      std::string path = "/api/v1/backups";
      if (!list->vm.empty()) path += "?vm=" + url_escape(list->vm);
      return ctx.show(ApiRequest{"GET", path, std::nullopt}, backup_columns(), "backups");
    };
  });

  auto show = std::make_shared<Args>();
  CLI::App* s = b->add_subcommand("show", "Show one backup (its disks, what it read and stored)");
  s->add_option("id", show->target, "Backup id")->required();
  s->callback([&ctx, show] {
    ctx.action = [&ctx, show] {
      return ctx.show(ApiRequest{"GET", backup_path(show->target), std::nullopt});
    };
  });

  auto verify = std::make_shared<Args>();
  CLI::App* v = b->add_subcommand("verify", "Rehash every chunk of a backup (a task)");
  v->add_option("id", verify->target, "Backup id")->required();
  waiting(v, *verify);
  v->callback([&ctx, verify] {
    ctx.action = [&ctx, verify] {
      auto timeout = parse_wait_timeout(verify->wait_timeout, "--wait-timeout");
      if (!timeout) return ctx.usage_error(timeout.error());
      ApiRequest req{"POST", backup_path(verify->target) + "/verify", nlohmann::json::object()};
      return ctx.act(req, "backup " + verify->target + ": verify requested", verify->wait,
                     *timeout);
    };
  });

  // The target is the manager's second repository (stratad --backup-sync-repo): a path
  // the CLI sent would be a path on the manager chosen by a client, which the API refuses.
  auto sync = std::make_shared<Args>();
  CLI::App* sy = b->add_subcommand(
      "sync",
      "Copy every backup the manager's sync target lacks into it (the off-site copy, "
      "stratad --backup-sync-repo): missing chunks, then indexes, the manifest last (a task "
      "with progress: backups done, bytes copied)");
  sy->add_flag("--verify", sync->verify,
               "Reread and rehash every chunk copied, and read each copied backup back");
  sy->add_flag("--remove-vanished", sync->remove_vanished,
               "Then remove from the target the backups the repository no longer has (pruned "
               "or deleted), and free their chunks: the copy mirrors the repository's "
               "retention. Nothing is removed while the repository has no backups at all");
  waiting(sy, *sync);
  sy->callback([&ctx, sync] {
    ctx.action = [&ctx, sync] {
      auto timeout = parse_wait_timeout(sync->wait_timeout, "--wait-timeout");
      if (!timeout) return ctx.usage_error(timeout.error());
      nlohmann::json body = nlohmann::json::object();
      if (sync->verify) body["verify"] = true;
      if (sync->remove_vanished) body["remove_vanished"] = true;
      ApiRequest req{"POST", "/api/v1/backups/sync", body};
      return ctx.act(req, "backup sync requested", sync->wait, *timeout);
    };
  });

  auto restore = std::make_shared<Args>();
  CLI::App* r = b->add_subcommand(
      "restore",
      "Replace the disks of a stopped VM with a backup's (disks matched by name), or make a "
      "new VM from the backup (--new-vm: the backed-up VM's spec, a new uuid and MACs, stopped)");
  r->add_option("id", restore->target, "Backup id")->required();
  auto* vm_opt = r->add_option("--vm", restore->vm, "The stopped VM whose disks are replaced");
  auto* new_opt = r->add_option("--new-vm", restore->new_vm, "Create this VM from the backup");
  vm_opt->excludes(new_opt);
  r->add_option("--datastore", restore->datastore,
                "With --new-vm: put the disks on this datastore (\"\": the host's local store) "
                "instead of where they were")
      ->excludes(vm_opt);
  waiting(r, *restore);
  r->callback([&ctx, restore] {
    ctx.action = [&ctx, restore] {
      auto timeout = parse_wait_timeout(restore->wait_timeout, "--wait-timeout");
      if (!timeout) return ctx.usage_error(timeout.error());
      if (restore->vm.empty() == restore->new_vm.empty())
        return ctx.usage_error(
            invalid_argument("--vm", "give --vm VM (replace its disks) or --new-vm NAME").value());
      const bool fresh = !restore->new_vm.empty();
      nlohmann::json body =
          fresh ? nlohmann::json{{"new_vm", restore->new_vm}} : nlohmann::json{{"vm", restore->vm}};
      if (restore->datastore) body["datastore"] = *restore->datastore;
      ApiRequest req{"POST", backup_path(restore->target) + "/restore", body};
      return ctx.act(req,
                     "backup " + restore->target + ": restore into " +
                         (fresh ? "the new VM " + restore->new_vm : restore->vm) + " requested",
                     restore->wait, *timeout);
    };
  });

  struct PruneArgs {
    std::string vm;
    std::vector<std::string> selectors;
    KeepCounts keep;
    bool plan = false;
    bool sync_target = false;
  };
  auto prune = std::make_shared<PruneArgs>();
  CLI::App* p = b->add_subcommand(
      "prune",
      "Apply a retention policy to a VM's backups (or to those of the VMs matching --selector): "
      "keep the newest N, the newest of each of the last N days, ISO weeks, months and years "
      "with backups (Proxmox semantics, UTC); delete the rest");
  p->add_option("vm", prune->vm, "VM name (its backups outlive it: a deleted VM's name works)");
  p->add_option("--selector", prune->selectors,
                "Instead of a VM: the VMs with label k=v (repeatable: all must match)");
  p->add_option("--keep-last", prune->keep.last, "Keep the N newest backups");
  p->add_option("--keep-daily", prune->keep.daily, "Keep the newest backup of N days");
  p->add_option("--keep-weekly", prune->keep.weekly, "Keep the newest backup of N ISO weeks");
  p->add_option("--keep-monthly", prune->keep.monthly,
                "Keep the newest backup of N calendar months (UTC)");
  p->add_option("--keep-yearly", prune->keep.yearly,
                "Keep the newest backup of N calendar years (UTC)");
  p->add_flag("--sync-target", prune->sync_target,
              "Prune the sync target's copies instead (the off-site copy's own retention; "
              "stratad --backup-sync-repo)");
  p->add_flag("--plan", prune->plan,
              "Show what would be kept and pruned; delete nothing (the global --dry-run prints "
              "the request instead)");
  p->callback([&ctx, prune] {
    ctx.action = [&ctx, prune] {
      nlohmann::json body = nlohmann::json::object();
      if (prune->vm.empty() == prune->selectors.empty())
        return ctx.usage_error(
            invalid_argument("vm", "give a VM name or --selector k=v (not both)").value());
      if (!prune->vm.empty()) body["vm"] = prune->vm;
      if (!prune->selectors.empty()) {
        auto sel = parse_key_values(prune->selectors, "--selector");
        if (!sel) return ctx.usage_error(sel.error());
        body["selector"] = *sel;
      }
      // Negative counts are sent as they are: the server names the field it refuses.
      if (auto r = prune->keep.body()) body.update(*r);
      if (prune->plan) body["dry_run"] = true;
      if (prune->sync_target) body["sync_target"] = true;
      ApiRequest req{"POST", "/api/v1/backups/prune", body};
      if (ctx.dry(req)) return 0;
      auto c = ctx.client();
      if (!c) return ctx.fail(c.error());
      auto res = c->call(req);
      if (!res) return ctx.fail(res.error());
      if (ctx.format() != OutputFormat::table) {
        ctx.io.out << render(*res, ctx.format());
        return 0;
      }
      ctx.io.out << prune_table(*res);
      size_t kept = res->contains("keep") ? (*res)["keep"].size() : 0;
      size_t pruned = res->contains("prune") ? (*res)["prune"].size() : 0;
      if (res->value("dry_run", false))
        ctx.io.err << fmt::format("{} kept, {} would be pruned (plan: nothing deleted)\n", kept,
                                  pruned);
      else
        ctx.io.err << fmt::format("{} kept, {} pruned; {} chunks removed\n", kept, pruned,
                                  res->value("chunks_removed", uint64_t{0}));
      return 0;
    };
  });

  add_schedule_commands(*b, ctx);

  auto del = std::make_shared<Args>();
  CLI::App* d =
      b->add_subcommand("delete", "Delete a backup; chunks no other backup needs are removed");
  d->add_option("id", del->target, "Backup id")->required();
  d->callback([&ctx, del] {
    ctx.action = [&ctx, del] {
      return ctx.show(ApiRequest{"DELETE", backup_path(del->target), std::nullopt});
    };
  });
}

}  // namespace strata::cli
