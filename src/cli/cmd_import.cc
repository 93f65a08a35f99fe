// `strata vm import FILE`: a VM from another platform (docs/internals/import.md). The CLI
// parses no descriptor: an OVA is uploaded as it is; for a libvirt domain XML the manager
// maps the XML first (POST /vms/import/plan) and names the disk files it needs, which the
// CLI then streams with the XML as one tar (domain.xml, disk-0, disk-1...). The manager
// checks and converts the disks and creates the VM.
#include <sys/stat.h>

#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <thread>

#include "context.h"
#include "strata/cli/config.h"
#include "strata/model/vm_import.h"

namespace strata::cli {

namespace {

struct ImportOptions {
  std::string file;
  std::string format;  // "", "ova", "libvirt"
  std::string name;
  std::string host;
  std::string disk_dir;
  std::vector<std::string> network_map;  // SRC=BRIDGE
  bool start = false;
  bool wait = false;
  std::string wait_timeout = "10m";
  std::string timeout = "1h";
};

bool ends_with(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

Result<uint64_t> regular_file_size(const std::string& path, const std::string& what) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode))
    return invalid_argument(what, path + ": not a readable regular file");
  return static_cast<uint64_t>(st.st_size);
}

std::string padding(uint64_t size) {
  return std::string(static_cast<size_t>((512 - size % 512) % 512), '\0');
}

void add_member(std::vector<BodyPart>& parts, const std::string& name, uint64_t size) {
  auto h = model::make_tar_header(name, size);
  parts.push_back(BodyPart{std::string(reinterpret_cast<const char*>(h.data()), h.size()), "", 0});
}

// The body of a libvirt import: the XML, then each disk file the plan names, as a tar.
Result<std::vector<BodyPart>> libvirt_archive(const ImportOptions& o, const std::string& xml,
                                              const nlohmann::json& plan) {
  std::vector<BodyPart> parts;
  add_member(parts, std::string(model::kLibvirtDescriptorMember), xml.size());
  parts.push_back(BodyPart{xml + padding(xml.size()), "", 0});
  const auto& disks = plan.at("disks");
  std::filesystem::path base = std::filesystem::path(o.file).parent_path();
  for (size_t i = 0; i < disks.size(); ++i) {
    std::string source = disks[i].value("source", "");
    std::filesystem::path p(source);
    // --disk-dir: the files were copied from the source host into one folder.
    if (!o.disk_dir.empty())
      p = std::filesystem::path(o.disk_dir) / p.filename();
    else if (p.is_relative())
      p = base / p;
    auto size = regular_file_size(p.string(), "disks[" + std::to_string(i) + "]");
    if (!size)
      return invalid_argument("--disk-dir", "disk " + disks[i].value("name", "") + ": " +
                                                size.error().message +
                                                " (copy the disks here and give --disk-dir)");
    add_member(parts, model::libvirt_disk_member(i), *size);
    parts.push_back(BodyPart{"", p.string(), *size});
    parts.push_back(BodyPart{padding(*size), "", 0});
  }
  parts.push_back(BodyPart{std::string(1024, '\0'), "", 0});  // the tar's end
  return parts;
}

// --network-map SRC=BRIDGE (repeatable): split at the last '=' (bridge names have none;
// an OVF network name may), checked as the manager checks it.
Result<model::NetworkMap> network_map_flags(const std::vector<std::string>& flags) {
  model::NetworkMap map;
  for (const auto& f : flags) {
    auto eq = f.rfind('=');
    if (eq == std::string::npos || eq == 0)
      return invalid_argument("--network-map",
                              "--network-map \"" + f + "\": give SOURCE_NETWORK=BRIDGE");
    auto [it, fresh] = map.emplace(f.substr(0, eq), f.substr(eq + 1));
    if (!fresh)
      return invalid_argument("--network-map",
                              "--network-map: network \"" + it->first + "\" is mapped twice");
  }
  if (auto st = model::validate_network_map("--network-map", map); !st)
    return invalid_argument(st.error().field, st.error().field + ": " + st.error().message);
  return map;
}

