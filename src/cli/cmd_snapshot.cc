// `strata vm snapshot create|list|revert|delete VM NAME`: disk snapshots of a VM (external
// qcow2 overlays on its host; docs/cli.md). create/revert/delete answer with a task, like
// the other VM actions; --wait follows it with progress.
#include "context.h"
#include "strata/cli/output.h"
#include "strata/cli/parse.h"
#include "strata/cli/requests.h"

namespace strata::cli {

ApiRequest build_snapshot_create(const std::string& vm, const std::string& name) {
  return {"POST", std::string("/api/v1/vms/") + url_escape(vm) + "/snapshots",
          nlohmann::json{{"name", name}}};
}
ApiRequest build_snapshot_list(const std::string& vm) {
  return {"GET", std::string("/api/v1/vms/") + url_escape(vm) + "/snapshots", std::nullopt};
}
ApiRequest build_snapshot_revert(const std::string& vm, const std::string& name) {
  return {
      "POST",
      std::string("/api/v1/vms/") + url_escape(vm) + "/snapshots/" + url_escape(name) + "/revert",
      nlohmann::json::object()};
}
ApiRequest build_snapshot_delete(const std::string& vm, const std::string& name) {
  return {"DELETE", std::string("/api/v1/vms/") + url_escape(vm) + "/snapshots/" + url_escape(name),
          std::nullopt};
}

Columns snapshot_columns() {
  auto at = [](std::string header, std::string pointer) {
    return Column{std::move(header),
                  [p = std::move(pointer)](const nlohmann::json& j) { return text_at(j, p); }};
  };
  return {at("NAME", "/name"),
          at("PARENT", "/parent"),
          Column{"CURRENT",
                 [](const nlohmann::json& j) {
                   return j.value("current", false) ? std::string("*") : std::string("");
                 }},
          at("CONSISTENCY", "/consistency"),
          at("VM-STATE", "/vm_state"),
          Column{"CREATED", [](const nlohmann::json& j) {
                   return j.contains("created_unix_ms") ? time_text(j["created_unix_ms"])
                                                        : std::string("-");
                 }}};
}

void add_vm_snapshot_commands(CLI::App& vm, Context& ctx) {
  CLI::App* snap = vm.add_subcommand(
      "snapshot",
      "Disk snapshots of a VM (running or stopped; revert needs it stopped). Snapshots form "
      "a tree; delete merges a snapshot's data into what depends on it");
  snap->require_subcommand(1);

  struct Args {
    std::string vm, name;
    bool wait = false;
    std::string wait_timeout = "10m";
  };
  auto add = [&](const char* verb, const char* help, auto build, const char* done) {
    auto a = std::make_shared<Args>();
    CLI::App* c = snap->add_subcommand(verb, help);
    c->add_option("vm", a->vm, "VM name")->required();
    c->add_option("name", a->name, "Snapshot name (a-z 0-9 '-')")->required();
    c->add_flag("--wait", a->wait, "Wait until the task ends, showing progress");
    c->add_option("--wait-timeout", a->wait_timeout, "Give up waiting after this long (10m)");
    c->callback([&ctx, a, build, done] {
      ctx.action = [&ctx, a, build, done] {
        auto timeout = parse_wait_timeout(a->wait_timeout, "--wait-timeout");
        if (!timeout) return ctx.usage_error(timeout.error());
        return ctx.act(build(a->vm, a->name), "vm " + a->vm + ": snapshot " + a->name + " " + done,
                       a->wait, *timeout);
      };
    });
  };
  add("create", "Take a disk snapshot (guest filesystems frozen when a guest agent answers)",
      build_snapshot_create, "requested");
  add("revert", "Revert the VM's disks to a snapshot (the VM must be stopped)",
      build_snapshot_revert, "revert requested");
  add("delete", "Delete a snapshot, merging its data into the snapshots and state that need it",
      build_snapshot_delete, "delete requested");

  auto vm_name = std::make_shared<std::string>();
  CLI::App* l = snap->add_subcommand("list", "List a VM's snapshots (CURRENT: the disks' base)");
  l->alias("ls");
  l->add_option("vm", *vm_name, "VM name")->required();
  l->callback([&ctx, vm_name] {
    ctx.action = [&ctx, vm_name] {
      return ctx.show(build_snapshot_list(*vm_name), snapshot_columns(), "snapshots");
    };
  });
}

}  // namespace strata::cli
