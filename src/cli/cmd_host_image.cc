// `strata host ...` (list, show, label, maintenance) and `strata image ...` (list, show,
// import, delete).
#include <sys/stat.h>

#include "context.h"

namespace strata::cli {

namespace {

void add_host_commands(CLI::App& root, Context& ctx) {
  CLI::App* host = root.add_subcommand("host", "Hosts (machines running strata-agent)");
  host->require_subcommand(1);

  CLI::App* list = host->add_subcommand("list", "List hosts");
  list->alias("ls");
  list->callback([&ctx] {
    ctx.action = [&ctx] { return ctx.show(build_host_list(), host_columns(), "hosts"); };
  });

  auto name = std::make_shared<std::string>();
  CLI::App* show = host->add_subcommand("show", "Show one host with inventory and latest metrics");
  show->alias("get");
  show->add_option("name", *name, "Host name")->required();
  show->callback(
      [&ctx, name] { ctx.action = [&ctx, name] { return ctx.show(build_host_get(*name)); }; });

  auto lname = std::make_shared<std::string>();
  auto edits = std::make_shared<std::vector<std::string>>();
  CLI::App* label = host->add_subcommand("label", "Set (k=v) or remove (k-) host labels");
  label->add_option("name", *lname, "Host name")->required();
  label->add_option("labels", *edits, "k=v to set, k- to remove")->required();
  label->callback([&ctx, lname, edits] {
    ctx.action = [&ctx, lname, edits] {
      auto req = build_host_label(*lname, *edits);
      if (!req) return ctx.usage_error(req.error());
      return ctx.show(*req);
    };
  });

  auto mname = std::make_shared<std::string>();
  auto on_off = std::make_shared<std::string>();
  CLI::App* maint = host->add_subcommand(
      "maintenance", "Turn maintenance on (no new VMs are placed there) or off");
  maint->add_option("name", *mname, "Host name")->required();
  maint->add_option("state", *on_off, "on | off")->required()->check(CLI::IsMember({"on", "off"}));
  maint->callback([&ctx, mname, on_off] {
    ctx.action = [&ctx, mname, on_off] {
      auto req = build_host_maintenance(*mname, *on_off);
      if (!req) return ctx.usage_error(req.error());
      return ctx.show(*req);
    };
  });

  auto cname = std::make_shared<std::string>();
  auto cluster = std::make_shared<std::string>();
  CLI::App* set_cluster = host->add_subcommand(
      "cluster", "Move a host to another cluster (refused when the cluster's fixed CPU "
                 "baseline is one the host cannot offer)");
  set_cluster->add_option("name", *cname, "Host name")->required();
  set_cluster->add_option("cluster", *cluster, "Cluster name")->required();
  set_cluster->callback([&ctx, cname, cluster] {
    ctx.action = [&ctx, cname, cluster] {
      auto req = build_host_cluster(*cname, *cluster);
      if (!req) return ctx.usage_error(req.error());
      return ctx.show(*req);
    };
  });

  auto ename = std::make_shared<std::string>();
  auto ewait = std::make_shared<bool>(false);
  auto ewait_timeout = std::make_shared<std::string>("30m");
  CLI::App* evac = host->add_subcommand(
      "evacuate",
      "Maintenance with evacuation: no new VMs, and the running VMs live-migrate away");
  evac->add_option("name", *ename, "Host name")->required();
  evac->add_flag("--wait", *ewait, "Wait until every VM moved, showing progress");
  evac->add_option("--wait-timeout", *ewait_timeout, "Give up waiting after this long (30m)");
  auto epartial = std::make_shared<bool>(false);
  evac->add_flag("--partial", *epartial,
                 "Move what fits even if some VM would not (default: refuse, naming them)");
  evac->callback([&ctx, ename, ewait, ewait_timeout, epartial] {
    ctx.action = [&ctx, ename, ewait, ewait_timeout, epartial] {
      auto timeout = parse_wait_timeout(*ewait_timeout, "--wait-timeout");
      if (!timeout) return ctx.usage_error(timeout.error());
      return ctx.act(build_host_evacuate(*ename, *epartial),
                     "host " + *ename + ": evacuation started",
                     *ewait, *timeout);
    };
  });
}

int import_image(Context& ctx, const std::string& name, const std::string& path,
                 const std::string& kind) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode))
    return ctx.usage_error(Error{ErrorCode::invalid_argument, path + ": not a readable file", ""});
  ApiRequest req = build_image_put(name, kind);
  if (ctx.dry_run) {
    ctx.io.out << req.method << " " << req.target << "\n<" << st.st_size << " bytes from " << path
               << ">\n";
    return 0;
  }
  auto c = ctx.client();
  if (!c) return ctx.fail(c.error());
  ProgressView view(ctx.io.err, ctx.io.stderr_tty);
  int last_decile = -1;
  auto body = c->upload(req, path, [&](uint64_t sent, uint64_t total) {
    int decile = total == 0 ? 10 : static_cast<int>(sent * 10 / total);
    if (ctx.io.stderr_tty || decile != last_decile) show_transfer(view, sent, total);
    last_decile = decile;
  });
  view.finish();
  if (!body) return ctx.fail(body.error());
  if (ctx.format() == OutputFormat::table)
    ctx.io.err << "image " << name << " imported\n";
  else
    ctx.io.out << render(*body, ctx.format());
  return 0;
}