// While the manager converts (the upload done, the answer not yet there), shows the
// import task's progress from a second connection; stops when told.
class ConversionWatch {
 public:
  ConversionWatch(HttpClient client, std::string vm_name, ProgressView& view)
      : client_(std::move(client)), vm_name_(std::move(vm_name)), view_(view) {}
  ~ConversionWatch() { stop(); }
  void start() {
    if (!thread_.joinable()) thread_ = std::thread([this] { run(); });
  }
  void stop() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
  }

 private:
  void run() {
    std::unique_lock<std::mutex> lock(mu_);
    while (!cv_.wait_for(lock, std::chrono::seconds(1), [this] { return stopping_; })) {
      lock.unlock();
      auto list = client_.call(build_import_task_find(vm_name_));
      lock.lock();
      if (stopping_) break;
      if (!list) continue;  // the manager is busy: try again
      auto task = pick_import_task(*list, vm_name_);
      if (task.is_null()) continue;
      view_.update(task.value("progress", 0), task.value("message", "converting"));
    }
  }

  HttpClient client_;
  std::string vm_name_;
  ProgressView& view_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::thread thread_;
};

int run_import(Context& ctx, const ImportOptions& o) {
  std::string format = o.format;
  if (format.empty()) {
    if (ends_with(o.file, ".ova"))
      format = "ova";
    else if (ends_with(o.file, ".xml"))
      format = "libvirt";
    else
      return ctx.usage_error(Error{ErrorCode::invalid_argument,
                                   "cannot tell the format from the file name; give --format "
                                   "ova or --format libvirt",
                                   "--format"});
  }
  auto file_size = regular_file_size(o.file, "FILE");
  if (!file_size) return ctx.usage_error(file_size.error());
  auto timeout = parse_wait_timeout(o.wait_timeout, "--wait-timeout");
  if (!timeout) return ctx.usage_error(timeout.error());
  auto step_timeout = parse_wait_timeout(o.timeout, "--timeout");
  if (!step_timeout) return ctx.usage_error(step_timeout.error());
  auto networks = network_map_flags(o.network_map);
  if (!networks) return ctx.usage_error(networks.error());
  std::map<std::string, std::string> network_map(networks->begin(), networks->end());
  ApiRequest req = build_vm_import(format, o.name, o.host, o.start, network_map);
  std::string xml;
  if (format == "libvirt") {
    auto text = ctx.io.read_file ? ctx.io.read_file(o.file) : real_read_file(o.file);
    if (!text)
      return ctx.usage_error(Error{ErrorCode::invalid_argument, "cannot read " + o.file, "FILE"});
    xml = std::move(*text);
  }
  if (ctx.dry_run) {
    if (format == "libvirt") ctx.dry(build_vm_import_plan(format, xml, network_map));
    ctx.io.out << req.method << " " << req.target << "\n<"
               << (format == "ova" ? std::to_string(*file_size) + " bytes from " + o.file
                                   : "a tar of " + o.file + " and its disks")
               << ">\n";
    return 0;
  }
  auto c = ctx.client();
  if (!c) return ctx.fail(c.error());
  c->set_timeout(*step_timeout / 4);
  std::vector<BodyPart> parts;
  std::string content_type = "application/octet-stream";
  std::string vm_name = o.name;  // to find the import's task; "" for an OVA without --name
  if (format == "ova") {
    parts.push_back(BodyPart{"", o.file, *file_size});
  } else {
    auto plan = c->call(build_vm_import_plan(format, xml, network_map));
    if (!plan) return ctx.fail(plan.error());
    if (vm_name.empty() && plan->contains("spec") && (*plan)["spec"].is_object())
      vm_name = (*plan)["spec"].value("name", "");
    auto archive = libvirt_archive(o, xml, *plan);
    if (!archive) return ctx.usage_error(archive.error());
    parts = std::move(*archive);
    content_type = "application/x-tar";
  }
  ProgressView view(ctx.io.err, ctx.io.stderr_tty);
  // The conversion's progress comes from the import's task, read on a second connection
  // (this one waits for the answer); without one the CLI just says it converts.
  std::unique_ptr<ConversionWatch> watch;
  if (auto second = ctx.client()) {
    second->set_timeout(std::chrono::seconds(10));
    watch = std::make_unique<ConversionWatch>(std::move(*second), vm_name, view);
  }
  int last_decile = -1;
  bool announced = false;
  auto body = c->upload_parts(req, parts, content_type, [&](uint64_t sent, uint64_t total) {
    if (announced) return;  // the view is the watch's now
    int decile = total == 0 ? 10 : static_cast<int>(sent * 10 / total);
    if (ctx.io.stderr_tty || decile != last_decile) show_transfer(view, sent, total);
    last_decile = decile;
    if (sent == total && !announced) {
      announced = true;
      view.update(100, "uploaded; the manager checks and converts the disks (qemu-img)");
      if (watch) watch->start();
    }
  });
  if (watch) watch->stop();
  view.finish();
  if (!body) return ctx.fail(body.error());
  std::string task_id = body->contains("task") ? (*body)["task"].value("id", "") : "";
  std::string vm = body->contains("vm") ? (*body)["vm"].value("name", "") : "";
  if (ctx.format() == OutputFormat::table) {
    ctx.io.err << "vm " << vm << " imported" << (task_id.empty() ? "" : " (task " + task_id + ")")
               << "\n";
    for (const auto& d : body->value("disks", nlohmann::json::array()))
      ctx.io.err << "  disk " << d.value("disk", "") << ": "
                 << (d.value("image", "").empty() ? std::string("blank")
                                                  : "image " + d.value("image", "") + " (from " +
                                                        d.value("source_format", "") + ")")
                 << "\n";
    for (const auto& u : body->value("unmapped", nlohmann::json::array()))
      ctx.io.err << "  unmapped: " << u.get<std::string>() << "\n";
  }
  if (!o.wait || task_id.empty()) {
    if (ctx.format() != OutputFormat::table) ctx.io.out << render(*body, ctx.format());
    return 0;
  }
  auto task = ctx.wait(*c, task_id, *timeout);
  if (!task) return ctx.fail(task.error());
  if (ctx.format() != OutputFormat::table) {
    (*body)["task"] = *task;
    ctx.io.out << render(*body, ctx.format());
  }
  return 0;
}

}  // namespace

