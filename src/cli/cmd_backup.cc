// `strata backup create VM [--full] | list [--vm VM] | show ID | verify ID |
// restore ID --vm VM | delete ID`: backups in the manager's repository
// (docs/internals/backup.md). create/verify/restore answer with a task; --wait follows it
// with progress.
#include <fmt/format.h>

#include "context.h"
#include "strata/cli/output.h"
#include "strata/cli/parse.h"
#include "strata/cli/requests.h"

namespace strata::cli {

namespace {

std::string mib(const nlohmann::json& j, const char* key) {
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
          Column{"SIZE", [](const nlohmann::json& j) { return mib(j, "size_bytes"); }},
          Column{"READ", [](const nlohmann::json& j) { return mib(j, "bytes_read"); }},
          Column{"STORED", [](const nlohmann::json& j) { return mib(j, "bytes_new"); }},
          Column{"CREATED", [](const nlohmann::json& j) {
                   return j.contains("created_unix_ms") ? time_text(j["created_unix_ms"])
                                                        : std::string("-");
                 }}};
}

std::string backup_path(const std::string& id) { return "/api/v1/backups/" + url_escape(id); }

}  // namespace

void add_backup_commands(CLI::App& root, Context& ctx) {
  CLI::App* b = root.add_subcommand(
      "backup",
      "Backups of VMs into the manager's repository (stratad --backup-repo): incremental "
      "with QEMU dirty bitmaps, deduplicated chunks, verify, restore");
  b->require_subcommand(1);

  struct Args {
    std::string target, vm;
    bool full = false, wait = false;
    std::string wait_timeout = "1h";
  };
  auto waiting = [](CLI::App* c, Args& a) {
    c->add_flag("--wait", a.wait, "Wait until the task ends, showing progress");
    c->add_option("--wait-timeout", a.wait_timeout, "Give up waiting after this long (1h)");
  };

  auto create = std::make_shared<Args>();
  CLI::App* c = b->add_subcommand(
      "create", "Back up a running or paused VM while it runs (incremental when possible)");
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

  auto restore = std::make_shared<Args>();
  CLI::App* r = b->add_subcommand(
      "restore", "Replace the disks of a stopped VM with a backup's (disks matched by name)");
  r->add_option("id", restore->target, "Backup id")->required();
  r->add_option("--vm", restore->vm, "The stopped VM whose disks are replaced")->required();
  waiting(r, *restore);
  r->callback([&ctx, restore] {
    ctx.action = [&ctx, restore] {
      auto timeout = parse_wait_timeout(restore->wait_timeout, "--wait-timeout");
      if (!timeout) return ctx.usage_error(timeout.error());
      ApiRequest req{"POST", backup_path(restore->target) + "/restore",
                     nlohmann::json{{"vm", restore->vm}}};
      return ctx.act(req,
                     "backup " + restore->target + ": restore into " + restore->vm + " requested",
                     restore->wait, *timeout);
    };
  });

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