void add_cluster_commands(CLI::App& root, Context& ctx) {
  CLI::App* cl = root.add_subcommand(
      "cluster", "Clusters: groups of hosts whose VMs share a CPU baseline (EVC) and can move "
                 "between them");
  cl->require_subcommand(1);
  CLI::App* list = cl->add_subcommand("list", "List clusters with their CPU baseline and why");
  list->alias("ls");
  list->callback([&ctx] {
    ctx.action = [&ctx] { return ctx.show(build_cluster_list(), cluster_columns(), "clusters"); };
  });
  auto name = std::make_shared<std::string>();
  CLI::App* show = cl->add_subcommand(
      "show", "Show a cluster: its baseline, and for each host whether it offers it");
  show->alias("get");
  show->add_option("name", *name, "Cluster name")->required();
  show->callback([&ctx, name] {
    ctx.action = [&ctx, name] { return ctx.show(build_cluster_get(*name)); };
  });
  auto cname = std::make_shared<std::string>();
  auto baseline = std::make_shared<std::string>("auto");
  CLI::App* create = cl->add_subcommand("create", "Create a cluster");
  create->add_option("name", *cname, "Cluster name")->required();
  create->add_option("--cpu-baseline", *baseline,
                     "auto (the best model every host offers; lowered when a weaker host joins) "
                     "or a QEMU model such as Haswell-v4 (fixed: weaker hosts are refused)")
      ->capture_default_str();
  create->callback([&ctx, cname, baseline] {
    ctx.action = [&ctx, cname, baseline] {
      auto req = build_cluster_create(*cname, *baseline);
      if (!req) return ctx.usage_error(req.error());
      return ctx.show(*req);
    };
  });
  auto sname = std::make_shared<std::string>();
  auto sbaseline = std::make_shared<std::string>();
  CLI::App* set = cl->add_subcommand(
      "set", "Set a cluster's CPU baseline: auto, or a model every host of it offers");
  set->add_option("name", *sname, "Cluster name")->required();
  set->add_option("--cpu-baseline", *sbaseline, "auto | a QEMU CPU model")->required();
  set->callback([&ctx, sname, sbaseline] {
    ctx.action = [&ctx, sname, sbaseline] {
      auto req = build_cluster_set(*sname, *sbaseline);
      if (!req) return ctx.usage_error(req.error());
      return ctx.show(*req);
    };
  });
  auto dname = std::make_shared<std::string>();
  CLI::App* del = cl->add_subcommand("delete", "Delete an empty cluster (not \"default\")");
  del->alias("rm");
  del->add_option("name", *dname, "Cluster name")->required();
  del->callback([&ctx, dname] {
    ctx.action = [&ctx, dname] { return ctx.show(build_cluster_delete(*dname)); };
  });
}

void add_image_commands(CLI::App& root, Context& ctx) {
  CLI::App* image = root.add_subcommand("image", "Disk, kernel and initrd images");
  image->require_subcommand(1);
  CLI::App* list = image->add_subcommand("list", "List images");
  list->alias("ls");
  list->callback([&ctx] {
    ctx.action = [&ctx] { return ctx.show(build_image_list(), image_columns(), "images"); };
  });
  auto sname = std::make_shared<std::string>();
  CLI::App* show = image->add_subcommand("show", "Show one image and the hosts holding a copy");
  show->alias("get");
  show->add_option("name", *sname, "Image name")->required();
  show->callback(
      [&ctx, sname] { ctx.action = [&ctx, sname] { return ctx.show(build_image_get(*sname)); }; });

  auto name = std::make_shared<std::string>();
  auto file = std::make_shared<std::string>();
  auto kind = std::make_shared<std::string>("disk");
  CLI::App* imp = image->add_subcommand(
      "import", "Upload FILE into the catalog as image NAME; hosts get it when a VM needs it");
  imp->add_option("name", *name, "Image name (DNS label)")->required();
  imp->add_option("file", *file, "File to upload (qcow2 or raw disk, kernel, initrd, ISO)")
      ->required();
  imp->add_option("--kind", *kind,
                  "disk (default), kernel, initrd or iso (an ISO 9660/UDF image, only for a "
                  "VM's CD-ROM)")
      ->check(CLI::IsMember({"disk", "kernel", "initrd", "iso"}));
  imp->callback([&ctx, name, file, kind] {
    ctx.action = [&ctx, name, file, kind] { return import_image(ctx, *name, *file, *kind); };
  });

  auto dname = std::make_shared<std::string>();
  CLI::App* del =
      image->add_subcommand("delete",
                            "Remove an image from the catalog and from the hosts that are up "
                            "(409 while a VM uses it)");
  del->alias("rm");
  del->add_option("name", *dname, "Image name")->required();
  del->callback([&ctx, dname] {
    ctx.action = [&ctx, dname] { return ctx.show(build_image_delete(*dname)); };
  });
}

}  // namespace

void add_host_image_commands(CLI::App& root, Context& ctx) {
  add_host_commands(root, ctx);
  add_cluster_commands(root, ctx);
  add_image_commands(root, ctx);
}

}  // namespace strata::cli