void add_vm_import_command(CLI::App& vm, Context& ctx) {
  auto o = std::make_shared<ImportOptions>();
  CLI::App* c = vm.add_subcommand(
      "import",
      "Import a VM: an OVA (OVF + VMDK disks) or a libvirt domain XML with its disk files; the "
      "disks are converted to qcow2 on the manager");
  c->add_option("file", o->file, "The .ova, or the domain .xml (virsh dumpxml)")->required();
  c->add_option("--format", o->format, "ova | libvirt (default: from the file name)")
      ->check(CLI::IsMember({"ova", "libvirt"}));
  c->add_option("--name", o->name, "The VM's name (default: the descriptor's)");
  c->add_option("--host", o->host, "Place on this host (default: the scheduler chooses)");
  c->add_option("--disk-dir", o->disk_dir,
                "libvirt: read each disk from this folder by its file name, instead of the "
                "path in the XML");
  c->add_option("--network-map", o->network_map,
                "SOURCE_NETWORK=BRIDGE: NICs on this libvirt network (or OVF network) join "
                "BRIDGE; repeatable. Unmapped networks become user-mode NICs (reported)");
  c->add_flag("--start", o->start, "Start the VM once it is created");
  c->add_flag("--wait", o->wait, "Wait until the VM is defined (or started) on its host");
  c->add_option("--wait-timeout", o->wait_timeout, "Give up waiting after this long (10m)");
  c->add_option("--timeout", o->timeout,
                "How long the manager may take to check and convert the disks (1h)");
  c->callback([&ctx, o] { ctx.action = [&ctx, o] { return run_import(ctx, *o); }; });
}

}  // namespace strata::cli
