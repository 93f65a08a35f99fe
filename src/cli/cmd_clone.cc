// `strata vm template VM` and `strata vm clone SRC NEW [--linked|--full]`: templates and
// clones (docs/cli.md). A clone answers with its task, like the other VM actions; --wait
// follows it with progress (a full clone copies the disks).
#include "context.h"
#include "strata/cli/output.h"
#include "strata/cli/parse.h"
#include "strata/cli/requests.h"

namespace strata::cli {

ApiRequest build_vm_template(const std::string& vm) {
  return {"POST", std::string("/api/v1/vms/") + url_escape(vm) + "/template",
          nlohmann::json::object()};
}
ApiRequest build_vm_clone(const std::string& source, const std::string& name,
                          std::optional<bool> linked) {
  nlohmann::json body{{"name", name}};
  if (linked) body["linked"] = *linked;
  return {"POST", std::string("/api/v1/vms/") + url_escape(source) + "/clone", body};
}

void add_vm_clone_commands(CLI::App& vm, Context& ctx) {
  auto tpl_name = std::make_shared<std::string>();
  CLI::App* t = vm.add_subcommand(
      "template",
      "Turn a stopped VM into a template: read-only, never runs; clone it with strata vm clone");
  t->add_option("vm", *tpl_name, "VM name")->required();
  t->callback([&ctx, tpl_name] {
    ctx.action = [&ctx, tpl_name] { return ctx.show(build_vm_template(*tpl_name)); };
  });

  struct Args {
    std::string source, name;
    bool linked = false, full = false, wait = false;
    std::string wait_timeout = "30m";
  };
  auto a = std::make_shared<Args>();
  CLI::App* c = vm.add_subcommand(
      "clone",
      "Clone a template or a stopped VM into a new VM (new UUID and MACs) on the source's host. "
      "Linked (the default from a template): qcow2 overlays on the template's disks, instant. "
      "Full (the default from a VM): a copy of the disks");
  c->add_option("source", a->source, "Template or stopped VM to clone")->required();
  c->add_option("name", a->name, "Name of the new VM (a-z 0-9 '-')")->required();
  auto* linked = c->add_flag("--linked", a->linked, "Overlays on the template's disks (templates only)");
  auto* full = c->add_flag("--full", a->full, "Copy the disks (progress with --wait)");
  linked->excludes(full);
  c->add_flag("--wait", a->wait, "Wait until the clone is made, showing progress");
  c->add_option("--wait-timeout", a->wait_timeout, "Give up waiting after this long (30m)");
  c->callback([&ctx, a] {
    ctx.action = [&ctx, a] {
      auto timeout = parse_wait_timeout(a->wait_timeout, "--wait-timeout");
      if (!timeout) return ctx.usage_error(timeout.error());
      std::optional<bool> linked;
      if (a->linked) linked = true;
      if (a->full) linked = false;
      return ctx.act(build_vm_clone(a->source, a->name, linked),
                     "vm " + a->name + ": clone of " + a->source + " requested", a->wait,
                     *timeout);
    };
  });
}

}  // namespace strata::cli
